"""What every command shares: the consoles, the shared options, tables, and the one place expected errors
become a one-line `error:` and exit code 1."""

from __future__ import annotations

import sys
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


def stdout_for_results(as_json: bool):
    """With --json, anything printed to stdout while the work runs (a library's notice, Keras' `Downloading data
    from ...`) goes to stderr instead: stdout then holds the JSON alone."""
    import contextlib

    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


def print_json(value) -> None:
    """JSON alone on stdout (progress bars and logs go to stderr)."""
    import json

    print(json.dumps(value, default=str))


def score_text(value) -> str:
    """A score as people read it: 0.7483, not 0.7483333333333333; none when there is none."""
    return "none" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def submission_summary(record: dict) -> str:
    """A submission's outcome in words: its score and our rank once scored, what to do while it is pending, the
    error Kaggle gave, or that it gave none (an empty errorDescription is common): never a bare None."""
    status = record.get("status") or "unknown"
    if status == "complete":
        rank = record.get("rank")
        return f"status complete, public score {score_text(record.get('public_score'))}" + (
            f", rank {rank} on the public leaderboard" if rank is not None else "")
    if status == "pending":
        return "status pending: still being scored (`headstart submissions` shows its score later)"
    if status == "error":
        reason = record.get("error") or ("Kaggle gave no reason (its errorDescription is empty); the competition's "
                                         "page, under My Submissions, may say more")
        return f"status error: {reason}"
    return f"status {status}"


def check_run_choices(config, runner) -> None:
    """Refuse, before Prefect starts or anything is fetched, a local competition that does not exist, a member,
    backbone or view that does not exist, or a Dask scheduler that does not answer; then load TensorFlow quietly."""
    if config.backend == "local":
        from tasks.backends import require_local_competition

        require_local_competition(config.competition, config.paths)
    from flows.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()  # Prefect and TensorFlow load only once the options are valid
    from tasks.plan import check_choices

    check_choices(config)
    if runner.dask_address:
        from flows.orchestration import check_dask_scheduler

        check_dask_scheduler(runner.dask_address)


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
    # Plain click help (no rich boxes): it wraps to any width, where rich tables cut option names at 80 columns.
    return typer.Typer(help=help, cls=ExpectedErrorsGroup, no_args_is_help=True, pretty_exceptions_show_locals=False,
                       rich_markup_mode=None)


FIRST_COLUMN_WHOLE = 40


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    """A table that fits the terminal, or 80 columns in a log, never cut: the first column (what each row is) whole
    up to FIRST_COLUMN_WHOLE characters, folded onto more lines past that (a member named by a backbone's path);
    short cells (scores, weights) are never squeezed out; long cells elsewhere wrap."""
    cells = [[escape("" if row.get(column) is None else str(row.get(column))) for column in columns] for row in rows]
    table = Table(title=title)
    for position, column in enumerate(columns):
        widest = max([len(column), *(len(line[position]) for line in cells)])
        whole = widest <= (FIRST_COLUMN_WHOLE if position == 0 else 12)
        table.add_column(column, overflow="fold", no_wrap=position == 0 and whole, min_width=widest if whole else None)
    for line in cells:
        table.add_row(*line)
    console.print(table)


def competition_backend(name: str, data_dir: Path, backend: str, spec: str | None):
    """The backend a command talks to."""
    from tasks.backends import open_backend
    from tasks.paths import DataPaths

    return open_backend(name, DataPaths(data_dir), backend, spec)
