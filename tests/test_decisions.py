"""Decisions from probabilities: fitted on some rows, applied to others, scored nested."""

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from tasks.decisions import (
    apply_decision,
    default_decision,
    fast_kappa,
    fit_decision,
    nested_score,
)
from tasks.metrics import score, score_answers

RNG = np.random.default_rng(1)


def _tags(rows=400, num_tags=5):
    """Tags whose probabilities are shifted low for tag 0 (its best threshold is lower) and noisy elsewhere."""
    tags = RNG.integers(0, 2, (rows, num_tags))
    probabilities = np.clip(0.25 + 0.35 * tags + RNG.normal(0, 0.15, (rows, num_tags)), 0, 1)
    probabilities[:, 0] = np.clip(0.05 + 0.2 * tags[:, 0] + RNG.normal(0, 0.05, rows), 0, 1)
    return tags, probabilities


def test_defaults_need_no_fitting():
    assert default_decision("accuracy", 10) == {"kind": "argmax"}
    assert default_decision("map@5", 100) == {"kind": "top_k", "k": 5}
    assert default_decision("mean_f2", 3, "multilabel") == {"kind": "thresholds", "thresholds": [0.5, 0.5, 0.5]}
    assert default_decision("quadratic_weighted_kappa", 4) == {"kind": "cut_points", "cut_points": [0.5, 1.5, 2.5]}
    assert default_decision("log_loss", 2) == {"kind": "probabilities"}


def test_thresholds_per_tag_beat_one_half_and_are_json():
    tags, probabilities = _tags()
    decision = fit_decision(tags, probabilities, "mean_f2")
    assert json.loads(json.dumps(decision)) == decision
    assert decision["thresholds"][0] < 0.25 < 0.5  # tag 0's probabilities never reach 0.5
    fitted = score(tags, probabilities, "mean_f2", decision)
    assert fitted > score(tags, probabilities, "mean_f2") + 0.02
    one = fit_decision(tags, probabilities, "mean_f2", per_tag=False)
    assert len(set(one["thresholds"])) == 1 and score(tags, probabilities, "mean_f2", one) <= fitted + 1e-12


@pytest.mark.parametrize("metric", ["mean_f1", "f1_micro", "f1_macro"])
def test_thresholds_for_every_multilabel_f_score(metric):
    tags, probabilities = _tags()
    decision = fit_decision(tags, probabilities, metric)
    assert score(tags, probabilities, metric, decision) >= score(tags, probabilities, metric)


def test_cut_points_raise_kappa_over_rounding():
    """Probabilities that shrink towards the middle grade: rounding the expected grade under-uses 0 and 4."""
    grades = RNG.integers(0, 5, 500)
    one_hot = np.eye(5)[grades]
    probabilities = 0.5 * one_hot + 0.5 * np.full((500, 5), 0.2)
    probabilities = probabilities * RNG.uniform(0.8, 1.2, (500, 5))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    decision = fit_decision(grades, probabilities, "quadratic_weighted_kappa")
    assert decision["kind"] == "cut_points" and decision["cut_points"] == sorted(decision["cut_points"])
    assert score(grades, probabilities, "quadratic_weighted_kappa", decision) > \
        score(grades, probabilities, "quadratic_weighted_kappa")


def test_fast_kappa_is_scikit_learns():
    grades, answers = RNG.integers(0, 5, 200), RNG.integers(0, 5, 200)
    assert fast_kappa(grades, answers, 5) == pytest.approx(cohen_kappa_score(grades, answers, weights="quadratic"))


def test_top_k_and_argmax():
    probabilities = np.array([[0.1, 0.5, 0.4], [0.7, 0.1, 0.2]])
    assert apply_decision(probabilities, {"kind": "top_k", "k": 2}).tolist() == [[1, 2], [0, 2]]
    assert apply_decision(probabilities, fit_decision(np.array([1, 0]), probabilities, "accuracy")).tolist() == [1, 0]


def test_a_decision_fitted_on_some_rows_applies_to_others():
    tags, probabilities = _tags(600)
    decision = fit_decision(tags[:400], probabilities[:400], "mean_f2")
    answers = apply_decision(probabilities[400:], decision)
    assert answers.shape == (200, 5) and set(np.unique(answers)) <= {0, 1}
    assert score_answers(tags[400:], answers, "mean_f2") > score(tags[400:], probabilities[400:], "mean_f2")


def test_nested_score_fits_on_the_other_folds():
    """On pure noise, cut points fitted and scored on the same rows flatter; the nested score does not."""
    rng = np.random.default_rng(1)
    grades, probabilities = rng.integers(0, 5, 120), rng.dirichlet(np.ones(5), 120)
    folds = np.arange(120) % 3
    metric = "quadratic_weighted_kappa"
    in_sample = score(grades, probabilities, metric, fit_decision(grades, probabilities, metric))
    nested = nested_score(grades, probabilities, folds, metric)
    assert in_sample > 0.1 and nested < in_sample - 0.1
    assert nested_score(np.arange(10) % 2, np.full((10, 2), 0.5), np.arange(10) % 2, "log_loss") == \
        pytest.approx(np.log(2))


def test_map_at_k_shrinks_toward_the_prior_only_when_that_pays():
    """Where the probabilities know nothing (uniform noise) and one class is common, the fitted top K leads with it;
    where they know the answer, nothing is shrunk."""
    from tasks.decisions import fit_decision
    from tasks.metrics import apply_decision, mean_average_precision

    rng = np.random.default_rng(0)
    targets = np.where(rng.random(600) < 0.4, 0, rng.integers(1, 30, 600))
    noise = rng.dirichlet(np.ones(30), 600)
    decision = fit_decision(targets, noise, "map@5")
    assert decision["prior_weight"] > 0.5 and "prior" in decision
    shrunk = mean_average_precision(targets, apply_decision(noise, decision), 5)
    assert shrunk > mean_average_precision(targets, apply_decision(noise, {"kind": "top_k", "k": 5}), 5) + 0.2
    knowing = np.eye(30)[targets] * 0.9 + 0.1 / 30
    assert fit_decision(targets, knowing, "map@5") == {"kind": "top_k", "k": 5}
