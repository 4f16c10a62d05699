"""Blending members by their out-of-fold predictions: mean, fitted weights, greedy selection on the metric; then
the decision that turns the blend's probabilities into answers (a threshold, cut points, the top K), fitted on the
same out-of-fold rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from tasks.decisions import apply_decision, fit_decision
from tasks.errors import ConfigError
from tasks.files import atomic_write_json, atomic_write_npy
from tasks.fitting import FittedMembers, load_member, predicted_rows, shows_confusion
from tasks.index import TRAIN, read_index
from tasks.metrics import get_metric, higher_is_better, score_answers, score_probabilities
from tasks.outputs import Outputs, outputs_of
from tasks.plots import plot_confusion_matrix
from tasks.submission import DECISION_FILE

METHODS = ("mean", "weights", "caruana")


def blend(predictions: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted mean of the members' probabilities."""
    if not predictions:
        raise ConfigError("nothing to blend: no member predictions")
    return np.tensordot(np.asarray(weights, dtype=np.float64), np.stack(predictions).astype(np.float64), axes=1)


def _outputs(targets: np.ndarray, oofs: list[np.ndarray]) -> Outputs:
    """Outputs enough to score a loss: a tag matrix is multi-label, class indices one label per row."""
    return Outputs("multilabel" if np.ndim(targets) == 2 else "multiclass", oofs[0].shape[1])


def mean_weights(oofs: list[np.ndarray]) -> np.ndarray:
    return np.full(len(oofs), 1.0 / len(oofs))


def fitted_weights(oofs: list[np.ndarray], targets: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one that minimise the out-of-fold loss (log loss, or binary cross-entropy
    per tag: smooth, so it fits well)."""
    outputs = _outputs(targets, oofs)

    def loss(logits: np.ndarray) -> float:
        weights = np.exp(logits - logits.max())
        return outputs.loss(targets, blend(oofs, weights / weights.sum()))

    result = minimize(loss, np.zeros(len(oofs)), method="Powell", options={"maxiter": 2000})
    weights = np.exp(result.x - result.x.max())
    return weights / weights.sum()


def caruana_weights(oofs: list[np.ndarray], targets: np.ndarray, metric: str, rounds: int = 50) -> np.ndarray:
    """Greedy forward selection with replacement (Caruana et al., 2004) on the competition's metric: add, each
    round, the member whose addition scores best (hard answers by the metric's plain decision: argmax, 0.5 per tag,
    the top K, rounded grades); the weights are how often each was picked. Ties go to the lower loss."""
    counts, outputs = np.zeros(len(oofs)), _outputs(targets, oofs)
    sign = 1.0 if higher_is_better(metric) else -1.0
    total = np.zeros_like(oofs[0], dtype=np.float64)
    for _ in range(rounds):
        candidates = [(total + oof) / (counts.sum() + 1) for oof in oofs]
        ranking = [(sign * score_probabilities(targets, c, metric), -outputs.loss(targets, c)) for c in candidates]
        best = max(range(len(oofs)), key=lambda i: ranking[i])
        counts[best] += 1
        total += oofs[best]
    return counts / counts.sum()


def blend_weights(method: str, oofs: list[np.ndarray], targets: np.ndarray, metric: str) -> np.ndarray:
    if method == "mean":
        return mean_weights(oofs)
    if method == "weights":
        return fitted_weights(oofs, targets)
    if method == "caruana":
        return caruana_weights(oofs, targets, metric)
    raise ConfigError(f"unknown blend method {method!r}; known methods are {METHODS}")


def scored_with_decision(targets: np.ndarray, probabilities: np.ndarray, metric: str, task: str) -> tuple[float, dict]:
    """The decision fitted on these rows, and the metric of its answers there (in-sample: it flatters)."""
    decision = fit_decision(targets, probabilities, metric, task)
    if get_metric(metric).scores == "probabilities":
        return score_probabilities(targets, probabilities, metric), decision
    return score_answers(targets, apply_decision(probabilities, decision), metric), decision


def nested_cv_score(method: str, oofs: list[np.ndarray], targets: np.ndarray, folds: np.ndarray, metric: str,
                    task: str = "multiclass") -> float:
    """The blend's score as on rows nothing was fitted on: for each fold, weights and the decision fitted on the
    other folds' out-of-fold predictions answer the held-out fold; the score is of the whole, so assembled. The
    plain CV fits weights and decision on the rows it scores, which flatters them."""
    blended, answers = np.zeros_like(oofs[0], dtype=np.float64), None
    for fold in np.unique(folds):
        held_out = folds == fold
        weights = blend_weights(method, [oof[~held_out] for oof in oofs], targets[~held_out], metric)
        blended[held_out] = blend([oof[held_out] for oof in oofs], weights)
        decision = fit_decision(targets[~held_out], blend([oof[~held_out] for oof in oofs], weights), metric, task)
        fold_answers = apply_decision(blended[held_out], decision)
        if answers is None:
            answers = np.zeros((len(targets), *fold_answers.shape[1:]), dtype=fold_answers.dtype)
        answers[held_out] = fold_answers
    if get_metric(metric).scores == "probabilities":
        return score_probabilities(targets, blended, metric)
    return score_answers(targets, answers, metric)


def blend_members(plan, members: FittedMembers) -> Path:
    """Blend the members by the configured method, fit the decision on the blend's out-of-fold rows; ensemble.json
    records every method's CV score (in-sample and nested) and decision.json the decision the submission uses."""
    index = read_index(plan.index_dir)
    metric, method, outputs = plan.spec.metric, plan.config.blend, outputs_of(index)
    targets, folds = index.targets(), index.split(TRAIN)["fold"].to_numpy()
    loaded = [load_member(Path(directory)) for directory in members.directories]
    names = [meta["name"] for meta, _, _ in loaded]
    tests = [test for _, _, test in loaded]
    rows = np.all([predicted_rows(oof) for _, oof, _ in loaded], axis=0)
    if not rows.any():
        raise ConfigError(f"nothing to blend: no training row has an out-of-fold prediction from every member of {names}")
    # Fit and score on the rows every member predicted (all of them, unless a member fits only some folds);
    # with a single fold left, the nested estimate splits its rows in two.
    oofs, targets, folds = [oof[rows] for _, oof, _ in loaded], targets[rows], folds[rows]
    if len(np.unique(folds)) < 2:
        folds = np.arange(len(folds)) % 2
    candidates = {name: blend_weights(name, oofs, targets, metric) for name in METHODS}
    fitted = {name: scored_with_decision(targets, blend(oofs, w), metric, outputs.task) for name, w in candidates.items()}
    scores = {name: score for name, (score, _) in fitted.items()}
    nested = {name: nested_cv_score(name, oofs, targets, folds, metric, outputs.task) for name in METHODS}
    weights, decision = candidates[method], fitted[method][1]
    oof, test = np.full((len(rows), oofs[0].shape[1]), np.nan), blend(tests, weights)
    oof[rows] = blend(oofs, weights)
    if shows_confusion(outputs):
        plot_confusion_matrix(targets, oof[rows], plan.spec.class_names, f"blend (CV {metric} {scores[method]:.4f})",
                              plan.paths.models(plan.competition, plan.run_id) / "blend" / "confusion_matrix.png")
    directory = plan.paths.predictions(plan.competition, plan.run_id) / "blend"
    atomic_write_npy(directory / "oof.npy", oof.astype(np.float32))
    atomic_write_npy(directory / "test.npy", test.astype(np.float32))
    atomic_write_json(directory / DECISION_FILE, decision)
    atomic_write_json(directory / "ensemble.json", {
        "method": method, "metric": metric, "cv_score": scores[method], "decision": decision,
        "cv_score_by_method": scores, "nested_cv_score": nested[method], "nested_cv_score_by_method": nested,
        "rows_scored": int(rows.sum()), "rows": len(rows),
        "members": {name: {"cv_score": meta["cv_score"], "weight": float(weight)}
                    for name, (meta, _, _), weight in zip(names, loaded, weights)}})
    return directory
