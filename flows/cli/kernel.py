"""`headstart kernel push`: run the pipeline in a Kaggle notebook and submit what it writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.common import DataDir, Spec, console, new_app

kernel_app = new_app("Kaggle notebooks: bundle the kit, render kernels/, push, collect the output.")


@kernel_app.command("push")
def kernel_push_command(
    competition: Annotated[str, typer.Argument(help="Kaggle competition slug.")],
    data_dir: DataDir = Path("data"),
    spec: Spec = None,
    kernel_type: Annotated[str, typer.Option("--type", help="script or notebook.")] = "script",
    notebook: Annotated[str, typer.Option(
        help="With --type notebook: notebook (the training run) or tutorial (the workshop, kernels/tutorial.ipynb; "
             "--epochs and --folds become its parameters).")] = "notebook",
    accelerator: Annotated[str, typer.Option(help="none or gpu (Kaggle's TPU image has no GPU TensorFlow).")] = "none",
    dataset: Annotated[Optional[list[str]], typer.Option(
        "--dataset", help="Extra dataset to attach, e.g. weights: owner/slug (repeatable).")] = None,
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", help="Kaggle model to attach: owner/model/framework/instance/version (repeatable).")] = None,
    member: Annotated[Optional[list[str]], typer.Option("--member", help="Member to train (repeatable).")] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Most epochs per fold inside the kernel.")] = None,
    folds: Annotated[Optional[int], typer.Option(min=2, help="CV folds inside the kernel.")] = None,
    no_submit: Annotated[bool, typer.Option("--no-submit", help="Collect the output, do not submit it.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Submit even a file sent before.")] = False,
    poll_interval: Annotated[float, typer.Option(help="Seconds between status checks.")] = 30.0,
    timeout: Annotated[float, typer.Option(help="Most seconds to wait for the kernel.")] = 4 * 3600.0,
    message: Annotated[str, typer.Option(help="Submission description.")] = "headstart",
) -> None:
    """Bundle the kit as a dataset, render and push the kernel, wait, download its output and submit it."""
    from tasks.backends.kernels import KernelConfig
    from tasks.config import Config

    settings = {key: value for key, value in (("members", member), ("epochs", epochs), ("folds", folds)) if value}
    config = Config(competition=competition, data_dir=str(data_dir), backend="kaggle", spec=spec, message=message)
    kernel = KernelConfig(kernel_type=kernel_type, notebook=notebook, accelerator=accelerator, datasets=tuple(dataset or ()),
                          models=tuple(model or ()), settings=settings, poll_interval=poll_interval,
                          timeout=timeout, submit=not no_submit)
    from flows.kernel import kernel_push
    from flows.orchestration import install_log_filters
    from flows.temporary_server import tie_temporary_server_to_this_process

    install_log_filters()
    tie_temporary_server_to_this_process()
    record = json.loads(Path(kernel_push(config, kernel, force)).read_text())
    console.print(f"kernel {record['kernel']} v{record['version']}: output in {record['output']}", soft_wrap=True,
                  markup=False)
    if record["submission"]:
        result = record["submission"]
        console.print(f"submission {result.get('ref')}: status {result.get('status')}, "
                      f"public score {result.get('public_score')}", highlight=False, markup=False)
