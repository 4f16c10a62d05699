"""What every command shares: the consoles, the shared options, tables, and the one place expected errors
become a one-line `error:` and exit code 1."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from tasks.errors import HeadstartError

try:  # typer 0.2x bundles its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # older typer runs on click itself
    from click import exceptions as click_exceptions

console = Console()
errors = Console(stderr=True)
# A group named without a command raises this (click >= 8.2) to show its help: not an error.
HELP_WITHOUT_ARGUMENTS = getattr(click_exceptions, "NoArgsIsHelpError", ())

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="HEADSTART_DATA",
                                       help="Root of the data layers (default ./data, or $HEADSTART_DATA).")]
Backend = Annotated[str, typer.Option(help="local (a competition under data/local/) or kaggle.")]
Spec = Annotated[Optional[str], typer.Option(
    help="Spec of a Kaggle competition without a built-in one: a .toml file (see tasks/competitions.py).")]
Competition = Annotated[str, typer.Argument(help="Competition name (local) or slug (Kaggle).")]


AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (for scripts).")]


def print_json(value) -> None:
    """JSON alone on stdout (progress bars and logs go to stderr)."""
    import json

    print(json.dumps(value, default=str))


# What a retrain runs: shared by `run`, `watch` and `serve`.
NoSubmit = Annotated[bool, typer.Option("--no-submit", help="Write the submission but do not send it.")]
Members = Annotated[Optional[list[str]], typer.Option(
    "--member", help="Member KIND[@BACKBONE][#SEED] (repeatable): softmax, svm, cnn, logistic, mlp, finetune.")]
Backbones = Annotated[Optional[list[str]], typer.Option(
    "--backbone", help="Backbone for feature heads (repeatable): a registry name or file:PATH.keras.")]
RandomWeights = Annotated[bool, typer.Option(
    "--random-weights", help="Registry backbones with random weights (tests and benchmarks only).")]
Folds = Annotated[int, typer.Option(min=2, help="Stratified CV folds.")]
Recipe = Annotated[str, typer.Option(
    help="default, or full: the slower, stronger recipe (grey digits: three CNNs at full size instead of an SVM "
    "and one CNN at half size: several times the time). Ignored with --member.")]
Epochs = Annotated[int, typer.Option(min=1, help="Most epochs per fold (early stopping ends sooner).")]


def run_config(competition: str, data_dir: Path, backend: str, spec: str | None, members, backbones, epochs: int,
               folds: int, random_weights: bool, no_submit: bool, views: tuple = (), image_size: int | None = None,
               train: dict | None = None, device: dict | None = None, **fields):
    """The run's Config from the command line's options (plain values; no TensorFlow, no Prefect)."""
    import dataclasses

    from tasks.config import Config, DeviceConfig

    defaults = Config()
    features = dataclasses.replace(defaults.features, views=views, image_size=image_size,
                                   weights="none" if random_weights else "imagenet")
    return Config(competition=competition, data_dir=str(data_dir), backend=backend, spec=spec,
                  members=tuple(members or ()), backbones=tuple(backbones or ()), folds=folds,
                  train=dataclasses.replace(defaults.train, epochs=epochs,
                                            **{key: value for key, value in (train or {}).items() if value is not None}),
                  features=features, device=DeviceConfig(**(device or {})),
                  submit=not no_submit, **fields)


class ExpectedErrorsGroup(TyperGroup):
    """Runs a command; an expected error (tasks.errors.HeadstartError) is printed as one line and exits 1, a
    usage error (an unknown command or option, a value of the wrong type or out of range) as one line too, with
    click's exit code 2.

    Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HeadstartError as error:
            errors.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
            raise typer.Exit(code=1) from None
        except HELP_WITHOUT_ARGUMENTS:
            raise
        except click_exceptions.UsageError as error:
            message, command = error.format_message().rstrip("."), (error.ctx or ctx).command_path
            errors.print(f"[bold red]error:[/] {escape(message)} (see `{escape(command)} --help`)", soft_wrap=True,
                         highlight=False)
            raise typer.Exit(code=error.exit_code) from None


def new_app(help: str) -> typer.Typer:
    return typer.Typer(help=help, cls=ExpectedErrorsGroup, no_args_is_help=True, pretty_exceptions_show_locals=False)


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(escape("" if row.get(column) is None else str(row.get(column))) for column in columns))
    console.print(table)


def competition_backend(name: str, data_dir: Path, backend: str, spec: str | None):
    """The backend a command talks to."""
    from tasks.backends import open_backend
    from tasks.paths import DataPaths

    return open_backend(name, DataPaths(data_dir), backend, spec)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its native start-up notes (absl's "All log messages before
    absl::InitializeLog()...", CUDA probes) kept off the terminal: no setting silences them, and they are
    not the user's business. If the import fails, they are shown with the error."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as notes:
        os.dup2(notes.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            notes.seek(0)
            failed_with = notes.read().decode(errors="replace")
            raise
        else:
            failed_with = ""
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sys.stderr.write(failed_with)
