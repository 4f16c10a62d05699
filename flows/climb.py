"""A retrain that can do better: one rung up the ladder (tasks/ladder.py), submitted only when its honest CV beats
the best submitted before. Used by `headstart watch` (the retrain it runs itself) and by the compete deployment
that `headstart serve`'s watcher triggers (the rung comes in the event)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from tasks import ladder
from tasks.config import Config
from tasks.record import RunRecord
from tasks.watch import WatchHistory, number


def climb(config: Config, rung: int, new_data: bool, run: Callable[[Config], Path],
          send: Callable[[Path], dict]) -> tuple[str, dict]:
    """Retrain at `rung` without submitting, then send the submission only if its CV (the blend's nested estimate)
    beats the best submitted CV (after a new data version, always). Returns the action's line and the details the
    watch's decision records."""
    history = WatchHistory(config.paths.watch(config.competition)).decisions.read()
    record = RunRecord.read(Path(run(dataclasses.replace(ladder.climbed(config, rung), submit=False))))
    cv = record.blend_nested_cv_score if record.blend_nested_cv_score is not None else record.blend_cv_score
    best = None if new_data else ladder.best_submitted(history, record.metric)
    details = {"run": str(record_path(config, record)), "rung": rung, "rung_name": ladder.rung_name(rung), "cv": cv,
               "best_submitted_cv": best, "new_data": new_data, "blend_cv_score": record.blend_cv_score,
               "submitted": False}
    what = f"retrained at rung {rung} ({ladder.rung_name(rung)}): CV {number(cv)}"
    if not config.submit:
        return f"{what}; not submitted (--no-submit)", details
    if not (new_data or ladder.beats(cv, best, record.metric)):
        return f"{what} does not beat the best submitted {number(best)}; not submitted", details
    result = send(Path(record.submission))
    details.update(submitted=not result.get("duplicate"), public_score=result.get("public_score"),
                   submission_status=result.get("status"))
    if result.get("duplicate"):
        return f"{what}; its file was sent already as ref {result.get('ref')}, not sent again", details
    against = "a new data version" if new_data else f"the best submitted {number(best)}" if best is not None \
        else "nothing submitted before"
    return f"{what} beats {against} → submitted (public score {number(result.get('public_score'))})", details


def record_path(config: Config, record: RunRecord) -> Path:
    from tasks.record import run_json_path

    return run_json_path(config, record.run_id)
