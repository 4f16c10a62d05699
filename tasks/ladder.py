"""What a retrain tries when the leaderboard moves: a ladder of ever stronger runs, climbed one rung a move.

Rerunning the same recipe on the same data gives the same file, which the guard never sends twice. So each move
retrains one rung higher, each rung adding to the ones below it: another seed, a bigger budget (longer training),
more fine-tuned folds, then a fresh seed on top of everything, every further move. A new data version starts again
at the bottom. The new run is submitted only when its honest CV (the blend's nested estimate) beats the best CV
that was submitted before; the watch's decision records the rung, both scores and why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from tasks.config import Config
from tasks.metrics import higher_is_better


def _another_seed(config: Config) -> Config:
    return dataclasses.replace(config, seed=config.seed + 1)


def _bigger_budget(config: Config) -> Config:
    """Half as much time again (a time limit), and half as many epochs again (what fills it)."""
    train = dataclasses.replace(config.train, epochs=round(config.train.epochs * 1.5),
                                finetune_epochs=round(config.train.finetune_epochs * 1.5))
    limit = None if config.time_limit is None else config.time_limit * 1.5
    return dataclasses.replace(config, train=train, time_limit=limit)


def _more_finetuned_folds(config: Config) -> Config:
    folds = min(config.folds, config.train.finetune_folds + 1)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, finetune_folds=folds))


@dataclass(frozen=True)
class Rung:
    name: str
    change: Callable[[Config], Config]


LADDER = (Rung("the same recipe", lambda config: config), Rung("another seed", _another_seed),
          Rung("a bigger budget", _bigger_budget), Rung("more fine-tuned folds", _more_finetuned_folds))


def rung_name(rung: int) -> str:
    return LADDER[rung].name if rung < len(LADDER) else f"everything above, seed +{rung - len(LADDER) + 2}"


def climbed(config: Config, rung: int) -> Config:
    """The config at a rung: every change up to it, in order (above the top: a further seed each rung)."""
    for step in LADDER[1:rung + 1]:
        config = step.change(config)
    for _ in range(max(0, rung - len(LADDER) + 1)):
        config = _another_seed(config)
    return config


def next_rung(decisions: list[dict], new_data: bool) -> int:
    """One rung above the last retrain's; the bottom after a new data version (or before any retrain)."""
    rungs = [record["rung"] for record in decisions if record.get("rung") is not None]
    return 0 if new_data or not rungs else rungs[-1] + 1


def best_submitted(decisions: list[dict], metric: str) -> float | None:
    """The best CV among the retrains that were submitted (since the last new data version)."""
    scores = []
    for record in decisions:
        if record.get("rung") == 0 and record.get("new_data"):
            scores = []  # a new data version: earlier CVs do not compare
        if record.get("submitted") and record.get("cv") is not None:
            scores.append(record["cv"])
    if not scores:
        return None
    return max(scores) if higher_is_better(metric) else min(scores)


def beats(cv: float | None, best: float | None, metric: str) -> bool:
    if cv is None:
        return False
    return best is None or (cv > best if higher_is_better(metric) else cv < best)
