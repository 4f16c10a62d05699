import numpy as np
import pytest

from tasks.ensemble import blend, blend_weights, caruana_weights, fitted_weights
from tasks.errors import ConfigError
from tasks.metrics import score_probabilities


def _member(labels, accuracy, seed, num_classes=4):
    """Probabilities that are right on about `accuracy` of the rows."""
    rng = np.random.default_rng(seed)
    guesses = np.where(rng.random(len(labels)) < accuracy, labels, rng.integers(0, num_classes, len(labels)))
    probabilities = rng.dirichlet(np.ones(num_classes), len(labels)) * 0.3
    probabilities[np.arange(len(labels)), guesses] += 0.7
    return probabilities / probabilities.sum(axis=1, keepdims=True)


@pytest.fixture
def members():
    labels = np.random.default_rng(0).integers(0, 4, 2000)
    return labels, [_member(labels, 0.9, 1), _member(labels, 0.8, 2), _member(labels, 0.3, 3)]


def test_blend_is_a_weighted_mean():
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    np.testing.assert_allclose(blend([a, b], np.array([0.25, 0.75])), [[0.25, 0.75]])
    with pytest.raises(ConfigError, match="nothing to blend"):
        blend([], np.array([]))


def test_caruana_weights_follow_strength_and_the_blend_beats_every_member(members):
    labels, oofs = members
    weights = caruana_weights(oofs, labels, "accuracy")
    assert weights.sum() == pytest.approx(1.0) and weights[0] > weights[1] > weights[2]
    assert score_probabilities(labels, blend(oofs, weights), "accuracy") > score_probabilities(labels, oofs[0],
                                                                                                "accuracy")


def test_caruana_ignores_a_useless_copy(members):
    labels, oofs = members
    only_best = caruana_weights([oofs[0], oofs[0] * 0 + 0.25], labels, "log_loss")
    assert only_best.tolist() == [1.0, 0.0]  # a uniform guess never improves the blend


def test_fitted_weights_beat_the_mean_on_log_loss(members):
    labels, oofs = members
    weights = fitted_weights(oofs, labels)
    assert weights.min() >= 0 and weights.sum() == pytest.approx(1.0) and weights[2] < weights[0]
    fitted = score_probabilities(labels, blend(oofs, weights), "log_loss")
    mean = score_probabilities(labels, blend(oofs, np.full(3, 1 / 3)), "log_loss")
    assert fitted < mean


def test_unknown_method(members):
    labels, oofs = members
    with pytest.raises(ConfigError, match="unknown blend method 'median'"):
        blend_weights("median", oofs, labels, "accuracy")


def test_the_nested_score_is_honest_about_fitted_weights():
    """Weights picked on the rows they are scored on flatter the blend; the nested estimate (weights from the other
    folds) does not, and for the plain mean (no fitting) the two agree exactly."""
    from tasks.ensemble import nested_cv_score

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, 400)
    folds = np.arange(400) % 5
    noise = [rng.dirichlet(np.ones(4), 400) for _ in range(12)]  # members that know nothing
    weights = blend_weights("caruana", noise, labels, "accuracy")
    in_sample = score_probabilities(labels, blend(noise, weights), "accuracy")
    assert nested_cv_score("caruana", noise, labels, folds, "accuracy") < in_sample - 0.02
    weights = blend_weights("weights", noise, labels, "log_loss")  # fitted on log loss: judged on it
    in_sample = score_probabilities(labels, blend(noise, weights), "log_loss")
    assert nested_cv_score("weights", noise, labels, folds, "log_loss") > in_sample + 0.005
    mean = score_probabilities(labels, blend(noise, np.full(12, 1 / 12)), "log_loss")
    assert nested_cv_score("mean", noise, labels, folds, "log_loss") == pytest.approx(mean)
