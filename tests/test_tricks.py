import keras
import numpy as np
import pytest

from tasks.config import TrainConfig
from tasks.errors import ConfigError
from tasks.members import softmax_model
from tasks.outputs import Outputs
from tasks.training import learning_rate, train_keras_model
from tasks.tricks import averaged_weights_in, batch_mixer, trained_weights_back, training_loss, training_targets


def test_one_cycle_warms_up_then_decays():
    schedule = learning_rate(TrainConfig(schedule="onecycle", learning_rate=0.01, epochs=10), steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 10, 20, 60, 100)]
    assert rates[0] == pytest.approx(0.0004) and rates[1] < rates[2] == pytest.approx(0.01)  # up over a fifth
    assert rates[2] > rates[3] > rates[4] and rates[4] == pytest.approx(0.0001, rel=0.05)  # then down to 1 %


def test_label_smoothing_and_mixing_train_on_soft_targets():
    outputs = Outputs("multiclass", 3)
    assert isinstance(training_loss(TrainConfig(), outputs), keras.losses.SparseCategoricalCrossentropy)
    smoothed = training_loss(TrainConfig(label_smoothing=0.1), outputs)
    assert isinstance(smoothed, keras.losses.CategoricalCrossentropy) and smoothed.label_smoothing == 0.1
    np.testing.assert_array_equal(training_targets(TrainConfig(mixup=0.2), outputs, np.array([2, 0])),
                                  [[0, 0, 1], [1, 0, 0]])
    assert training_targets(TrainConfig(), outputs, np.array([2, 0])).tolist() == [2, 0]
    tags = training_loss(TrainConfig(label_smoothing=0.1), Outputs("multilabel", 3))
    assert isinstance(tags, keras.losses.BinaryCrossentropy) and tags.label_smoothing == 0.1


@pytest.mark.parametrize("fields", [{"mixup": 0.4}, {"cutmix": 1.0}, {"mixup": 0.4, "cutmix": 1.0}])
def test_mixed_batches_keep_their_shape_and_targets_that_sum_to_one(fields):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 8, 8, 1)).astype(np.uint8)
    targets = np.eye(4, dtype=np.float32)[np.arange(16) % 4]
    mix = batch_mixer(TrainConfig(**fields), seed=0)
    mixed_images, mixed_targets = mix(images, targets)
    assert mixed_images.shape == images.shape and mixed_targets.shape == targets.shape
    np.testing.assert_allclose(mixed_targets.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(mixed_images, images) and not np.allclose(mixed_targets, targets)
    assert batch_mixer(TrainConfig(), seed=0) is None


@pytest.mark.parametrize("loop", ["arrays", "fit"])
def test_the_moving_average_of_the_weights_is_what_training_keeps(loop):
    rng = np.random.default_rng(0)
    images, labels = rng.uniform(0, 255, (64, 8, 8, 1)).astype("float32"), np.arange(64) % 2
    config = TrainConfig(epochs=3, batch_size=16, learning_rate=0.05, schedule="cosine", ema=0.9, patience=3)
    model = softmax_model((8, 8, 1), 2)
    train_keras_model(model, (images, labels), (images, labels), config, loop=loop)
    kept = [variable.numpy() for variable in model.trainable_variables]
    trained = averaged_weights_in(model)  # the average again: unchanged, so the model holds it already
    assert all(np.allclose(a, b) for a, b in zip(kept, [v.numpy() for v in model.trainable_variables]))
    trained_weights_back(model, trained)
    assert averaged_weights_in(softmax_model((8, 8, 1), 2)) is None  # no optimiser, no average


@pytest.mark.parametrize("loop", ["arrays", "fit"])
def test_the_moving_average_counts_where_early_stopping_keeps_the_best_epoch(loop):
    """A constant rate: early stopping keeps its best epoch's weights, which must be the average's. With Keras' `fit`
    they were the trained ones (validated and restored as such), so an MLP head trained with EMA ended exactly as
    without it (bench.head_tricks: the same CV and test accuracy to the fourth decimal)."""
    rng = np.random.default_rng(0)
    images, labels = rng.uniform(0, 255, (64, 8, 8, 1)).astype("float32"), np.arange(64) % 2

    def kept(ema: float) -> list:
        keras.utils.set_random_seed(0)
        model = softmax_model((8, 8, 1), 2)
        train_keras_model(model, (images, labels), (images[:16], labels[:16]),
                          TrainConfig(epochs=4, batch_size=16, learning_rate=0.05, ema=ema, patience=4), loop=loop)
        return [variable.numpy() for variable in model.trainable_variables]

    assert not all(np.allclose(a, b) for a, b in zip(kept(0.0), kept(0.9)))


@pytest.mark.parametrize("loop", ["arrays", "fit"])
def test_sample_weights_reach_the_loss(loop):
    """A row weighted 0 teaches nothing: training on it alone leaves the weights as they were, in either loop."""
    images, labels = np.full((16, 4, 4, 1), 200.0, np.float32), np.zeros(16, int)
    model = softmax_model((4, 4, 1), 2)
    before = [variable.numpy() for variable in model.trainable_variables]
    train_keras_model(model, (images, labels, np.zeros(16, np.float32)), (images, labels),
                      TrainConfig(epochs=2, batch_size=16, patience=2), loop=loop)
    assert all(np.allclose(a, b) for a, b in zip(before, [v.numpy() for v in model.trainable_variables]))


@pytest.mark.parametrize("task, targets, loop", [("binary", np.arange(32) % 2, "arrays"),
                                                 ("multilabel", np.arange(96).reshape(32, 3) % 2, "fit")])
def test_every_trick_trains_a_sigmoid_head_in_either_loop(task, targets, loop):
    """Label smoothing (the sigmoid loss's own), MixUp and CutMix, and the moving average, on a binary or multi-label
    task's targets: training runs and its validation rows are scored as the task scores them."""
    from tasks.training import metric_monitor

    images = np.random.default_rng(0).uniform(0, 255, (32, 8, 8, 1)).astype("float32")
    outputs = Outputs(task, 2 if task == "binary" else 3)
    config = TrainConfig(epochs=2, batch_size=8, patience=2, label_smoothing=0.1, mixup=0.2, cutmix=1.0, ema=0.9)
    model = softmax_model((8, 8, 1), outputs.units)
    history = train_keras_model(model, (images, targets), (images[:8], targets[:8]), config, loop=loop,
                                outputs=outputs,
                                monitor=metric_monitor("roc_auc" if task == "binary" else "mean_f1", outputs))
    assert len(history["val_score"]) == 2 and np.isfinite(history["loss"]).all()


def test_feature_vectors_are_never_mixed():
    """MixUp and CutMix are for images: a head on feature vectors trains as if neither were asked."""
    features, labels = np.random.default_rng(0).normal(size=(32, 6)).astype("float32"), np.arange(32) % 3
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    history = train_keras_model(model, (features, labels), (features, labels),
                                TrainConfig(epochs=2, batch_size=8, patience=2, mixup=0.4, cutmix=1.0), loop="fit",
                                outputs=Outputs("multiclass", 3))
    assert len(history["loss"]) == 2


@pytest.mark.parametrize("fields, message", [
    ({"schedule": "linear"}, "train.schedule must be one of"), ({"optimizer": "lion"}, "train.optimizer"),
    ({"cnn_architecture": "resnet"}, "train.cnn_architecture"), ({"label_smoothing": 1.5}, "between 0 and 1"),
])
def test_unknown_training_settings_are_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**fields)


def test_the_range_test_picks_a_rate_below_where_the_loss_blows_up_and_puts_the_weights_back():
    """Smith's range test on separable pixels with a fifth of the labels flipped: the rate is a tenth of where the
    smoothed loss fell lowest (below the sweep's top, where the noisy loss climbs), the model's weights are what
    they were, and the fold then trains at that rate, recorded in its history."""
    from tasks.tricks import RANGE_TEST_RATES, range_test_rate

    rng = np.random.default_rng(0)
    labels = np.arange(256) % 2
    images = (rng.uniform(0, 60, (256, 8, 8, 1)) + 150 * labels[:, None, None, None]).astype("float32")
    noisy = np.where(rng.uniform(size=256) < 0.2, 1 - labels, labels)
    model = softmax_model((8, 8, 1), 2)
    before = [weights.copy() for weights in model.get_weights()]
    rate = range_test_rate(model, images, noisy, TrainConfig(batch_size=32), Outputs("multiclass", 2))
    assert RANGE_TEST_RATES[0] < rate < RANGE_TEST_RATES[1] / 20
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    history = train_keras_model(model, (images, noisy), (images[:32], labels[:32]),
                                TrainConfig(epochs=1, batch_size=32, lr_range_test=True))
    assert history["range_test_rate"] == [pytest.approx(rate)]
    assert float(model.optimizer.learning_rate) == pytest.approx(rate)  # what it trained at
