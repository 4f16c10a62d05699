"""`headstart watch` (retrain when the leaderboard moves) and `headstart serve` (schedules and the event trigger)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from flows.cli.common import (
    AsJson,
    Backbones,
    Backend,
    Competition,
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
    run_config,
)

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
    competition: Competition,
    data_dir: DataDir = Path("data"),
    backend: Backend = "local",
    spec: Spec = None,
    top_delta: TopDelta = 0.0,
    rank_drop: RankDrop = 1,
    data_rule: DataRule = True,
    beaten_rule: BeatenRule = True,
    retrain: Annotated[bool, typer.Option(
        "--retrain/--no-retrain", help="Retrain and submit on a move (else only emit the event).")] = True,
    no_submit: NoSubmit = False,
    member: Members = None,
    recipe: Recipe = "default",
    backbone: Backbones = None,
    random_weights: RandomWeights = False,
    folds: Folds = 5,
    epochs: Epochs = 40,
    as_json: AsJson = False,
) -> None:
    """Compare the leaderboard with the last snapshot; when it moved, retrain and submit within the quota.

    Prints what it decided and why in one line, and exits 0 either way."""
    rules = _rules(top_delta, rank_drop, data_rule, beaten_rule)
    config = run_config(competition, data_dir, backend, spec, member, backbone, epochs, folds, random_weights,
                        no_submit, recipe=recipe)
    import_tensorflow_quietly()
    from flows.watch import run_watch

    result = run_watch(config, rules, retrain)
    if as_json:
        print_json(result)
    else:
        console.print(result["line"], soft_wrap=True, highlight=False, markup=False)


def serve(
    competition: Competition,
    data_dir: DataDir = Path("data"),
    backend: Backend = "local",
    spec: Spec = None,
    cron: Annotated[Optional[str], typer.Option(help="Cron schedule of the retrain (UTC); 'none': only on the watcher's events.")]
    = "0 6 * * *",
    watch_every: Annotated[int, typer.Option(min=10, help="Seconds between two watches.")] = 3600,
    top_delta: TopDelta = 0.0,
    rank_drop: RankDrop = 1,
    data_rule: DataRule = True,
    beaten_rule: BeatenRule = True,
    no_submit: NoSubmit = False,
    member: Members = None,
    recipe: Recipe = "default",
    backbone: Backbones = None,
    random_weights: RandomWeights = False,
    folds: Folds = 5,
    epochs: Epochs = 40,
) -> None:
    """Serve a `compete` deployment (cron, and an event trigger on the watcher's event) and a `watch`
    deployment (every --watch-every seconds) in this process, until Ctrl-C or SIGTERM. Needs a Prefect
    server (`prefect server start`, then PREFECT_API_URL)."""
    rules = _rules(top_delta, rank_drop, data_rule, beaten_rule)
    config = run_config(competition, data_dir.resolve(), backend, spec, member, backbone, epochs, folds,
                        random_weights, no_submit, recipe=recipe)  # the deployments' runs may start elsewhere: an absolute path
    import_tensorflow_quietly()
    from flows.serving import serve_competition

    serve_competition(config, rules, None if (cron or "none").lower() == "none" else cron, watch_every)
