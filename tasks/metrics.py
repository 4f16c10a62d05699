"""Competition metrics on class probabilities."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss

from tasks.errors import SpecError


def score_probabilities(labels: np.ndarray, probabilities: np.ndarray, metric: str) -> float:
    """Accuracy of the most probable class, or log loss (clipped and renormalised, as Kaggle scores it)."""
    if metric == "accuracy":
        return float(accuracy_score(labels, probabilities.argmax(axis=1)))
    if metric == "log_loss":
        clipped = np.clip(probabilities, 1e-15, 1 - 1e-15)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        return float(log_loss(labels, clipped, labels=list(range(probabilities.shape[1]))))
    raise SpecError(f"unknown metric {metric!r}; known metrics are accuracy and log_loss")


def higher_is_better(metric: str) -> bool:
    return metric == "accuracy"
