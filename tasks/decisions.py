"""Decisions: how probabilities become a submission's answers, fitted on out-of-fold rows and applied to others.

A decision is a small JSON value (recorded in run.json): `{"kind": "argmax"}` (accuracy, F1 of one label),
`{"kind": "thresholds", "thresholds": [...]}` (one per tag, multi-label: the tags at or above their threshold),
`{"kind": "top_k", "k": K}` (map@K: the K most probable labels, most likely first), `{"kind": "cut_points",
"cut_points": [...]}` (ordinal: the expected grade sum_c c * p_c cut into grades, the optimised-rounding trick) and
`{"kind": "probabilities"}` (log loss, ROC AUC: the probabilities are the answer). `fit_decision` chooses the
thresholds or cut points that maximise the metric on the rows it is given; `nested_score` scores a decision as on
rows it never saw: fitted on the other folds, applied to each held-out fold.
"""

from __future__ import annotations

import numpy as np

from tasks.metrics import (  # how a decision is applied lives with the metrics, which score through it
    apply_decision,
    default_decision,
    expected_grade,
    get_metric,
    score_answers,
    score_probabilities,
)

__all__ = ["apply_decision", "default_decision", "fit_decision", "nested_score", "expected_grade"]

THRESHOLD_GRID = np.round(np.arange(0.02, 0.99, 0.02), 2)  # candidate thresholds, 0.02 apart
CUT_STEPS = 40  # candidate positions tried for each cut point, between its neighbours
PASSES = 3  # rounds of coordinate search (per-tag thresholds, cut points)


def fit_decision(targets: np.ndarray, probabilities: np.ndarray, metric: str, task: str | None = None,
                 per_tag: bool = True) -> dict:
    """The decision that maximises `metric` on these rows (the out-of-fold predictions): thresholds for tags
    (one for all, then per tag where `per_tag`), cut points for grades; argmax and top K need no fitting."""
    targets, probabilities = np.asarray(targets), np.asarray(probabilities, dtype=np.float64)
    task = "multilabel" if targets.ndim == 2 else task
    decision = default_decision(metric, probabilities.shape[1], task)
    if decision["kind"] == "thresholds":
        return {"kind": "thresholds", "thresholds": fit_thresholds(targets, probabilities, metric, per_tag)}
    if decision["kind"] == "cut_points":
        return {"kind": "cut_points", "cut_points": fit_cut_points(targets, probabilities)}
    if decision["kind"] == "top_k":
        return fit_prior_weight(targets, probabilities, metric, decision["k"])
    return decision


def nested_score(targets: np.ndarray, probabilities: np.ndarray, folds: np.ndarray, metric: str,
                 task: str | None = None) -> float:
    """The score of a fitted decision as on rows it never saw: for each fold, the decision fitted on the other
    folds' rows answers the held-out fold's; the assembled answers are scored together."""
    targets, probabilities, folds = np.asarray(targets), np.asarray(probabilities, np.float64), np.asarray(folds)
    if get_metric(metric).scores == "probabilities":
        return score_probabilities(targets, probabilities, metric)
    answers = None
    for fold in np.unique(folds):
        held_out = folds == fold
        decision = fit_decision(targets[~held_out], probabilities[~held_out], metric, task)
        fold_answers = apply_decision(probabilities[held_out], decision)
        if answers is None:
            answers = np.zeros((len(targets), *fold_answers.shape[1:]), dtype=fold_answers.dtype)
        answers[held_out] = fold_answers
    return score_answers(targets, answers, metric)


PRIOR_WEIGHTS = np.round(np.arange(0.0, 1.01, 0.1), 1)


def fit_prior_weight(targets: np.ndarray, probabilities: np.ndarray, metric: str, k: int) -> dict:
    """The k labels for map@K: the top K of the probabilities shrunk toward the classes' frequency in these rows,
    by the weight (0 to 1, 0.1 apart) that scores best here. Where the members know little (many classes, few
    images each), the common classes should lead the answer: the trick behind Kaggle's `new_whale` placement."""
    prior = np.bincount(targets, minlength=probabilities.shape[1]) / max(len(targets), 1)
    scores = [score_answers(targets, apply_decision(probabilities, {"kind": "top_k", "k": k, "prior": prior.tolist(),
                                                                     "prior_weight": float(weight)}), metric)
              for weight in PRIOR_WEIGHTS]
    weight = float(PRIOR_WEIGHTS[int(np.argmax(scores))])  # the first best: no shrinking unless it pays
    return {"kind": "top_k", "k": k, **({"prior": prior.tolist(), "prior_weight": weight} if weight else {})}


def fit_thresholds(tags: np.ndarray, probabilities: np.ndarray, metric: str, per_tag: bool = True) -> list[float]:
    """Thresholds maximising a multi-label F-score: the best single threshold, then each tag's in turn."""
    beta = 2.0 if metric == "mean_f2" else 1.0
    average = {"mean_f1": "samples", "mean_f2": "samples", "f1_micro": "micro", "f1_macro": "macro"}[metric]
    tags = tags.astype(bool)
    scores = [_f_score(tags, probabilities >= threshold, beta, average) for threshold in THRESHOLD_GRID]
    thresholds = np.full(tags.shape[1], THRESHOLD_GRID[int(np.argmax(scores))])
    for _ in range(PASSES if per_tag else 0):
        for tag in range(tags.shape[1]):
            predicted = probabilities >= thresholds[None, :]
            column = probabilities[:, tag, None] >= THRESHOLD_GRID[None, :]  # (N, G): each candidate
            candidates = _f_score_per_column(tags, predicted, tag, column, beta, average)
            best = int(np.argmax(candidates))
            if candidates[best] > candidates[list(THRESHOLD_GRID).index(thresholds[tag])] + 1e-12:
                thresholds[tag] = THRESHOLD_GRID[best]
    return [float(value) for value in thresholds]


def _f_beta(tp, fp, fn, beta: float, empty: float):
    """F-beta from counts (arrays broadcast); `empty` where nothing is true or predicted."""
    weight = beta * beta
    denominator = (1 + weight) * tp + weight * fn + fp
    return np.where(denominator > 0, (1 + weight) * tp / np.maximum(denominator, 1e-300), empty)


def _f_score(tags: np.ndarray, predicted: np.ndarray, beta: float, average: str) -> float:
    tp, fp, fn = (tags & predicted), (~tags & predicted), (tags & ~predicted)
    if average == "samples":
        return float(_f_beta(tp.sum(1), fp.sum(1), fn.sum(1), beta, 1.0).mean())
    if average == "micro":
        return float(_f_beta(tp.sum(), fp.sum(), fn.sum(), beta, 0.0))
    return float(_f_beta(tp.sum(0), fp.sum(0), fn.sum(0), beta, 0.0).mean())


def _f_score_per_column(tags, predicted, tag, column, beta: float, average: str) -> np.ndarray:
    """The F-score for each candidate prediction `column` (N, G) of one tag, the other tags as `predicted`."""
    others = np.ones(tags.shape[1], dtype=bool)
    others[tag] = False
    rest_tags, rest_predicted, truth = tags[:, others], predicted[:, others], tags[:, tag, None]
    tp, fp, fn = truth & column, ~truth & column, truth & ~column  # (N, G)
    if average == "samples":
        base = [(rest_tags & rest_predicted).sum(1), (~rest_tags & rest_predicted).sum(1),
                (rest_tags & ~rest_predicted).sum(1)]
        return _f_beta(base[0][:, None] + tp, base[1][:, None] + fp, base[2][:, None] + fn, beta, 1.0).mean(0)
    if average == "micro":
        base = [(rest_tags & rest_predicted).sum(), (~rest_tags & rest_predicted).sum(),
                (rest_tags & ~rest_predicted).sum()]
        return _f_beta(base[0] + tp.sum(0), base[1] + fp.sum(0), base[2] + fn.sum(0), beta, 0.0)
    return _f_beta(tp.sum(0), fp.sum(0), fn.sum(0), beta, 0.0)  # macro: the other tags' F-scores do not change


def fit_cut_points(grades: np.ndarray, probabilities: np.ndarray) -> list[float]:
    """Cut points on the expected grade that maximise the quadratic weighted kappa (coordinate search from plain
    rounding: each cut in turn moves to its best place between its neighbours)."""
    num_grades = probabilities.shape[1]
    expected = expected_grade(probabilities)
    cuts = np.arange(num_grades - 1, dtype=np.float64) + 0.5
    for _ in range(PASSES):
        for index in range(num_grades - 1):
            low = cuts[index - 1] if index > 0 else -0.5
            high = cuts[index + 1] if index < num_grades - 2 else num_grades - 0.5
            candidates = np.linspace(low, high, CUT_STEPS + 2)[1:-1]
            kappas = []
            for candidate in candidates:
                trial = cuts.copy()
                trial[index] = candidate
                kappas.append(fast_kappa(grades, np.digitize(expected, trial), num_grades))
            current = fast_kappa(grades, np.digitize(expected, cuts), num_grades)
            if max(kappas) > current + 1e-12:
                cuts[index] = candidates[int(np.argmax(kappas))]
    return [float(cut) for cut in cuts]


def fast_kappa(targets: np.ndarray, grades: np.ndarray, num_grades: int) -> float:
    """Quadratic weighted kappa from the confusion matrix (the search's inner loop; equal to scikit-learn's)."""
    observed = np.bincount(targets * num_grades + grades, minlength=num_grades ** 2).reshape(num_grades, num_grades)
    expected = np.outer(observed.sum(1), observed.sum(0)) / max(observed.sum(), 1)
    indices = np.arange(num_grades)
    weights = (indices[:, None] - indices[None, :]) ** 2
    denominator = (weights * expected).sum()
    return 1.0 - (weights * observed).sum() / denominator if denominator > 0 else 0.0
