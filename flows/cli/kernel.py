"""`headstart kernel push` (run the pipeline in a Kaggle notebook and submit what it writes) and `headstart
tutorial` (the workshop notebook, executed here with the same run options)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.common import DataDir, Spec, console, new_app, submission_summary
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


PollInterval = Annotated[float, typer.Option(help="Seconds between status checks.")]
WaitTimeout = Annotated[Optional[float], typer.Option(
    help="Most seconds to wait for the kernel here (default: its session timeout and an hour in Kaggle's queue).")]
Slug = Annotated[str, typer.Argument(help="Kaggle competition slug (its last `headstart kernel push`).",
                                     show_default=False)]


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
    poll_interval: PollInterval = 30.0,
    session_timeout: Annotated[float, typer.Option(
        help="Seconds the kernel may run on Kaggle (its session timeout; Kaggle's most: 43200, 12 h).")] = 43200.0,
    timeout: WaitTimeout = None,
    *, config, runner,
) -> None:
    """Bundle the kit as a dataset, render and push the kernel with these run options, wait, download its output
    and submit it. The push is recorded: if the wait ends first, `headstart kernel collect` finishes the job."""
    import dataclasses

    from tasks.backends.kernels import KernelConfig
    from tasks.hub import model_sources

    config = dataclasses.replace(config, backend="kaggle")
    # The run's hub backbones go along as attached Kaggle models (their weights mount under /kaggle/input/models).
    models = tuple(dict.fromkeys([*(model or ()), *model_sources(config.backbones, config.members)]))
    kernel = KernelConfig(kernel_type=kernel_type, notebook=notebook, accelerator=accelerator, datasets=tuple(dataset or ()),
                          models=models, settings=notebook_settings(config, runner),
                          poll_interval=poll_interval, session_timeout=session_timeout, timeout=timeout,
                          submit=config.submit)
    from flows.kernel import kernel_push

    _show(_run_flow(lambda: kernel_push(config, kernel, force)))


def _run_flow(call) -> dict:
    import json

    from flows.orchestration import install_log_filters
    from flows.temporary_server import tie_temporary_server_to_this_process

    install_log_filters()
    tie_temporary_server_to_this_process()
    return json.loads(Path(call()).read_text())


def _show(record: dict) -> None:
    console.print(f"kernel {record['kernel']} v{record['version']}: output in {record['output']}", soft_wrap=True,
                  markup=False)
    if record["submission"]:
        result = record["submission"]
        again = " (sent before: not sent again)" if result.get("duplicate") else ""
        console.print(f"submission {result.get('ref')}{again}: {submission_summary(result)}", highlight=False,
                      markup=False, soft_wrap=True)


def collect(
    competition: Slug,
    data_dir: DataDir = Path("data"),
    spec: Spec = None,
    force: Annotated[bool, typer.Option("--force", help="Submit even a submission sent before.")] = False,
    no_submit: Annotated[bool, typer.Option("--no-submit", help="Download the output only.")] = False,
    message: Annotated[str, typer.Option(help="Submission description.")] = "headstart",
    poll_interval: PollInterval = 30.0,
    timeout: WaitTimeout = None,
) -> None:
    """Finish the competition's last kernel push without pushing again: wait for that version (or find it done),
    download its output and submit it through the guard."""
    from flows.kernel import kernel_collect
    from tasks.backends.kernels import KernelConfig
    from tasks.config import Config

    config = Config(competition=competition, data_dir=str(data_dir), backend="kaggle", spec=spec,
                    submit=not no_submit, message=message)
    kernel = KernelConfig(poll_interval=poll_interval, timeout=timeout, submit=not no_submit)
    _show(_run_flow(lambda: kernel_collect(config, kernel, force)))


def status(competition: Slug, data_dir: DataDir = Path("data")) -> None:
    """Say what the competition's last pushed kernel version is doing on Kaggle."""
    from tasks.backends import backend_for, kernel_runs
    from tasks.config import Config

    config = Config(competition=competition, data_dir=str(data_dir), backend="kaggle")
    record = kernel_runs.pushed(config.paths.kernels(competition), competition)
    state, message = kernel_runs.kernel_status(backend_for(config).api, f"{record['kernel']}/{record['version']}")
    console.print(f"kernel {record['kernel']} v{record['version']} (pushed {record['pushed']}): {state}"
                  + (f": {message}" if message else ""), soft_wrap=True, highlight=False, markup=False)


def output(competition: Slug, data_dir: DataDir = Path("data")) -> None:
    """Download the output and log of the competition's last pushed kernel version (nothing is submitted)."""
    from tasks.backends import backend_for, kernel_runs
    from tasks.config import Config

    config = Config(competition=competition, data_dir=str(data_dir), backend="kaggle")
    kernel_dir = config.paths.kernels(competition)
    record = kernel_runs.pushed(kernel_dir, competition)
    folder = kernel_runs.download_output(backend_for(config), kernel_dir, record)
    names = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    console.print(f"kernel {record['kernel']} v{record['version']}: {len(names)} files in {folder}: "
                  f"{', '.join(names) or 'none'}", soft_wrap=True, highlight=False, markup=False)


def export(
    competition: Slug,
    backbone: Annotated[list[str], typer.Option(
        "--backbone", help="A backbone to export: a registered name (its weights file, found on disk) or "
                           "file:PATH.keras (repeatable).")],
    weights_dir: Annotated[Optional[list[str]], typer.Option(
        "--weights-dir", help="Folder to look for weights files in, before Keras' cache (repeatable).")] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Publish backbones as your dataset <you>/headstart-models-<competition>, each file with the Keras and
    TensorFlow versions that saved it; attach it with `kernel push --dataset` (a kernel has no internet to download
    weights), which first checks those versions against Kaggle's image."""
    import os

    from tasks.backends import backend_for
    from tasks.backends.model_export import backbone_files, export_models
    from tasks.config import Config
    from tasks.plan import weights_search_dirs

    config = Config(competition=competition, data_dir=str(data_dir), backend="kaggle")
    search = weights_search_dirs(tuple(weights_dir or ()), os.environ.get("KERAS_HOME"),
                                 Path(os.environ.get("KAGGLE_INPUT_DIR", "/kaggle/input")))
    record = export_models(config, backend_for(config), config.paths.kernels(competition),
                           backbone_files(tuple(backbone), search))
    for name, versions in record["models"].items():
        console.print(f"{name}: saved with keras {versions.get('keras') or 'unknown'}, tensorflow "
                      f"{versions.get('tensorflow') or 'unknown'}", soft_wrap=True, highlight=False, markup=False)
    console.print(f"exported as {record['dataset']}: attach it with `headstart kernel push {competition} --dataset "
                  f"{record['dataset']}`", soft_wrap=True, highlight=False, markup=False)


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
for command in (collect, status, output, export):
    kernel_app.command()(command)
