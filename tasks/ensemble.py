"""Blending members by their out-of-fold predictions: mean, fitted weights, greedy selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from tasks.errors import ConfigError
from tasks.files import atomic_write_json, atomic_write_npy
from tasks.fitting import FittedMembers, load_member, predicted_rows
from tasks.index import TRAIN, read_index
from tasks.metrics import higher_is_better, score_probabilities
from tasks.plots import plot_confusion_matrix

METHODS = ("mean", "weights", "caruana")


def blend(predictions: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted mean of the members' probabilities."""
    if not predictions:
        raise ConfigError("nothing to blend: no member predictions")
    return np.tensordot(np.asarray(weights, dtype=np.float64), np.stack(predictions).astype(np.float64), axes=1)


def _log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-15, 1.0))))


def mean_weights(oofs: list[np.ndarray]) -> np.ndarray:
    return np.full(len(oofs), 1.0 / len(oofs))


def fitted_weights(oofs: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one that minimise the out-of-fold log loss (smooth, so it fits well)."""
    def loss(logits: np.ndarray) -> float:
        weights = np.exp(logits - logits.max())
        return _log_loss(labels, blend(oofs, weights / weights.sum()))

    result = minimize(loss, np.zeros(len(oofs)), method="Powell", options={"maxiter": 2000})
    weights = np.exp(result.x - result.x.max())
    return weights / weights.sum()


def caruana_weights(oofs: list[np.ndarray], labels: np.ndarray, metric: str, rounds: int = 50) -> np.ndarray:
    """Greedy forward selection with replacement (Caruana et al., 2004): add, each round, the member
    whose addition scores best; the weights are how often each was picked. Ties go to lower log loss."""
    counts = np.zeros(len(oofs))
    sign = 1.0 if higher_is_better(metric) else -1.0
    total = np.zeros_like(oofs[0], dtype=np.float64)
    for _ in range(rounds):
        candidates = [(total + oof) / (counts.sum() + 1) for oof in oofs]
        ranking = [(sign * score_probabilities(labels, c, metric), -_log_loss(labels, c)) for c in candidates]
        best = max(range(len(oofs)), key=lambda i: ranking[i])
        counts[best] += 1
        total += oofs[best]
    return counts / counts.sum()


def blend_weights(method: str, oofs: list[np.ndarray], labels: np.ndarray, metric: str) -> np.ndarray:
    if method == "mean":
        return mean_weights(oofs)
    if method == "weights":
        return fitted_weights(oofs, labels)
    if method == "caruana":
        return caruana_weights(oofs, labels, metric)
    raise ConfigError(f"unknown blend method {method!r}; known methods are {METHODS}")


def nested_cv_score(method: str, oofs: list[np.ndarray], labels: np.ndarray, folds: np.ndarray, metric: str) -> float:
    """The blend's score as on rows its weights never saw: for each fold, weights fitted on the other folds'
    out-of-fold predictions blend the held-out fold's; the score is of the whole, so assembled. The plain CV
    of `weights` and `caruana` fits and scores on the same rows, which flatters them."""
    blended = np.zeros_like(oofs[0], dtype=np.float64)
    for fold in np.unique(folds):
        held_out = folds == fold
        weights = blend_weights(method, [oof[~held_out] for oof in oofs], labels[~held_out], metric)
        blended[held_out] = blend([oof[held_out] for oof in oofs], weights)
    return score_probabilities(labels, blended, metric)


def blend_members(plan, members: FittedMembers) -> Path:
    """Blend the members by the configured method; ensemble.json records every method's CV score."""
    index = read_index(plan.index_dir)
    metric, method = plan.spec.metric, plan.config.blend
    train = index.split(TRAIN)
    labels, folds = train["label"].to_numpy(), train["fold"].to_numpy()
    loaded = [load_member(Path(directory)) for directory in members.directories]
    names = [meta["name"] for meta, _, _ in loaded]
    tests = [test for _, _, test in loaded]
    rows = np.all([predicted_rows(oof) for _, oof, _ in loaded], axis=0)
    if not rows.any():
        raise ConfigError(f"nothing to blend: no training row has an out-of-fold prediction from every member of {names}")
    # Fit and score on the rows every member predicted (all of them, unless a member fits only some folds);
    # with a single fold left, the nested estimate splits its rows in two.
    oofs, labels, folds = [oof[rows] for _, oof, _ in loaded], labels[rows], folds[rows]
    if len(np.unique(folds)) < 2:
        folds = np.arange(len(folds)) % 2
    candidates = {name: blend_weights(name, oofs, labels, metric) for name in METHODS}
    scores = {name: score_probabilities(labels, blend(oofs, w), metric) for name, w in candidates.items()}
    nested = {name: nested_cv_score(name, oofs, labels, folds, metric) for name in METHODS}
    weights = candidates[method]
    oof, test = np.full((len(rows), oofs[0].shape[1]), np.nan), blend(tests, weights)
    oof[rows] = blend(oofs, weights)
    plot_confusion_matrix(labels, oof[rows], plan.spec.class_names, f"blend (CV {metric} {scores[method]:.4f})",
                          plan.paths.models(plan.competition, plan.run_id) / "blend" / "confusion_matrix.png")
    directory = plan.paths.predictions(plan.competition, plan.run_id) / "blend"
    atomic_write_npy(directory / "oof.npy", oof.astype(np.float32))
    atomic_write_npy(directory / "test.npy", test.astype(np.float32))
    atomic_write_json(directory / "ensemble.json", {
        "method": method, "metric": metric, "cv_score": scores[method],
        "cv_score_by_method": scores, "nested_cv_score": nested[method], "nested_cv_score_by_method": nested,
        "rows_scored": int(rows.sum()), "rows": len(rows),
        "members": {name: {"cv_score": meta["cv_score"], "weight": float(weight)}
                    for name, (meta, _, _), weight in zip(names, loaded, weights)}})
    return directory
