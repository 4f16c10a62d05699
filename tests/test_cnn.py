"""The from-scratch CNN's augmentation, as the tutorial shows it."""

import numpy as np
import pytest

from tasks.cnn import augment_images
from tasks.errors import ConfigError


def test_augmented_copies_keep_the_shape_and_differ_from_the_original_and_each_other():
    images = np.zeros((3, 16, 16, 1), np.uint8)
    images[:, 4:12, 6:10] = 255  # a bar: shifts, turns and zooms move it
    augmented = augment_images(images, copies=4, flip=False, seed=1)
    assert augmented.shape == (4, 3, 16, 16, 1) and augmented.dtype == np.uint8
    assert not np.array_equal(augmented[0], images) and not np.array_equal(augmented[0], augmented[1])
    np.testing.assert_array_equal(augmented, augment_images(images, copies=4, flip=False, seed=1))  # seeded


def test_at_least_one_copy():
    with pytest.raises(ConfigError, match="copies must be at least 1"):
        augment_images(np.zeros((1, 8, 8, 3), np.uint8), copies=0, flip=True)


def test_shifted_images_move_and_fill_the_edge_black():
    from tasks.cnn import shifted

    images = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3, 1)
    assert shifted(images, 1, 0)[0, :, :, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert shifted(images, 0, -1)[0, :, :, 0].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]
    np.testing.assert_array_equal(shifted(images, 0, 0), images)


def test_test_time_shifts_average_five_views():
    import keras

    from tasks.cnn import shifted, tta_predictor
    from tasks.members import predict_probabilities
    from tasks.outputs import Outputs

    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1)).astype(np.float32)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    outputs = Outputs("multiclass", 3)
    views = [images, shifted(images, 2, 0), shifted(images, -2, 0), shifted(images, 0, 2), shifted(images, 0, -2)]
    expected = np.mean([predict_probabilities(model, view, outputs=outputs) for view in views], axis=0)
    np.testing.assert_allclose(tta_predictor(2, outputs)(model, images), expected, rtol=1e-5)
    np.testing.assert_allclose(tta_predictor(0, outputs)(model, images), predict_probabilities(model, images,
                                                                                                outputs=outputs))


@pytest.mark.parametrize("architecture", ["small", "deep"])
@pytest.mark.parametrize("size", [14, 28])
def test_every_architecture_builds_at_the_sizes_digits_train_at(architecture, size):
    from tasks.cnn import ARCHITECTURES
    from tasks.config import TrainConfig

    config = TrainConfig(random_erasing=0.5, randaugment=1)
    model = ARCHITECTURES[architecture]((size, size, 1), 10, 8, 0, config)
    images = np.random.default_rng(0).integers(0, 256, (4, size, size, 1)).astype(np.float32)
    assert model(images, training=True).shape == (4, 10) and np.isfinite(model(images).numpy()).all()


def test_pseudo_labels_train_on_confident_test_images_weighted_down_and_never_on_held_out_rows(tmp_path, monkeypatch):
    import dataclasses

    from tasks import cnn
    from tasks.config import TrainConfig
    from tasks.fitting import member_job
    from tests.factories import separable_digits_plan

    plan = separable_digits_plan(tmp_path, members=("cnn",), folds=3)
    context = dataclasses.replace(member_job(plan, "cnn").context,
                                  train=TrainConfig(pseudo_epochs=2, pseudo_threshold=0.9, pseudo_weight=0.25))
    confidence = np.array([0.95, 0.5, 0.99, 0.2])
    probabilities = np.stack([confidence, 1 - confidence] + [np.zeros(4)] * 8, axis=1)
    given = {}

    def train(model, train, valid, config, seed, clock, **_):
        given.update(train=train, valid=valid, epochs=config.epochs)
        return {"loss": [0.5, 0.4]}

    monkeypatch.setattr(cnn, "train_keras_model", train)
    second_round = cnn.pseudo_label_round(context, lambda model, images: probabilities)
    fit = (np.zeros((5, 2, 2, 1)), np.arange(5))
    test = np.arange(4)[:, None, None, None] * np.ones((4, 2, 2, 1)) + 100
    history = second_round(None, fit, ("stop", "rows"), test, None, {"loss": [1.0]})
    images, labels, weights = given["train"]
    assert images[5:, 0, 0, 0].tolist() == [100, 102] and labels.tolist() == [0, 1, 2, 3, 4, 0, 0]  # test rows 0, 2
    assert weights.tolist() == [1] * 5 + [0.25] * 2 and given["valid"] == ("stop", "rows") and given["epochs"] == 2
    assert history == {"loss": [1.0, 0.5, 0.4], "pseudo_labels": [2.0]}
    assert cnn.pseudo_label_round(dataclasses.replace(context, train=TrainConfig()), None) is None  # off by default


def test_the_cost_of_a_cnn_is_measured_on_this_machine():
    from tasks.cnn import measure_cost
    from tasks.config import TrainConfig
    from tasks.outputs import Outputs

    cost = measure_cost((14, 14, 1), Outputs("multiclass", 10),
                        TrainConfig(batch_size=8, cnn_filters=4, cnn_architecture="deep", mixup=0.2), steps=2)
    assert 0 < cost.train < 1 and 0 < cost.predict < 1 and cost.setup > 0


def test_a_cnn_fold_never_trains_stops_or_pseudo_labels_on_its_held_out_rows(tmp_path, monkeypatch):
    """Honest out-of-fold rows with every CNN trick on: neither round of training (pseudo-labels included) nor its
    early stopping sees a row of the fold it then predicts; test-time shifts only average fixed views."""
    import dataclasses

    from tasks import cnn
    from tasks.budget import Clock
    from tasks.config import TrainConfig
    from tasks.fitting import member_job
    from tasks.index import TRAIN
    from tasks.members import load_images
    from tests.factories import separable_digits_plan

    plan = separable_digits_plan(tmp_path, members=("cnn",), folds=3)
    tricks = TrainConfig(cnn_filters=4, pseudo_epochs=1, pseudo_threshold=0.0, tta_shifts=1, randaugment=1,
                         random_erasing=0.5, mixup=0.2, label_smoothing=0.1)
    context = dataclasses.replace(member_job(plan, "cnn").context, train=tricks)
    seen = []

    def train(model, train, valid, config, *args, **kwargs):
        seen.extend([train[0], valid[0]])
        return {"loss": [0.0]}

    monkeypatch.setattr("tasks.members.train_keras_model", train)
    monkeypatch.setattr("tasks.cnn.train_keras_model", train)
    folds = context.folds
    held_out = np.flatnonzero(folds == 0)
    images = load_images(context.index, TRAIN, context.index.metadata["channels"], None)
    rows = lambda array: {row.tobytes() for row in np.asarray(array, np.uint8)}
    assert not rows(images[held_out]) & rows(images[folds != 0])  # every row is told apart by its pixels
    valid, test, history = cnn.fit_cnn(context).fit_fold(np.flatnonzero(folds != 0), held_out, Clock(None))
    assert len(seen) == 4 and history["pseudo_labels"] == [context.num_test]  # two rounds: fit and stop rows each
    assert all(not rows(array) & rows(images[held_out]) for array in seen)
    assert valid.shape == (len(held_out), 10) and np.allclose(valid.sum(axis=1), 1, atol=1e-5)
