"""Training tricks that Kaggle's winners use, for every Keras member, each a TrainConfig field: the optimiser
(Adam or SGD, with `use_ema`, an exponential moving average of the weights), label smoothing (the loss's own
argument), and MixUp or CutMix on each batch of images (Keras' layers). bench.mnist_cnn measures what each gains
and costs on real digits (bench/RESULTS.md, "Issue 21: real digits at size", says which are measured); the CNN's
own (random erasing, RandAugment, test-time shifts, pseudo-labels) are in tasks/cnn.py.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import numpy as np

from tasks.config import TrainConfig
from tasks.outputs import Outputs


def soft_targets(config: TrainConfig) -> bool:
    """Whether training targets are probabilities per class (one-hot, then smoothed or mixed) rather than indices."""
    return config.label_smoothing > 0 or config.mixup > 0 or config.cutmix > 0


def training_loss(config: TrainConfig, outputs: Outputs) -> keras.losses.Loss:
    """The task's loss on logits, with the config's label smoothing; on one-hot targets where they are soft."""
    if outputs.sigmoid:
        return keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
    if soft_targets(config):
        return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def training_targets(config: TrainConfig, outputs: Outputs, targets: np.ndarray) -> np.ndarray:
    """Targets as the training loss takes them (`training_loss`)."""
    fitted = outputs.fit_targets(targets)
    if soft_targets(config) and not outputs.sigmoid:
        return np.eye(outputs.columns, dtype=np.float32)[fitted]
    return fitted


def optimizer_for(config: TrainConfig, learning_rate) -> keras.optimizers.Optimizer:
    """Adam, or SGD with Nesterov momentum; either with the moving average of the weights when `config.ema`."""
    ema = {"use_ema": config.ema > 0, "ema_momentum": config.ema or 0.99}
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, **ema)
    return keras.optimizers.Adam(learning_rate, **ema)


def uses_ema(model: keras.Model) -> bool:
    return bool(getattr(getattr(model, "optimizer", None), "use_ema", False))


def averaged_weights_in(model: keras.Model) -> list | None:
    """Put the optimiser's moving average of the weights into the model (to validate or keep it); return the
    weights it trained (to put back with `trained_weights_back`), or None without `use_ema`."""
    if not uses_ema(model):
        return None
    trained = [variable.numpy() for variable in model.trainable_variables]
    model.optimizer.finalize_variable_values(model.trainable_variables)
    return trained


def trained_weights_back(model: keras.Model, trained: list | None) -> None:
    if trained is not None:
        for variable, value in zip(model.trainable_variables, trained):
            variable.assign(value)


BatchMixer = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def batch_mixer(config: TrainConfig, seed: int, graph: bool = False) -> BatchMixer | None:
    """MixUp or CutMix (keras.layers) on a batch of images and its soft targets; with both asked, each batch gets
    one of them at random (as timm does). None: neither. `graph`: on tensors inside a tf.data map (Keras' `fit`
    loop), else on arrays. Images only: a batch of feature vectors is never mixed (the loops pass none)."""
    mixers = []
    if config.mixup > 0:
        mixers.append(keras.layers.MixUp(alpha=config.mixup, seed=seed))
    if config.cutmix > 0:
        mixers.append(keras.layers.CutMix(factor=config.cutmix, seed=seed + 1))
    if not mixers:
        return None
    if graph:
        return _graph_mixer(mixers, seed)
    rng = np.random.default_rng(seed)

    def mix(images: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        layer = mixers[rng.integers(len(mixers))]
        mixed = layer({"images": images.astype(np.float32), "labels": targets.astype(np.float32)}, training=True)
        return np.asarray(mixed["images"]), np.asarray(mixed["labels"])

    return mix


def _graph_mixer(mixers: list, seed: int) -> BatchMixer:
    import tensorflow as tf

    def apply(layer, images, targets):
        mixed = layer({"images": tf.cast(images, tf.float32), "labels": tf.cast(targets, tf.float32)}, training=True)
        return mixed["images"], mixed["labels"]

    def mix(images, targets):
        if len(mixers) == 1:
            return apply(mixers[0], images, targets)
        first = tf.random.uniform([], seed=seed) < 0.5
        return tf.cond(first, lambda: apply(mixers[0], images, targets), lambda: apply(mixers[1], images, targets))

    return mix


RANGE_TEST_STEPS = 60
RANGE_TEST_RATES = (1e-6, 1.0)  # the first and the last step's rate, growing exponentially between them
RANGE_TEST_SMOOTHING = 0.9  # the loss's moving average (bias-corrected), as fast.ai's finder smooths it


def range_test_rate(model: keras.Model, images: np.ndarray, targets: np.ndarray, config: TrainConfig,
                    outputs: Outputs, seed: int = 0, jit_compile: bool | str = "auto") -> float:
    """Smith's learning-rate range test (2017, "Cyclical learning rates"), `lr_range_test`: from the model's current
    weights, train RANGE_TEST_STEPS batches of the rows given (a fold's training rows: the rate is chosen on nothing
    the fold predicts) while the rate grows exponentially over RANGE_TEST_RATES, stopping once the smoothed loss is
    four times its lowest; the rate to train at is a tenth of the one where the smoothed loss was lowest. The
    model's weights (BatchNorm's statistics too) are put back and its compile for training forgotten."""
    first, last = RANGE_TEST_RATES
    growth = (last / first) ** (1 / (RANGE_TEST_STEPS - 1))
    weights, rng = model.get_weights(), np.random.default_rng(seed)
    schedule = keras.optimizers.schedules.ExponentialDecay(first, decay_steps=1, decay_rate=growth)
    model.compile(optimizer=optimizer_for(dataclasses.replace(config, ema=0.0), schedule),
                  loss=training_loss(config, outputs), jit_compile=jit_compile)
    fitted, batch = training_targets(config, outputs, targets), min(config.batch_size, len(images))
    rates, smoothed, average = [], [], 0.0
    for step in range(RANGE_TEST_STEPS):
        rows = rng.choice(len(images), batch, replace=False)
        loss = float(np.ravel(model.train_on_batch(images[rows], fitted[rows]))[0])
        if not np.isfinite(loss):
            break
        average = RANGE_TEST_SMOOTHING * average + (1 - RANGE_TEST_SMOOTHING) * loss
        rates.append(first * growth ** step)
        smoothed.append(average / (1 - RANGE_TEST_SMOOTHING ** (step + 1)))
        if step > 5 and smoothed[-1] > 4 * min(smoothed):
            break
    model.set_weights(weights)
    model._headstart_compiled_for = None  # compile_once compiles anew for the training itself
    rate = rates[int(np.argmin(smoothed))] / 10 if smoothed else config.learning_rate
    return float(rate)
