import functools
import json
import time

import numpy as np
import pytest

from tasks import fitting
from tasks.budget import Clock, member_deadline
from tasks.config import TrainConfig
from tasks.members import FoldFitter, evaluate_arrays, softmax_model, train_keras_model
from tasks.metrics import score_probabilities
from tasks.stages import MEMBERS, each_in_turn, run_mapped
from tests.factories import FakeTime, separable_digits_plan


def fake_kind(monkeypatch, fit_fold, folds=None):
    """Every member kind prepares `fit_fold` (a member of any name then fits what the test says)."""
    prepared = []

    def prepare(context):
        prepared.append(context.seed)
        return FoldFitter(fit_fold, "fake", folds)

    monkeypatch.setattr(fitting, "member_kind", lambda kind: prepare)
    fitting._PREPARED.clear()
    return prepared


def test_every_oof_row_comes_from_the_fold_that_held_it_out(tmp_path, monkeypatch):
    plan = separable_digits_plan(tmp_path, folds=3)
    seen = []

    def fit_fold(train, valid, clock):
        seen.append((set(train), set(valid)))
        probs = np.zeros((len(valid), 10))
        probs[:, 0] = valid  # marks which positions this fold predicted
        return probs, np.full((10, 10), len(seen)), {"loss": [1.0]}

    prepared = fake_kind(monkeypatch, fit_fold)
    members = run_mapped(fitting_stages(), MEMBERS, plan)
    meta, oof, test = fitting.load_member(members.directories[0])
    assert len(seen) == 3 and all(not (train & valid) for train, valid in seen)
    assert oof[:, 0].tolist() == list(range(120)) and np.allclose(test, 2.0)  # mean of 1, 2, 3
    assert prepared == [0]  # prepared once for its three folds (images and model shared)
    assert meta["folds_trained"] == 3 and not meta["ended_by_time_limit"]


def fitting_stages():
    from tasks.stages import Stages

    return Stages(map=each_in_turn)


def test_units_are_the_folds_left_and_a_finished_member_has_none(tmp_path, monkeypatch):
    plan = separable_digits_plan(tmp_path, folds=2)
    fake_kind(monkeypatch, lambda train, valid, clock: (np.full((len(valid), 10), 0.1), np.full((10, 10), 0.1), {}))
    units = MEMBERS.units(plan)
    assert [(unit.member, unit.fold) for unit in units] == [("softmax", 0), ("softmax", 1)]
    MEMBERS.run_unit(plan, units[1])
    assert [unit.fold for unit in MEMBERS.units(plan)] == [0]  # fold 1 is in the fold store
    MEMBERS.run_unit(plan, units[0])
    MEMBERS.gather(plan)
    assert MEMBERS.units(plan) == []


def test_softmax_member_learns(tmp_path):
    plan = separable_digits_plan(tmp_path, folds=2, train=TrainConfig(epochs=30, batch_size=16, learning_rate=0.05))
    members = run_mapped(fitting_stages(), MEMBERS, plan)
    meta, oof, test = fitting.load_member(members.directories[0])
    assert oof.shape == (120, 10) and test.shape == (10, 10)
    labels = fitting.member_job(plan, "softmax").context.targets
    assert score_probabilities(labels, oof, "accuracy") > 0.9 and meta["cv_score"] > 0.9
    assert meta["folds_trained"] == 2 and len(meta["epochs_per_fold"]) == 2


def test_a_deadline_ends_folds_that_would_overrun_and_keeps_the_finished_ones(tmp_path, monkeypatch):
    now = FakeTime()
    plan = separable_digits_plan(tmp_path, folds=5, deadline=now() + 12.0, time_limit=1.0)

    def fit_fold(train, valid, clock):
        now.advance(0.5)  # each fold takes half a second
        return np.full((len(valid), 10), 0.1), np.full((10, 10), 0.1), {}

    fake_kind(monkeypatch, fit_fold)
    # The reserve is 10 s of the run's 1 minute: the member has 2 s, so four folds fit and the fifth (ending at
    # 2.5 s) never starts.
    each_in_turn(functools.partial(fitting.fit_member_unit, now=now), plan, MEMBERS.units(plan))
    members = MEMBERS.gather(plan)
    meta, oof, test = fitting.load_member(members.directories[0])
    assert members.directories[0].name.endswith("-partial") and meta["ended_by_time_limit"]
    assert meta["folds_trained"] == 4 and np.isnan(oof).any() and np.allclose(test, 0.1)
    untimed = separable_digits_plan(tmp_path / "untimed", folds=5)
    meta = fitting.load_member(run_mapped(fitting_stages(), MEMBERS, untimed).directories[0])[0]
    assert meta["folds_trained"] == 5 and not meta["ended_by_time_limit"]


def test_a_member_with_no_time_left_is_skipped_but_never_the_first(tmp_path, monkeypatch):
    plan = separable_digits_plan(tmp_path, members=("softmax", "softmax#1"), folds=2, deadline=time.time() - 1,
                                 time_limit=1.0)
    fake_kind(monkeypatch, lambda train, valid, clock: (np.full((len(valid), 10), 0.1), np.full((10, 10), 0.1), {}))
    members = run_mapped(fitting_stages(), MEMBERS, plan)
    assert len(members.directories) == 1 and members.skipped == ("softmax#1",)
    assert json.loads((members.directories[0] / "member.json").read_text())["folds_trained"] == 1


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


@pytest.mark.parametrize("loop", ["arrays", "fit"])
@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_both_training_loops_keep_the_weights_the_one_rule_says(loop, schedule):
    """Over random labels the validation loss rises as the model memorises: the kept weights are the best epoch's
    under a constant rate, and the last epoch's under a cosine schedule, whichever loop trains."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (96, 8, 8, 1)).astype("float32")
    train, valid = (images[:64], rng.integers(0, 4, 64)), (images[64:], rng.integers(0, 4, 32))
    config = TrainConfig(epochs=12, batch_size=16, learning_rate=0.05, patience=12, schedule=schedule)
    model = softmax_model((8, 8, 1), 4, seed=0)
    history = train_keras_model(model, train, valid, config, loop=loop)
    final_loss, _ = evaluate_arrays(model, *valid)
    assert np.argmin(history["val_loss"]) < len(history["val_loss"]) - 1  # the validation loss did rise
    expected = min(history["val_loss"]) if schedule == "constant" else history["val_loss"][-1]
    assert final_loss == pytest.approx(expected, rel=1e-3)


def test_members_share_what_is_left_less_the_reserve():
    assert member_deadline(None, 10, 3) is None
    assert member_deadline(1000.0, 10.0, 3, now=700.0) == 700.0 + 290.0 / 3
    assert member_deadline(1000.0, 10.0, 2, now=995.0) == 995.0  # nothing left: due now
    # A member whose epochs the plan bought with its share of the time (the colour recipe's finetune) gets that share;
    # the last member left gets everything.
    assert member_deadline(1000.0, 10.0, 3, now=700.0, share=0.8) == pytest.approx(700.0 + 0.8 * 290.0)
    assert member_deadline(1000.0, 10.0, 1, now=700.0, share=0.8) == 990.0


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


@pytest.mark.parametrize("kind", ["softmax", "softmax-watching", "mlp",
                                  pytest.param("cnn", marks=pytest.mark.slow)])  # cnn: 22 s
def test_out_of_fold_predictions_do_not_depend_on_the_labels_they_are_scored_on(tmp_path, kind):
    """Honest out-of-fold rows: scrambling the held-out fold's labels leaves its predictions unchanged, bit for bit
    (early stopping watches an inner split of the training part, never the rows the fold then predicts; a schedule
    run to its end, which chooses nothing, watches held-out rows but decides nothing by them; the CNN's
    pseudo-labels come from test images only)."""
    import dataclasses

    from tasks.backbones import backbone_spec
    from tasks.cnn import fit_cnn
    from tasks.config import FeatureConfig
    from tasks.features import Extractor, cache_feature_set
    from tasks.heads import fit_mlp
    from tasks.members import MemberContext, fit_softmax
    from tests.factories import tiny_backbone_file

    plan = separable_digits_plan(tmp_path, folds=3)
    index = fitting.member_job(plan, "softmax").context.index
    # Slow learning, every epoch watched: the best epoch by the true labels is a late one.
    train = TrainConfig(epochs=10, batch_size=16, learning_rate=0.0005, patience=10)
    if kind == "softmax-watching":  # fits every training row, watches the held-out ones
        train = dataclasses.replace(train, schedule="cosine")
    if kind == "cnn":  # every trick on: soft targets, mixed batches, the average of the weights, a second round
        train = TrainConfig(epochs=2, batch_size=16, cnn_filters=4, patience=2, schedule="onecycle", ema=0.9,
                            label_smoothing=0.1, mixup=0.2, cutmix=1.0, tta_shifts=1, pseudo_epochs=1, lr_range_test=True,
                            pseudo_threshold=0.0)
    feature_dirs = ()
    if kind == "mlp":
        model = tiny_backbone_file(tmp_path / "tiny.keras")
        cache_feature_set(index, Extractor(backbone_spec(f"file:{model}"), model, 28), "identity", tmp_path / "f",
                          FeatureConfig(image_size=28))
        feature_dirs = (tmp_path / "f",)
    folds = index.split("train")["fold"].to_numpy()
    held_out = np.flatnonzero(folds == 0)

    def predictions(table) -> np.ndarray:
        context = MemberContext(dataclasses.replace(index, table=table), train, feature_dirs=feature_dirs)
        fitter = {"mlp": fit_mlp, "softmax": fit_softmax, "softmax-watching": fit_softmax, "cnn": fit_cnn}[kind](context)
        return fitter.fit_fold(np.flatnonzero(folds != 0), held_out, Clock(None))[0]

    scrambled = index.table.copy()
    rows = scrambled.index[(scrambled["split"] == "train") & (scrambled["fold"] == 0)]
    scrambled.loc[rows, "label"] = np.random.default_rng(1).permutation(scrambled.loc[rows, "label"].to_numpy())
    np.testing.assert_array_equal(predictions(index.table), predictions(scrambled))


def test_a_schedule_run_to_its_end_fits_every_training_row_and_watches_held_out_ones(tmp_path, monkeypatch):
    """Where training chooses neither its epochs nor its weights by the rows it watches, holding rows back for it
    would only cost training data: every training row is fitted; early stopping still gets an inner split."""
    import dataclasses

    monkeypatch.setattr("tasks.members.WATCHED_ROWS", 7)
    context = fitting.member_job(separable_digits_plan(tmp_path, folds=3), "softmax").context
    train_positions, held_out = np.flatnonzero(context.folds != 0), np.flatnonzero(context.folds == 0)
    to_the_end = TrainConfig(epochs=8, patience=8, schedule="onecycle")
    fit, watched = context.stopping_split(train_positions, held_out, to_the_end)
    assert np.array_equal(fit, train_positions) and set(watched) <= set(held_out) and 0 < len(watched) <= 7
    for stopping in (dataclasses.replace(to_the_end, patience=3), dataclasses.replace(to_the_end, schedule="constant")):
        fit, stop = context.stopping_split(train_positions, held_out, stopping)
        assert not set(stop) & set(held_out) and sorted([*fit, *stop]) == list(train_positions)
        assert len(stop) == round(0.1 * len(train_positions))


def test_a_folds_line_says_the_epochs_that_ran_not_those_planned(capsys):
    """In a log, a fold's line counts the epochs it trained: early stopping after 3 of 40 says 3, though the bar is
    filled (a member without epochs counts its one fold)."""
    from tasks.progress import progress_bar

    with progress_bar("cnn fold 1/5", total=40, unit="epochs") as advance:
        advance(3)
        advance(37, ran_steps=False)
    assert "cnn fold 1/5: 3 epochs in " in capsys.readouterr().err
