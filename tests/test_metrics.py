"""Every metric by its name, against scikit-learn or hand-worked cases, through one interface."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, fbeta_score, log_loss, roc_auc_score

from tasks.errors import SpecError
from tasks.metrics import (
    METRICS,
    get_metric,
    higher_is_better,
    mean_average_precision,
    metrics_for,
    score,
    score_answers,
    score_probabilities,
)

RNG = np.random.default_rng(0)


def _softmax(logits):
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


LABELS = RNG.integers(0, 4, 200)
PROBABILITIES = _softmax(RNG.normal(size=(200, 4)) + 2.0 * np.eye(4)[LABELS])


def test_the_names_of_issue_20():
    assert list(METRICS) == ["accuracy", "log_loss", "roc_auc", "f1_micro", "f1_macro", "mean_f1", "mean_f2",
                             *(f"map@{k}" for k in range(1, 11)), "quadratic_weighted_kappa"]
    assert [name for name in METRICS if not higher_is_better(name)] == ["log_loss"]
    assert metrics_for("binary") == ["log_loss", "roc_auc"]
    assert metrics_for("ranking") == [f"map@{k}" for k in range(1, 11)]
    assert "quadratic_weighted_kappa" in metrics_for("ordinal") and "mean_f2" in metrics_for("multilabel")


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(SpecError, match=r"unknown metric 'map@11'; known metrics are accuracy, log_loss, roc_auc"):
        get_metric("map@11")


def test_multiclass_metrics_agree_with_scikit_learn():
    predicted = PROBABILITIES.argmax(axis=1)
    assert score(LABELS, PROBABILITIES, "accuracy") == pytest.approx(accuracy_score(LABELS, predicted))
    assert score(LABELS, PROBABILITIES, "log_loss") == pytest.approx(log_loss(LABELS, PROBABILITIES))
    assert score(LABELS, PROBABILITIES, "f1_micro") == pytest.approx(f1_score(LABELS, predicted, average="micro"))
    assert score(LABELS, PROBABILITIES, "f1_macro") == pytest.approx(f1_score(LABELS, predicted, average="macro"))
    assert score(LABELS, PROBABILITIES, "roc_auc") == pytest.approx(
        roc_auc_score(LABELS, PROBABILITIES, multi_class="ovr", average="macro"))


def test_log_loss_clips_and_renormalises_as_kaggle_does():
    """A certain wrong answer costs -log(1e-15), not infinity; rows need not sum to one."""
    certain_wrong = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert score(np.array([1, 0]), certain_wrong, "log_loss") == pytest.approx(-np.log(1e-15), rel=1e-6)
    halves = np.array([[0.2, 0.2, 0.2]])  # renormalised to thirds
    assert score(np.array([0]), halves, "log_loss") == pytest.approx(np.log(3))


def test_binary_metrics_score_the_positive_column():
    labels = RNG.integers(0, 2, 100)
    positive = np.clip(labels * 0.6 + RNG.uniform(0, 0.4, 100), 0, 1)
    probabilities = np.stack([1 - positive, positive], axis=1)
    assert score(labels, probabilities, "roc_auc") == pytest.approx(roc_auc_score(labels, positive))
    assert score(labels, probabilities, "log_loss") == pytest.approx(log_loss(labels, positive))


def test_multilabel_f_scores_are_means_over_samples():
    tags = RNG.integers(0, 2, (150, 6))
    probabilities = np.clip(tags * 0.5 + RNG.uniform(0, 0.5, (150, 6)), 0, 1)
    answers = (probabilities >= 0.5).astype(int)
    for beta, name in ((2, "mean_f2"), (1, "mean_f1")):
        assert score(tags, probabilities, name) == pytest.approx(
            fbeta_score(tags, answers, beta=beta, average="samples", zero_division=1.0))
    assert score(tags, probabilities, "f1_micro") == pytest.approx(f1_score(tags, answers, average="micro"))


def test_mean_f2_by_hand():
    """Row 1: tp 1, fp 1, fn 0: F2 = 5*1 / (5*1 + 4*0 + 1) = 5/6. Row 2: tp 1, fp 0, fn 1: 5 / (5 + 4) = 5/9."""
    tags = np.array([[1, 0, 0], [1, 1, 0]])
    answers = np.array([[1, 1, 0], [1, 0, 0]])
    assert score_answers(tags, answers, "mean_f2") == pytest.approx((5 / 6 + 5 / 9) / 2)


def test_map_at_k_by_hand():
    """Truth 2 answered [2, ...]: 1; [0, 2, ...]: 1/2; [0, 1, 3, 2]: 1/4; absent: 0; a repeat earns nothing."""
    targets = np.array([2, 2, 2, 2, 2])
    ranked = np.array([[2, 0, 1, 3, 4], [0, 2, 1, 3, 4], [0, 1, 3, 2, 4], [0, 1, 3, 4, 5], [0, 0, 1, 3, 4]])
    assert score_answers(targets, ranked, "map@5") == pytest.approx((1 + 1 / 2 + 1 / 4 + 0 + 0) / 5)
    assert score_answers(targets, ranked, "map@1") == pytest.approx(1 / 5)
    assert mean_average_precision(targets, np.array([[-1, 2], [2, -1], [-1, -1], [0, 1], [1, 2]]), 2) == \
        pytest.approx((1 / 2 + 1 + 0 + 0 + 1 / 2) / 5)


def test_map_from_probabilities_ranks_the_most_probable_first():
    probabilities = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    assert score(np.array([2, 2]), probabilities, "map@2") == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert score(np.array([1, 0]), probabilities, "map@3") == 1.0


def test_quadratic_weighted_kappa_agrees_with_scikit_learn():
    grades = RNG.integers(0, 5, 300)
    answers = np.clip(grades + RNG.integers(-1, 2, 300), 0, 4)
    assert score_answers(grades, answers, "quadratic_weighted_kappa") == pytest.approx(
        cohen_kappa_score(grades, answers, weights="quadratic"))
    assert score_answers(np.array([2, 2]), np.array([2, 2]), "quadratic_weighted_kappa") == 1.0
    assert score_answers(np.array([2, 2]), np.array([3, 3]), "quadratic_weighted_kappa") == 0.0


def test_kappa_from_probabilities_rounds_the_expected_grade():
    """Expected grades 0.4, 1.6, 3.9 round to 0, 2, 4."""
    probabilities = np.array([[0.6, 0.4, 0, 0, 0], [0, 0.4, 0.6, 0, 0], [0, 0, 0, 0.1, 0.9]])
    grades = np.array([0, 2, 4])
    assert score(grades, probabilities, "quadratic_weighted_kappa") == 1.0


def test_score_probabilities_is_score():
    assert score_probabilities(LABELS, PROBABILITIES, "accuracy") == score(LABELS, PROBABILITIES, "accuracy")
    with pytest.raises(SpecError, match="scores probabilities, not answers"):
        score_answers(LABELS, LABELS, "log_loss")
