"""Competition metrics, one interface for all: targets and answers (or probabilities) in, a score out.

Targets are class indices, shape (N,), for every task but multilabel, whose targets are a 0/1 tag matrix (N, T).
Probabilities are what every member predicts, (N, C): one column per class with rows summing to 1 (multiclass,
binary, ordinal, ranking), or one independent probability per tag (multilabel). Metrics that score hard answers
(accuracy, F-scores, MAP@K, kappa) score the answers a decision makes of the probabilities (tasks/decisions.py);
log loss and ROC AUC score the probabilities themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, fbeta_score, log_loss, roc_auc_score

from tasks.errors import CompetitionDataError, SpecError

TASKS = ("multiclass", "binary", "multilabel", "ordinal", "ranking")
CLIP = 1e-15  # Kaggle clips probabilities to [1e-15, 1 - 1e-15] before taking logs


@dataclass(frozen=True)
class Metric:
    """A metric's name, direction, what it scores (`probabilities` or the `answers` a decision makes) and the task
    types it fits."""

    name: str
    higher_is_better: bool
    scores: str
    tasks: tuple[str, ...]

    @property
    def k(self) -> int | None:
        """K of map@K: how many labels an answer holds."""
        return int(self.name.split("@")[1]) if self.name.startswith("map@") else None


_HARD_SINGLE = ("multiclass", "ordinal")
METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("accuracy", True, "answers", _HARD_SINGLE),
    Metric("log_loss", False, "probabilities", ("multiclass", "binary")),
    Metric("roc_auc", True, "probabilities", ("binary", "multiclass")),
    Metric("f1_micro", True, "answers", (*_HARD_SINGLE, "multilabel")),
    Metric("f1_macro", True, "answers", (*_HARD_SINGLE, "multilabel")),
    Metric("mean_f1", True, "answers", ("multilabel",)),
    Metric("mean_f2", True, "answers", ("multilabel",)),
    *(Metric(f"map@{k}", True, "answers", ("ranking",)) for k in range(1, 11)),
    Metric("quadratic_weighted_kappa", True, "answers", ("ordinal",)),
)}


def get_metric(name: str) -> Metric:
    """The metric called `name`; SpecError listing the known names otherwise."""
    if name not in METRICS:
        raise SpecError(f"unknown metric {name!r}; known metrics are {', '.join(METRICS)}")
    return METRICS[name]


def higher_is_better(metric: str) -> bool:
    return get_metric(metric).higher_is_better


def metrics_for(task: str) -> list[str]:
    """The metrics that fit a task type."""
    return [name for name, metric in METRICS.items() if task in metric.tasks]


def score_answers(targets: np.ndarray, answers: np.ndarray, metric: str) -> float:
    """Score hard answers: class indices (N,), a 0/1 tag matrix (N, T), or ranked class indices (N, K), most likely
    first (-1 where an answer holds fewer than K labels)."""
    targets, answers = np.asarray(targets), np.asarray(answers)
    if metric == "accuracy":
        return float(accuracy_score(targets, answers))
    if metric in ("f1_micro", "f1_macro"):
        labels = None if targets.ndim == 2 else np.unique(np.concatenate([targets, answers]))
        return float(f1_score(targets, answers, average=metric[3:], labels=labels, zero_division=0.0))
    if metric in ("mean_f1", "mean_f2"):
        # A row with no tag and no tag predicted is answered right: F = 1 (sklearn's zero_division).
        return float(fbeta_score(targets, answers, beta=int(metric[-1]), average="samples", zero_division=1.0))
    if metric.startswith("map@"):
        return mean_average_precision(targets, answers, get_metric(metric).k)
    if metric == "quadratic_weighted_kappa":
        return quadratic_weighted_kappa(targets, answers)
    raise SpecError(f"metric {get_metric(metric).name!r} scores probabilities, not answers")


def score_probabilities(targets: np.ndarray, probabilities: np.ndarray, metric: str, decision: dict | None = None
                        ) -> float:
    """Score probabilities by `metric`: log loss and ROC AUC directly, the others through `decision` (None: the
    metric's unfitted default, e.g. argmax, a 0.5 threshold, the top K, rounding the expected grade)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if get_metric(metric).scores == "probabilities":
        return _score_probabilities(np.asarray(targets), probabilities, metric)
    task = "multilabel" if np.ndim(targets) == 2 else None
    decision = decision or default_decision(metric, probabilities.shape[1], task)
    return score_answers(targets, apply_decision(probabilities, decision), metric)


def score(targets: np.ndarray, probabilities: np.ndarray, metric: str, decision: dict | None = None) -> float:
    """The one entry point for members, the blend and local scoring (see `score_probabilities`)."""
    return score_probabilities(targets, probabilities, metric, decision)


def _score_probabilities(targets: np.ndarray, probabilities: np.ndarray, metric: str) -> float:
    num_classes = probabilities.shape[1]
    if metric == "log_loss":
        if num_classes == 2:  # binary: Kaggle scores the positive class's probability alone
            positive = np.clip(probabilities[:, 1], CLIP, 1 - CLIP)
            probabilities = np.stack([1 - positive, positive], axis=1)
        # clipped, then each row divided by its sum, as Kaggle scores a multi-class submission
        clipped = np.clip(probabilities, CLIP, 1 - CLIP)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        return float(log_loss(targets, clipped, labels=list(range(num_classes))))
    if num_classes == 2:
        if len(np.unique(targets)) < 2:
            raise CompetitionDataError("ROC AUC is undefined on rows of one class: the rows scored need both")
        return float(roc_auc_score(targets, probabilities[:, 1]))
    # one column per class: the mean over the classes of each column's AUC, one against the rest
    present = [column for column in range(num_classes) if 0 < (targets == column).sum() < len(targets)]
    return float(np.mean([roc_auc_score(targets == column, probabilities[:, column]) for column in present]))


def mean_average_precision(targets: np.ndarray, ranked: np.ndarray, k: int) -> float:
    """MAP@K with one true label per row: 1/rank of the first time the true label appears in the first K
    answers, else 0 (a label repeated later in a row earns nothing, as Kaggle's apk counts it once)."""
    ranked = np.asarray(ranked)[:, :k]
    hits = ranked == np.asarray(targets)[:, None]
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), -1)
    return float((1.0 / np.where(first >= 0, first + 1, np.inf)).mean())


def quadratic_weighted_kappa(targets: np.ndarray, grades: np.ndarray) -> float:
    """Cohen's kappa with quadratic weights (scikit-learn's); 1 for identical constant answers, 0 where the
    expected disagreement is zero otherwise (kappa is undefined there)."""
    targets, grades = np.asarray(targets), np.asarray(grades)
    if np.array_equal(targets, grades):
        return 1.0
    if len(np.unique(targets)) == 1 and len(np.unique(grades)) == 1:
        return 0.0
    return float(cohen_kappa_score(targets, grades, weights="quadratic"))


def default_decision(metric: str, num_classes: int, task: str | None = None) -> dict:
    """The decision with nothing fitted: argmax, 0.5 per tag, the top K, or rounding the expected grade."""
    spec = get_metric(metric)
    if spec.scores == "probabilities":
        return {"kind": "probabilities"}
    if spec.k is not None:
        return {"kind": "top_k", "k": spec.k}
    if metric == "quadratic_weighted_kappa":
        return {"kind": "cut_points", "cut_points": [grade + 0.5 for grade in range(num_classes - 1)]}
    if task == "multilabel":
        return {"kind": "thresholds", "thresholds": [0.5] * num_classes}
    return {"kind": "argmax"}


def apply_decision(probabilities: np.ndarray, decision: dict) -> np.ndarray:
    """The answers: class indices (N,), a 0/1 tag matrix (N, T), ranked class indices (N, K), or the probabilities."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    kind = decision["kind"]
    if kind == "argmax":
        return probabilities.argmax(axis=1)
    if kind == "thresholds":
        return (probabilities >= np.asarray(decision["thresholds"])[None, :]).astype(np.int64)
    if kind == "top_k":
        k = min(int(decision["k"]), probabilities.shape[1])
        weight = float(decision.get("prior_weight", 0.0))
        if weight:  # shrunk toward the training prior (where the probabilities know little, the common classes win)
            probabilities = (1 - weight) * probabilities + weight * np.asarray(decision["prior"])[None, :]
        return np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    if kind == "cut_points":
        return np.digitize(expected_grade(probabilities), np.sort(decision["cut_points"]))
    if kind == "probabilities":
        return probabilities
    raise ValueError(f"unknown decision kind {kind!r}")


def expected_grade(probabilities: np.ndarray) -> np.ndarray:
    """The mean grade under the probabilities (grades are the column indices 0..C-1)."""
    return probabilities @ np.arange(probabilities.shape[1], dtype=np.float64)
