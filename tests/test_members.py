import numpy as np

from tasks.competitions import DIGIT_RECOGNIZER
from tasks.index import ensure_index, read_index
from tasks.members import MemberContext, TrainConfig, cross_validate, fit_softmax
from tasks.metrics import score_probabilities
from tests.factories import write_separable_digits


def test_cross_validate_fills_every_oof_row_from_the_fold_that_held_it_out():
    folds = np.array([0, 1, 2, 0, 1, 2])
    seen = []

    def fit_fold(train, valid):
        seen.append((set(train), set(valid)))
        probs = np.zeros((len(valid), 2))
        probs[:, 0] = valid  # marks which positions this fold predicted
        return probs, np.full((4, 2), len(seen)), {"loss": [1.0]}

    result = cross_validate(folds, num_classes=2, num_test=4, fit_fold=fit_fold)
    assert all(not (train & valid) for train, valid in seen)
    assert result.oof[:, 0].tolist() == list(range(6))
    assert np.allclose(result.test, 2.0)  # mean of 1, 2, 3


def test_softmax_member_learns(tmp_path):
    raw = write_separable_digits(tmp_path / "raw")
    index = read_index(ensure_index(DIGIT_RECOGNIZER, raw, tmp_path / "index", folds=2, seed=0))
    context = MemberContext(index, TrainConfig(epochs=30, batch_size=16, learning_rate=0.05))
    result = fit_softmax(context)
    assert result.oof.shape == (120, 10) and result.test.shape == (10, 10)
    assert score_probabilities(context.labels, result.oof, "accuracy") > 0.9
    assert len(result.histories) == 2 and "val_loss" in result.histories[0]
