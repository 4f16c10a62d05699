"""`headstart`: the command line, a thin layer over the flows and the backends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="A Kaggle competition kit for image classification by transfer learning.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
local_app = typer.Typer(help="Local competitions: made from a Kaggle zip or a TFDS dataset, scored here.",
                        no_args_is_help=True)
app.add_typer(local_app, name="local")
console = Console()

from flows.cli_kaggle import Backend, Spec, show_leaderboard, show_submissions  # noqa: E402
from flows.cli_kaggle import register as register_kaggle_commands  # noqa: E402

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="HEADSTART_DATA",
                                       help="Root of the data layers (default ./data, or $HEADSTART_DATA).")]


def _fail(error: Exception) -> None:
    console.print(f"[bold red]error:[/] {error}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=1)


@app.command()
def run(
    competition: Annotated[str, typer.Argument(help="Competition slug; default: the built-in offline one.")] = "digits",
    data_dir: DataDir = Path("data"),
    no_submit: Annotated[bool, typer.Option("--no-submit", help="Write the submission but do not send it.")] = False,
    member: Annotated[Optional[list[str]], typer.Option(
        "--member", help="Member KIND[@BACKBONE][#SEED] (repeatable): softmax, cnn, logistic, mlp.")] = None,
    backbone: Annotated[Optional[list[str]], typer.Option(
        "--backbone", help="Backbone for feature heads (repeatable): a registry name or file:PATH.keras.")] = None,
    weights_dir: Annotated[Optional[list[Path]], typer.Option(
        "--weights-dir", help="Folder searched first for backbone weights files (repeatable).")] = None,
    view: Annotated[Optional[list[str]], typer.Option(
        "--view", help="Feature views (repeatable): identity, flip; default: flip too for colour images.")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Backbone input size (default: its native).")] = None,
    random_weights: Annotated[bool, typer.Option(
        "--random-weights", help="Registry backbones with random weights (tests and benchmarks only).")] = False,
    blend: Annotated[str, typer.Option(help="mean, weights or caruana.")] = "caruana",
    folds: Annotated[int, typer.Option(min=2, help="Stratified CV folds.")] = 5,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs per fold (early stopping ends sooner).")] = 40,
    seed: Annotated[int, typer.Option(help="Seed for folds and training.")] = 0,
    backend: Annotated[str, typer.Option(help="local or kaggle.")] = "local",
    spec: Spec = None,
) -> None:
    """Fetch, index, extract features, train, blend, write a validated submission and submit it."""
    import dataclasses
    import json

    from flows.compete import compete
    from tasks.config import Config

    try:
        defaults = Config()
        features = dataclasses.replace(
            defaults.features, views=tuple(view or ()), image_size=image_size,
            weights="none" if random_weights else "imagenet")
        config = Config(competition=competition, data_dir=str(data_dir), backend=backend, spec=spec,
                        members=tuple(member or ()), backbones=tuple(backbone or ()),
                        weights_dirs=tuple(map(str, weights_dir or ())), folds=folds, seed=seed,
                        train=dataclasses.replace(defaults.train, epochs=epochs), features=features,
                        blend=blend, submit=not no_submit)
        run_json = compete(config)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        _fail(error)
    record = json.loads(Path(run_json).read_text())
    _print_table(f"{competition}: CV {record['metric']}", [
        *({"member": name, "cv": f"{score:.4f}", "weight": f"{record['weights'][name]:.2f}"}
          for name, score in record["members"].items()),
        {"member": f"blend ({record['blend']})", "cv": f"{record['blend_cv_score']:.4f}", "weight": ""}],
        ["member", "cv", "weight"])
    console.print(f"CV {record['metric']}: {record['blend_cv_score']:.4f}")
    result = record["backend_result"]
    if result is not None:
        console.print(f"public leaderboard score: {result.get('public_score')} (status {result.get('status')})")
        if result.get("error"):
            console.print(f"[red]submission error:[/] {result['error']}")
    console.print(f"submission: {record['submission']}", soft_wrap=True)
    print(run_json)


@app.command()
def backbones() -> None:
    """List the registered backbones (plus file:PATH.keras for your own)."""
    from tasks.backbones import BACKBONES

    _print_table("backbones", [{"name": spec.name, "keras": spec.builder, "size": spec.input_size,
                                "width": spec.feature_width, "preprocessing": spec.preprocessing or "in model",
                                "weights file": spec.weights_file} for spec in BACKBONES.values()],
                 ["name", "keras", "size", "width", "preprocessing", "weights file"])


@local_app.command("create")
def local_create(
    name: Annotated[str, typer.Argument(help="Name of the new local competition.")],
    from_zip: Annotated[Optional[Path], typer.Option("--from", help="A Kaggle-layout zip of the public files.")] = None,
    solution: Annotated[Optional[Path], typer.Option(help="Hidden solution CSV: id, label[, Usage].")] = None,
    spec: Annotated[Optional[str], typer.Option(help="Built-in spec name or a .toml spec file.")] = None,
    tfds: Annotated[Optional[str], typer.Option("--tfds", help="A TFDS image-classification dataset.")] = None,
    tfds_data_dir: Annotated[Optional[Path], typer.Option(help="TFDS data_dir (default: TFDS's own).")] = None,
    max_train: Annotated[Optional[int], typer.Option(help="Keep at most this many training images (TFDS).")] = None,
    max_test: Annotated[Optional[int], typer.Option(help="Keep at most this many test images (TFDS).")] = None,
    daily_limit: Annotated[int, typer.Option(min=1, help="Submissions allowed per UTC day.")] = 5,
    data_dir: DataDir = Path("data"),
) -> None:
    """Make a local competition from a Kaggle zip (--from, --solution, --spec) or a TFDS dataset (--tfds)."""
    from tasks.competitions import resolve_spec
    from tasks.local import create_local_competition
    from tasks.paths import DataPaths
    from tasks.practice import create_from_tfds

    root = DataPaths(data_dir).local(name)
    try:
        if tfds:
            backend = create_from_tfds(root, name, tfds, tfds_data_dir, max_train, max_test, daily_limit)
        elif from_zip and solution and spec:
            backend = create_local_competition(root, name, resolve_spec(spec), from_zip, solution, daily_limit)
        else:
            raise ValueError("give either --tfds DATASET, or all of --from ZIP --solution CSV --spec SPEC")
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        _fail(error)
    console.print(f"created local competition {name!r} ({backend.spec.layout}, {backend.spec.num_classes} classes) "
                  f"at {root}", soft_wrap=True)


def _print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(column) is None else str(row.get(column)) for column in columns))
    console.print(table)


@app.command()
def leaderboard(name: Annotated[str, typer.Argument(help="Competition name (local) or slug (Kaggle).")] = "digits",
                data_dir: DataDir = Path("data"), backend: Backend = "local", spec: Spec = None) -> None:
    """Show a competition's public leaderboard (each team's best)."""
    show_leaderboard(name, data_dir, backend, spec)


@app.command()
def submissions(name: Annotated[str, typer.Argument(help="Competition name (local) or slug (Kaggle).")] = "digits",
                data_dir: DataDir = Path("data"), backend: Backend = "local", spec: Spec = None) -> None:
    """List a competition's submissions, newest first."""
    show_submissions(name, data_dir, backend, spec)


def main() -> None:
    # Quiet defaults for a command-line run; an explicit setting in the environment wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices, not problems
    app()


register_kaggle_commands(app)

if __name__ == "__main__":
    main()
