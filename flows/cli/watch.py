"""`headstart watch` (retrain when the leaderboard moves) and `headstart serve` (schedules and the event trigger).

Both take every run option (flows/cli/options.py): a retrain runs as `headstart run` with the same options would."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.common import AsJson, check_run_choices, console, print_json, stdout_for_results
from flows.cli.options import DataDirOption

CompetitionArgument = Annotated[Optional[str], typer.Argument(
    help="Competition name (local) or slug (Kaggle); default: the --config file's.", show_default=False)]
TopDelta = Annotated[Optional[float], typer.Option(
    help="Moved when the other teams' best score changes by more than this (negative: rule off).")]
RankDrop = Annotated[Optional[int], typer.Option(help="Moved when our rank falls by at least this (0: rule off).")]
DataRule = Annotated[bool, typer.Option("--data-rule/--no-data-rule", help="Moved when the data files change.")]
BeatenRule = Annotated[bool, typer.Option(
    "--beaten-rule/--no-beaten-rule", help="Moved when a team passes our best public score.")]


def _rules(top_delta, rank_drop, data_rule, beaten_rule):
    from tasks.watch import WatchRules

    return WatchRules(top_delta=None if top_delta is not None and top_delta < 0 else top_delta,
                      rank_drop=rank_drop or None, data_changed=data_rule, beaten=beaten_rule)


def watch(
    competition: CompetitionArgument = None,
    data_dir: Annotated[Optional[Path], DataDirOption] = None,
    top_delta: TopDelta = 0.0,
    rank_drop: RankDrop = 1,
    data_rule: DataRule = True,
    beaten_rule: BeatenRule = True,
    retrain: Annotated[bool, typer.Option(
        "--retrain/--no-retrain", help="Retrain and submit on a move (else only emit the event).")] = True,
    as_json: AsJson = False,
    *, config, runner,
) -> None:
    """Compare the leaderboard with the last snapshot; when it moved, retrain and submit within the quota.

    Prints what it decided and why in one line, and exits 0 either way."""
    rules = _rules(top_delta, rank_drop, data_rule, beaten_rule)
    check_run_choices(config, runner)
    from flows.watch import run_watch

    with stdout_for_results(as_json):
        result = run_watch(config, rules, retrain, runner)
    if as_json:
        print_json(result)
    else:
        console.print(result["line"], soft_wrap=True, highlight=False, markup=False)


def serve(
    competition: CompetitionArgument = None,
    data_dir: Annotated[Optional[Path], DataDirOption] = None,
    cron: Annotated[Optional[str], typer.Option(help="Cron schedule of the retrain (UTC); 'none': only on the watcher's events.")]
    = "0 6 * * *",
    watch_every: Annotated[int, typer.Option(min=10, help="Seconds between two watches.")] = 3600,
    top_delta: TopDelta = 0.0,
    rank_drop: RankDrop = 1,
    data_rule: DataRule = True,
    beaten_rule: BeatenRule = True,
    *, config, runner,
) -> None:
    """Serve a `compete` deployment (cron, and an event trigger on the watcher's event) and a `watch`
    deployment (every --watch-every seconds) in this process, until Ctrl-C or SIGTERM. Needs a Prefect
    server (`prefect server start`, then PREFECT_API_URL)."""
    import dataclasses

    rules = _rules(top_delta, rank_drop, data_rule, beaten_rule)
    # The deployments' runs may start elsewhere: an absolute data folder.
    config = dataclasses.replace(config, data_dir=str(Path(config.data_dir).resolve()))
    check_run_choices(config, runner)
    from flows.serving import serve_competition

    serve_competition(config, rules, None if (cron or "none").lower() == "none" else cron, watch_every, runner)
