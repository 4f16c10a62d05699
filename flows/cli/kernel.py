"""`headstart kernel push` (run the pipeline in a Kaggle notebook and submit what it writes) and `headstart
tutorial` (the workshop notebook, executed here with the same run options)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.common import console, new_app
from flows.cli.options import DataDirOption, with_run_options

kernel_app = new_app("Kaggle notebooks: bundle the kit, render kernels/, push, collect the output.")
# Run options that concern this machine, not the run inside the notebook.
NOT_FOR_NOTEBOOKS = ("competition", "data_dir", "backend", "spec", "no_submit", "message", "task_runner",
                     "dask_address")


def notebook_settings(config, runner) -> dict:
    """The run options a notebook is given: those set (not the defaults) and meant for the run inside it; a local
    KerasHub preset folder as the kit bundle carries it."""
    from flows.options import options_of
    from tasks.hub import bundled_name

    settings = {name: value for name, value in options_of(config, runner).items() if name not in NOT_FOR_NOTEBOOKS}
    for name in ("backbone", "member"):
        if name in settings:
            settings[name] = [bundled_name(value) for value in settings[name]]
    return settings


def kernel_push_command(
    competition: Annotated[Optional[str], typer.Argument(help="Kaggle competition slug.", show_default=False)] = None,
    data_dir: Annotated[Optional[Path], DataDirOption] = None,
    kernel_type: Annotated[str, typer.Option("--type", help="script or notebook.")] = "script",
    notebook: Annotated[str, typer.Option(
        help="With --type notebook: notebook (the training run) or tutorial (the workshop, kernels/tutorial.ipynb; "
             "the run options become its parameters).")] = "notebook",
    accelerator: Annotated[str, typer.Option(help="none or gpu (Kaggle's TPU image has no GPU TensorFlow).")] = "none",
    dataset: Annotated[Optional[list[str]], typer.Option(
        "--dataset", help="Extra dataset to attach, e.g. weights: owner/slug (repeatable).")] = None,
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", help="Kaggle model to attach: owner/model/framework/instance/version (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Submit even a file sent before.")] = False,
    poll_interval: Annotated[float, typer.Option(help="Seconds between status checks.")] = 30.0,
    timeout: Annotated[float, typer.Option(help="Most seconds to wait for the kernel.")] = 4 * 3600.0,
    *, config, runner,
) -> None:
    """Bundle the kit as a dataset, render and push the kernel with these run options, wait, download its output
    and submit it."""
    import dataclasses

    from tasks.backends.kernels import KernelConfig

    config = dataclasses.replace(config, backend="kaggle")
    from tasks.hub import model_sources

    # The run's hub backbones go along as attached Kaggle models (their weights mount under /kaggle/input/models).
    models = tuple(dict.fromkeys([*(model or ()), *model_sources(config.backbones, config.members)]))
    kernel = KernelConfig(kernel_type=kernel_type, notebook=notebook, accelerator=accelerator, datasets=tuple(dataset or ()),
                          models=models, settings=notebook_settings(config, runner),
                          poll_interval=poll_interval, timeout=timeout, submit=config.submit)
    from flows.kernel import kernel_push
    from flows.orchestration import install_log_filters
    from flows.temporary_server import tie_temporary_server_to_this_process

    install_log_filters()
    tie_temporary_server_to_this_process()
    import json

    record = json.loads(Path(kernel_push(config, kernel, force)).read_text())
    console.print(f"kernel {record['kernel']} v{record['version']}: output in {record['output']}", soft_wrap=True,
                  markup=False)
    if record["submission"]:
        result = record["submission"]
        console.print(f"submission {result.get('ref')}: status {result.get('status')}, "
                      f"public score {result.get('public_score')}", highlight=False, markup=False)


def tutorial(
    competition: Annotated[Optional[str], typer.Argument(
        help="Competition (local); default: the --config file's, else digits.", show_default=False)] = None,
    data_dir: Annotated[Optional[Path], DataDirOption] = None,
    output: Annotated[Path, typer.Option(help="The executed notebook, with its outputs.")] = Path(
        "data/tutorial.ipynb"),
    *, config, runner,
) -> None:
    """Execute the tutorial notebook (kernels/tutorial.ipynb) here, top to bottom, with these run options as its
    parameters (--backbone file:PATH.keras for weights on disk), and save it with its outputs."""
    from flows.kaggle_notebook import execute_tutorial

    path = execute_tutorial(config, notebook_settings(config, runner), output)
    console.print(f"tutorial executed: {path}", soft_wrap=True, highlight=False, markup=False)


kernel_app.command("push")(with_run_options(kernel_push_command, needs_competition=True))
