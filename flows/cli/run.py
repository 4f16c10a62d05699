"""`headstart run` and `headstart backbones`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from flows.cli.common import (
    AsJson,
    Backbones,
    Backend,
    DataDir,
    Epochs,
    Folds,
    Members,
    NoSubmit,
    RandomWeights,
    Recipe,
    Spec,
    console,
    import_tensorflow_quietly,
    print_json,
    print_table,
    run_config,
)


def run(
    competition: Annotated[str, typer.Argument(help="Competition slug; default: the built-in offline one.")] = "digits",
    data_dir: DataDir = Path("data"),
    no_submit: NoSubmit = False,
    member: Members = None,
    recipe: Recipe = "default",
    backbone: Backbones = None,
    weights_dir: Annotated[Optional[list[Path]], typer.Option(
        "--weights-dir", help="Folder searched first for backbone weights files (repeatable).")] = None,
    view: Annotated[Optional[list[str]], typer.Option(
        "--view", help="Feature views (repeatable): identity, flip; default: flip too for colour images.")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Backbone input size (default: its native).")] = None,
    random_weights: RandomWeights = False,
    blend: Annotated[str, typer.Option(help="mean, weights or caruana.")] = "caruana",
    folds: Folds = 5,
    epochs: Epochs = 40,
    seed: Annotated[int, typer.Option(help="Seed for folds and training.")] = 0,
    finetune_size: Annotated[Optional[int], typer.Option(
        min=32, help="finetune members: image size they train at (default 128).")] = None,
    finetune_folds: Annotated[Optional[int], typer.Option(
        min=1, help="finetune members: folds fine-tuned (default 1; the blend is scored on their rows).")] = None,
    finetune_epochs: Annotated[Optional[int], typer.Option(
        min=1, help="finetune members: epochs of fine-tuning per fold (default 5).")] = None,
    time_limit: Annotated[Optional[float], typer.Option(
        min=0.1, metavar="MINUTES", help="Finish within this many minutes: members share the time, those that "
        "would overrun end early (keeping their finished folds) or are skipped, and what finished is blended.")] = None,
    mixed_precision: Annotated[str, typer.Option(
        metavar="auto|on|off", help="mixed_float16 compute (auto: where a GPU is found).")] = "auto",
    xla: Annotated[str, typer.Option(
        metavar="auto|on|off", help="XLA-compiled extraction and training steps (auto: on one GPU).")] = "auto",
    multi_gpu: Annotated[str, typer.Option(
        metavar="auto|on|off", help="MirroredStrategy over every visible GPU (auto: when there are several).")] = "auto",
    task_runner: Annotated[str, typer.Option(
        metavar="threads|dask", help="Where tasks run: threads (this process), or dask: feature shards and "
        "members x folds as mapped tasks on a Dask cluster (local, one worker per core, unless --dask-address).")
    ] = "threads",
    dask_address: Annotated[Optional[str], typer.Option(
        metavar="HOST:PORT", help="An existing Dask scheduler for --task-runner dask (workers need headstart "
        "installed and this data folder at the same path).")] = None,
    backend: Backend = "local",
    spec: Spec = None,
    as_json: AsJson = False,
) -> None:
    """Fetch, index, extract features, train, blend, write a validated submission and submit it."""
    from tasks.budget import run_deadline

    deadline = run_deadline(time_limit)  # counted from now: Prefect's start-up is part of the run
    config = run_config(competition, data_dir, backend, spec, member, backbone, epochs, folds, random_weights,
                        no_submit, weights_dirs=tuple(map(str, weights_dir or ())), seed=seed, blend=blend, recipe=recipe,
                        views=tuple(view or ()), image_size=image_size, time_limit=time_limit, deadline=deadline,
                        train={"finetune_size": finetune_size, "finetune_folds": finetune_folds,
                               "finetune_epochs": finetune_epochs},
                        device={"mixed_precision": mixed_precision, "jit_compile": xla, "multi_gpu": multi_gpu},
                        task_runner=task_runner, dask_address=dask_address)
    if config.backend == "local":
        from tasks.backends import require_local_competition

        require_local_competition(competition, config.paths)
    import_tensorflow_quietly()  # Prefect and TensorFlow load only once the options are valid
    from tasks.recipes import check_choices

    check_choices(config)  # before Prefect starts and the competition is fetched and indexed
    if config.dask_address:
        from flows.orchestration import check_dask_scheduler

        check_dask_scheduler(config.dask_address)
    from flows.compete import run_compete

    run_json = run_compete(config)
    record = json.loads(Path(run_json).read_text())
    if as_json:
        return print_json({**record, "run_json": str(run_json)})
    show_run(record)
    print(run_json)


def show_run(record: dict) -> None:
    """The CV table, the blend's score, the leaderboard score and the submission's path."""
    print_table(f"{record['config']['competition']}: CV {record['metric']}", [
        *({"member": name, "cv": f"{score:.4f}", "weight": f"{record['weights'][name]:.2f}"}
          for name, score in record["members"].items()),
        {"member": f"blend ({record['blend']})", "cv": f"{record['blend_cv_score']:.4f}", "weight": ""}],
        ["member", "cv", "weight"])
    nested = record.get("blend_nested_cv_score")
    honest = f" (nested, the blend's weights fitted on the other folds: {nested:.4f})" if nested is not None else ""
    scored, rows = record.get("blend_rows_scored"), record.get("blend_rows")
    partly = (f"; on the {scored} of {rows} training rows that every member predicted (some trained only some "
              "folds: finetune does, and --time-limit may)" if scored is not None and scored < rows else "")
    console.print(f"CV {record['metric']}: {record['blend_cv_score']:.4f}{honest}{partly}", soft_wrap=True)
    if record.get("time_limit"):
        console.print(time_limit_line(record["time_limit"]), soft_wrap=True)
    result = record["backend_result"]
    if result is not None:
        console.print(f"public leaderboard score: {result.get('public_score')} (status {result.get('status')})")
        if result.get("error"):
            console.print(f"[red]submission error:[/] {escape(str(result['error']))}")
    console.print(f"submission: {record['submission']}", soft_wrap=True)


def time_limit_line(report: dict) -> str:
    """What the time limit did, in one line."""
    ended = [f"{name} ({folds} fold{'s' * (folds != 1)})" for name, folds in report["ended"].items()]
    parts = ([f"ended early, keeping the folds they finished: {', '.join(ended)}"] if ended else []) + \
        ([f"skipped: {', '.join(report['skipped'])}"] if report["skipped"] else [])
    what = "; ".join(parts) + "; the blend is of what finished" if parts else "every member finished in time"
    return f"time limit {report['minutes']:g} min: {what}"


def backbones() -> None:
    """List the registered backbones (plus file:PATH.keras for your own)."""
    import_tensorflow_quietly()
    from tasks.backbones import BACKBONES

    print_table("backbones", [{"name": spec.name, "keras": spec.builder, "size": spec.input_size,
                               "width": spec.feature_width, "preprocessing": spec.preprocessing or "in model",
                               "weights file": spec.weights_file} for spec in BACKBONES.values()],
                ["name", "keras", "size", "width", "preprocessing", "weights file"])
