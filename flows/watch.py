"""The `watch` flow: has the leaderboard moved? If so, say why (a Prefect event) and retrain within the quota.

Standalone (`headstart watch`), the retrain is the `compete` flow as a subflow. Under `headstart serve`
the watch only emits `headstart.leaderboard.moved`, and the `compete` deployment's event trigger runs
the retrain: the UI then shows the retrain as caused by the watcher's event.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.climb import climb
from flows.options import Runner, read_options_file
from flows.orchestration import best_effort, run_or_fall_back, stage_task
from tasks import ladder, watch
from tasks.backends import Backend, backend_for, submit_file
from tasks.config import Config


def resource_id(competition: str) -> str:
    return f"headstart.competition.{competition}"


def snapshot_now(backend: Backend) -> dict:
    """The competition as the backend answers now: leaderboard, our submissions, the file listing."""
    team = backend.team  # on Kaggle, read from our submissions: once, not once per use
    return watch.take_snapshot(backend.leaderboard(limit=watch.ROWS_READ), backend.submissions(team),
                               backend.data_files(), team, metric_of(backend), rank=backend.rank())


def metric_of(backend: Backend) -> str:
    """The competition's metric: from its spec, else (a Kaggle competition not yet downloaded) from Kaggle's name
    for it; it only says which way is better."""
    if backend.known_spec is not None:
        return backend.known_spec.metric
    from tasks.spec_inference import metric_from_hint

    return metric_from_hint(backend.evaluation_metric()) or "accuracy"


def remaining_quota(backend: Backend) -> dict | None:
    return backend.limits()


open_backend = stage_task(backend_for, network=True, task_run_name="open the backend")


take_snapshot = stage_task(snapshot_now, network=True)
read_quota = stage_task(remaining_quota, network=True)
submit_to_backend = stage_task(submit_file, network=True)


def send_submission(config: Config, backend: Backend, submission: Path) -> dict:
    """A climbed retrain's submission sent (a task, retried on network errors), then its score and our position
    as a Prefect artifact."""
    from flows.compete import publish_submission

    result = submit_to_backend(config, backend, submission)  # with our rank as the submit read it (userRank)
    best_effort("the submission",
                lambda: publish_submission(config.competition, result, submission, result.get("rank")))
    return result


def emit_moved(competition: str, decision: watch.Decision, snapshot_name: str, rung: int = 0,
               new_data: bool = False) -> None:
    """The event the compete deployment's trigger retrains on, with the rung to climb to."""
    from prefect.events import emit_event

    emit_event(event=watch.EVENT, resource={"prefect.resource.id": resource_id(competition)},
               payload={"reason": decision.line(), "numbers": decision.numbers, "snapshot": snapshot_name,
                        "rung": rung, "new_data": new_data})


def publish_decision(competition: str, previous: dict | None, snapshot: dict, decision: watch.Decision,
                     action: str) -> None:
    create_markdown_artifact(key=f"watch-{competition}", markdown=(
        f"**{competition}**: {'moved' if decision.moved else 'no move'}: {decision.line()}\n\n"
        f"action: {action}\n\n```json\n{json.dumps(decision.numbers, indent=1)}\n```"))
    create_table_artifact(key=f"watch-{competition}-diff", table=watch.diff_rows(previous, snapshot))


def watch_once(config: Config, rules: watch.WatchRules, retrain: bool, snapshot=snapshot_now,
               quota=remaining_quota, retrain_run=None, emit=None, publish=None, open=backend_for,
               send=submit_file) -> dict:
    """One watch, with the steps passed in (Prefect tasks in the flow, plain calls without Prefect); the backend is
    opened once, for the snapshot and the quota."""
    history = watch.WatchHistory(config.paths.watch(config.competition))
    with history.exclusive() as alone:
        if not alone:
            return {"moved": False, "action": "none",
                    "line": f"another watch of {config.competition} is running; nothing done"}
        backend = open(config)
        current = snapshot(backend)
        previous, _ = history.baseline()
        decision = watch.decide(previous, current, rules)
        path = history.save_snapshot(current)
        summary = {"moved": decision.moved, "reasons": list(decision.reasons), "numbers": decision.numbers,
                   "snapshot": str(path)}
        if not decision.moved:
            history.record(path, decision, "none", handled=True)
            action = "nothing to do"
        else:
            new_data = "files_changed" in decision.numbers
            rung = ladder.next_rung(history.decisions.read(), new_data)
            if emit is not None:
                best_effort("the leaderboard event", lambda: emit(config.competition, decision, path.name, rung,
                                                                   new_data))
            action, handled, details = _act(config, retrain, lambda: quota(backend), retrain_run, rung, new_data,
                                            lambda submission: send(config, backend, submission))
            history.record(path, decision, action, handled, **details)
            summary.update(details)
        if publish is not None:
            best_effort("the watch's artifacts", lambda: publish(config.competition, previous, current, decision, action))
    word = "moved" if decision.moved else "no move"
    return {**summary, "action": action, "line": f"{config.competition}: {word}: {decision.line()} → {action}"}


def _act(config: Config, retrain: bool, quota, retrain_run, rung: int, new_data: bool, send) -> tuple[str, bool, dict]:
    if not retrain:
        return f"event {watch.EVENT} emitted; the compete deployment retrains at rung {rung}", True, {}
    limits = quota() if config.submit else None
    if limits is not None and limits["remaining"] <= 0:
        reason = (f"quota used ({limits['used']}/{limits['daily_limit']} today)" if not limits.get("limited_by_total")
                  else "the competition's lifetime submission cap is reached")
        return f"retrain and submission postponed: {reason}; the next watch acts on this move", False, {}
    action, details = climb(config, rung, new_data, retrain_run, send)
    return action, True, details


@flow(name="watch")
def watch_flow(config: Config = Config(), rules: watch.WatchRules = watch.WatchRules(), retrain: bool = True,
               runner: Runner = Runner(), options_file: str | None = None) -> dict:
    """Compare the leaderboard with the last snapshot; on a move, emit an event and retrain within the quota. With
    `options_file` (as `headstart run --config` takes) the file's config and runner are used."""
    if options_file:
        config, runner = read_options_file(Path(options_file))
    from flows.compete import compete
    from flows.orchestration import dask_task_runner
    from tasks import stages

    retrain_flow = compete.with_options(task_runner=dask_task_runner(runner.dask_address)) \
        if runner.task_runner == "dask" else compete

    def retrain_run(settings: Config) -> Path:
        return retrain_flow(settings, stages.new_run_id(), runner=runner)

    return watch_once(config, rules, retrain, snapshot=take_snapshot, quota=read_quota, retrain_run=retrain_run,
                      emit=emit_moved, publish=publish_decision, open=open_backend, send=send_submission)


def run_watch(config: Config, rules: watch.WatchRules = watch.WatchRules(), retrain: bool = True,
              runner: Runner = Runner()) -> dict:
    """The watch flow; without Prefect's API, the same steps as plain calls (no event, no artifacts)."""
    from flows.compete import run_compete

    return run_or_fall_back(lambda: watch_flow(config, rules, retrain, runner),
                            lambda: watch_once(config, rules, retrain,
                                               retrain_run=lambda settings: run_compete(settings, runner)),
                            "the watch")
