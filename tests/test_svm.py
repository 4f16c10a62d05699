import numpy as np
import pytest

from tasks.competitions import DIGIT_RECOGNIZER
from tasks.index import ensure_index, read_index
from tasks.members import MemberContext, TrainConfig
from tasks.metrics import score_probabilities
from tasks.svm import capped_rows, fit_svm
from tests.factories import fit_every_fold, write_separable_digits


def test_svm_member_learns_and_gives_calibrated_probabilities(tmp_path):
    raw = write_separable_digits(tmp_path / "raw")
    index = read_index(ensure_index(DIGIT_RECOGNIZER, raw, tmp_path / "index", folds=2, seed=0))
    context = MemberContext(index, TrainConfig())
    result = fit_every_fold(context, fit_svm(context))
    assert result.oof.shape == (120, 10) and result.test.shape == (10, 10)
    assert np.allclose(result.oof.sum(axis=1), 1.0, atol=1e-5) and np.allclose(result.test.sum(axis=1), 1.0, atol=1e-5)
    assert score_probabilities(context.targets, result.oof, "accuracy") > 0.9
    assert len(result.histories) == 2


def test_a_capped_fold_keeps_every_class_in_proportion():
    labels = np.repeat([0, 1, 2], [600, 300, 100])
    kept = capped_rows(labels, 100, seed=0)
    assert len(kept) == 100 and np.all(np.diff(kept) > 0)  # sorted positions, none twice
    assert np.bincount(labels[kept]).tolist() == [60, 30, 10]
    assert capped_rows(labels, 2_000, seed=0).tolist() == list(range(1_000))  # under the cap: every row


@pytest.mark.parametrize("max_rows", [3, 50])
def test_a_rare_class_keeps_at_least_one_row(max_rows):
    labels = np.array([0] * 500 + [1])
    assert 1 in labels[capped_rows(labels, max_rows, seed=1)]
