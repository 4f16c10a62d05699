"""`headstart leaderboard`, `submissions` and `submit`: a competition's standings, and sending a file to it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.common import (
    AsJson,
    Backend,
    Competition,
    DataDir,
    Spec,
    competition_backend,
    console,
    print_json,
    print_table,
    score_text,
    submission_summary,
)


def leaderboard(name: Competition = "digits", data_dir: DataDir = Path("data"), backend: Backend = "local",
                spec: Spec = None, as_json: AsJson = False) -> None:
    """Show a competition's public leaderboard (each team's best)."""
    competition = competition_backend(name, data_dir, backend, spec)
    rows = competition.leaderboard()
    if as_json:
        return print_json(rows)
    # The metric only names the scores: a Kaggle competition not downloaded yet has no spec, and needs none here.
    metric = competition.known_spec.metric if competition.known_spec else competition.evaluation_metric()
    print_table(f"{name} leaderboard ({metric or 'score'})", [{**row, "score": score_text(row["score"])}
                                                             for row in rows], ["rank", "team", "score", "date", "ref"])


def submissions(name: Competition = "digits", data_dir: DataDir = Path("data"), backend: Backend = "local",
                spec: Spec = None, as_json: AsJson = False) -> None:
    """List a competition's submissions, newest first."""
    from tasks.backends.local import LocalBackend

    competition = competition_backend(name, data_dir, backend, spec)
    rows = competition.submissions()
    rows = list(reversed(rows)) if isinstance(competition, LocalBackend) else rows
    if as_json:
        return print_json(rows)
    columns = ["ref", "date", "team", "file_name", "status", "public_score", "description", "error"]
    # Kaggle lists only your team's submissions: leave out the columns nobody filled.
    shown = [column for column in columns if any(row.get(column) not in (None, "") for row in rows)]
    print_table(f"{name} submissions", rows, shown or columns)


def submit(
    competition: Competition,
    file: Annotated[Optional[Path], typer.Argument(
        help="Submission CSV; default: the newest in data/06_submissions/<competition>/.")] = None,
    data_dir: DataDir = Path("data"),
    backend: Backend = "local",
    spec: Spec = None,
    message: Annotated[str, typer.Option(help="Submission description.")] = "headstart",
    force: Annotated[bool, typer.Option("--force", help="Send a file even if it was sent before.")] = False,
) -> None:
    """Validate a submission, check the day's quota, send it once, wait for its score, log it."""
    from tasks.backends import backend_for, submit_file
    from tasks.backends.guard import newest_submission
    from tasks.config import Config

    config = Config(competition=competition, data_dir=str(data_dir), backend=backend, spec=spec, message=message)
    path = file or newest_submission(config.paths.submissions(competition))
    record = submit_file(config, backend_for(config), path, force=force, if_duplicate="raise")
    console.print(f"{competition}: submission {record.get('ref')} of {path.name}: {submission_summary(record)}",
                  soft_wrap=True, highlight=False, markup=False)
