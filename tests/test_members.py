import time

import numpy as np

from tasks.budget import Clock, member_deadline
from tasks.competitions import DIGIT_RECOGNIZER
from tasks.index import ensure_index, read_index
from tasks.members import MemberContext, TrainConfig, cross_validate, fit_softmax, softmax_model, train_keras_model
from tasks.metrics import score_probabilities
from tests.factories import write_separable_digits


def test_cross_validate_fills_every_oof_row_from_the_fold_that_held_it_out():
    folds = np.array([0, 1, 2, 0, 1, 2])
    seen = []

    def fit_fold(train, valid, clock):
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


def test_a_deadline_ends_folds_that_would_overrun_and_keeps_the_finished_ones():
    folds = np.repeat(np.arange(5), 2)

    def fit_fold(train, valid, clock):
        time.sleep(0.2)
        return np.ones((len(valid), 2)) / 2, np.full((3, 2), 0.5), {}

    result = cross_validate(folds, 2, 3, fit_fold, deadline=time.time() + 0.5)
    assert result.ended_early and len(result.histories) == 2  # a third fold would end at 0.6 s
    assert np.isfinite(result.oof[:4]).all() and np.isnan(result.oof[4:]).all()
    assert np.allclose(result.test, 0.5)
    untimed = cross_validate(folds, 2, 3, fit_fold)
    assert not untimed.ended_early and np.isfinite(untimed.oof).all()


def test_a_clock_ends_epochs_that_would_overrun_but_runs_one():
    images = np.random.default_rng(0).uniform(0, 255, (64, 8, 8, 1)).astype("float32")
    labels = np.arange(64) % 2
    config = TrainConfig(epochs=50, batch_size=16, patience=50)
    clock = Clock(time.time())  # already due: one epoch, then stop
    history = train_keras_model(softmax_model((8, 8, 1), 2), (images, labels), (images, labels), config, clock=clock)
    assert len(history["loss"]) == 1 and clock.ended_early
    history = train_keras_model(softmax_model((8, 8, 1), 2), (images, labels), (images, labels),
                                TrainConfig(epochs=3, batch_size=16, patience=50), clock=Clock(None))
    assert len(history["loss"]) == 3


def test_members_share_what_is_left_less_the_reserve():
    assert member_deadline(None, 10, 3) is None
    assert member_deadline(1000.0, 10.0, 3, now=700.0) == 700.0 + 290.0 / 3
    assert member_deadline(1000.0, 10.0, 2, now=995.0) == 995.0  # nothing left: due now


def test_pixel_members_train_fewer_epochs_on_more_images_when_capped():
    from tasks.members import epochs_for

    assert epochs_for(TrainConfig(epochs=10, images_per_fold=None), 50_000) == 10  # no cap: the epochs asked for
    assert epochs_for(TrainConfig(epochs=40), 1_000) == 40  # the default cap leaves the built-in digits alone
    capped = TrainConfig(epochs=10, images_per_fold=60_000)
    assert [epochs_for(capped, n) for n in (1_000, 6_400, 32_000, 300_000)] == [10, 9, 2, 2]


def test_a_clock_due_after_the_last_epoch_does_not_mark_the_training_cut_short():
    images = np.random.default_rng(0).uniform(0, 255, (32, 8, 8, 1)).astype("float32")
    labels = np.arange(32) % 2
    clock = Clock(time.time())  # due now: any further epoch would overrun
    history = train_keras_model(softmax_model((8, 8, 1), 2), (images, labels), (images, labels),
                                TrainConfig(epochs=1, batch_size=16, patience=5), clock=clock)
    assert len(history["loss"]) == 1 and not clock.ended_early  # all the epochs asked for ran
