"""What a time budget buys a CNN or a fine-tuned backbone: its epochs and folds, planned from its cost per image
measured on this machine.

On large grey-image competitions (`LARGE_GREY_IMAGES` training images and up) the default recipe trains the deep
CNN at full size on a one-cycle schedule, whose length must be known before it starts. So the plan stage measures
what the model costs here (`measure_cost`: a few timed training steps and predictions, cached in the data folder
so that an unchanged re-run plans the same and finds its member cached), and `plan_epochs` spends the budget: the
fewest folds whose epochs stay within `MAX_EPOCHS_PER_FOLD`, then more folds (each fold model also predicts the
test set: an ensemble). The budget is what is left of `--time-limit`, or by default `DEFAULT_SECONDS_PER_IMAGE`
per training image (bench/RESULTS.md, "Issue 21: real digits at size"). The colour recipe's finetune member is
planned the same way: its share of what --time-limit leaves, or FINETUNE_SECONDS_PER_IMAGE by default (bench/RESULTS.md,
"Issue 21: colour photos in 25 minutes").
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LARGE_GREY_IMAGES = 5_000
DEFAULT_SECONDS_PER_IMAGE = 0.026  # the default budget: 42,000 training images, 18.2 minutes
MAX_EPOCHS_PER_FOLD = 20  # past this a second fold model gains more than more epochs of the first
# The finetune member (the colour recipe's strongest, on photos): its default budget per training image (5,000
# images: 18 minutes; the features and heads take about 5 more there), its share of what --time-limit leaves when
# other members train beside it (they and the features get the rest), and its epochs per fold before a second fold.
FINETUNE_SECONDS_PER_IMAGE = 0.22
FINETUNE_SHARE = 0.8
FINETUNE_MAX_EPOCHS = 12
DEFAULT_SECONDS = {"cnn": DEFAULT_SECONDS_PER_IMAGE, "finetune": FINETUNE_SECONDS_PER_IMAGE}
# The default budget's floor: at 8,000 grey images 26 ms an image bought 4 epochs (test 0.970 on mnist-dev's first
# 8,000, where the half-size CNN and SVM reached 0.985 in 13 minutes): ten minutes buy the epochs a CNN needs.
MIN_DEFAULT_SECONDS = 600.0
MIN_EPOCHS = 2
# Of a --time-limit's budget planned: the measurement's noise, and what its eight timed steps do not see (each
# epoch's watched rows, the folds' resets and predictions). At 0.95 a 600-image run's folds took about 1.2 times
# the estimate, on a machine running a test suite, and the time limit cut its last fold. A default budget is no
# deadline (nothing is cut when it runs over): it is planned whole, so that it is what the run takes.
PLAN_MARGIN = 0.8


@dataclass(frozen=True)
class TrainingCost:
    """Seconds per image, measured: training (augmentation, forward and backward pass, update) and prediction;
    and the seconds to build and trace the model once."""

    train: float
    predict: float
    setup: float


@dataclass(frozen=True)
class FoldShape:
    """What one fold handles: rows it fits, rows its early stopping watches every epoch, rows it predicts at the
    end (its held-out rows and the test set), each prediction in `views` views (test-time shifts), and the epochs
    and rows of a pseudo-label round."""

    fit: int
    stop: int
    predict: int
    views: int = 1
    second_round_epochs: int = 0
    second_round_rows: int = 0


@dataclass(frozen=True)
class BudgetPlan:
    """The folds and epochs a budget buys, and what it was planned from (for run.json and the run's output)."""

    budget_seconds: float
    budget_source: str  # "--time-limit" or "default"
    folds: int
    epochs: int
    estimated_seconds: float
    cost: TrainingCost
    member: str = "cnn"  # the member it bought epochs and folds for
    share: float = 1.0  # of what --time-limit leaves when the member starts, its own (tasks/budget.py)

    def summary(self) -> dict:
        return asdict(self)


def fold_seconds(cost: TrainingCost, shape: FoldShape, epochs: int) -> float:
    """The estimated seconds of one fold trained for `epochs` epochs."""
    per_epoch = shape.fit * cost.train + shape.stop * cost.predict
    second_round = shape.second_round_epochs * (shape.second_round_rows * cost.train + shape.stop * cost.predict)
    predictions = shape.views * shape.predict * cost.predict * (2 if shape.second_round_epochs else 1)
    return epochs * per_epoch + second_round + predictions


def plan_epochs(budget_seconds: float, cost: TrainingCost, shape: FoldShape, folds_available: int,
                max_epochs: int = MAX_EPOCHS_PER_FOLD, margin: float = PLAN_MARGIN) -> tuple[int, int]:
    """(folds, epochs): the fewest folds whose epochs, spending `margin` of the budget, stay within `max_epochs`
    (all the folds, and more epochs, when even that is not enough); at least MIN_EPOCHS on one fold."""
    usable = margin * budget_seconds - cost.setup
    per_epoch = max(fold_seconds(cost, shape, 1) - fold_seconds(cost, shape, 0), 1e-9)
    for folds in range(1, folds_available + 1):
        epochs = math.floor((usable / folds - fold_seconds(cost, shape, 0)) / per_epoch)
        if epochs <= max_epochs or folds == folds_available:
            break
    if epochs < MIN_EPOCHS:
        return 1, MIN_EPOCHS
    return folds, epochs


def folds_for_epochs(budget_seconds: float, cost: TrainingCost, shape: FoldShape, epochs: int,
                     folds_available: int, margin: float = PLAN_MARGIN) -> int:
    """The folds a budget buys at a fixed number of epochs (the config set them): as many as fit, at least one."""
    usable = margin * budget_seconds - cost.setup
    return max(1, min(folds_available, math.floor(usable / fold_seconds(cost, shape, epochs))))


def default_budget_seconds(num_train: int, kind: str = "cnn") -> float:
    """A member kind's budget without --time-limit: its seconds per training image (DEFAULT_SECONDS), and at least
    MIN_DEFAULT_SECONDS."""
    return max(MIN_DEFAULT_SECONDS, DEFAULT_SECONDS[kind] * num_train)


def cached_cost(path: Path, measure) -> TrainingCost:
    """The cost recorded at `path`, else `measure()`'s, recorded there."""
    from tasks.files import atomic_write_json

    if path.is_file():
        return TrainingCost(**json.loads(path.read_text())["cost"])
    cost = measure()
    atomic_write_json(path, {"cost": asdict(cost), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return cost
