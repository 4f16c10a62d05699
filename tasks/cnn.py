"""A CNN trained from scratch on pixels, with augmentation: the workshop's comparison model ("small", two blocks),
and the deeper one of Kaggle's public digit-recognizer ensembles ("deep", three blocks). Its own training tricks,
off by default (bench/RESULTS.md, "Issue 21: real digits at size", says which are measured): random erasing and
RandAugment inside the model, test-time shifts, and pseudo-labels: a second round on the test images it predicts
with confidence, never on the rows a fold predicts out of fold.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import keras
import numpy as np
from keras import layers

from tasks.config import TrainConfig
from tasks.errors import ConfigError
from tasks.members import (
    FoldFitter,
    MemberContext,
    glorot,
    logits_layer,
    pixel_member,
    seed_stream,
)
from tasks.outputs import SINGLE_LABEL
from tasks.training import predict_probabilities, train_keras_model

MAX_CNN_SIZE = 64  # larger images are resized down: a from-scratch CNN gains little above this on a CPU


def augmentation(flip: bool, seeds: Iterator[int], config: TrainConfig = TrainConfig()) -> keras.Sequential:
    """Random shifts, small rotations and zooms (and mirror images for natural photos), in training only; then
    RandAugment and random erasing where the config asks (on pixels scaled to 0..1). `config.augmentation` scales
    the shifts, rotations and zooms (0: none of them)."""
    strength = config.augmentation
    steps = [layers.RandomTranslation(0.1 * strength, 0.1 * strength, fill_mode="constant", seed=next(seeds)),
             layers.RandomRotation(0.04 * strength, fill_mode="constant", seed=next(seeds)),
             layers.RandomZoom(0.1 * strength, fill_mode="constant", seed=next(seeds))] if strength else []
    if flip:
        steps.insert(0, layers.RandomFlip("horizontal", seed=next(seeds)))
    if config.randaugment:
        steps.append(layers.RandAugment(value_range=(0, 1), num_ops=config.randaugment, seed=next(seeds)))
    if config.random_erasing:
        steps.append(layers.RandomErasing(config.random_erasing, value_range=(0, 1), seed=next(seeds)))
    return keras.Sequential(steps or [layers.Identity()], name="augmentation")  # none: the identity


def augment_images(images: np.ndarray, copies: int, flip: bool, seed: int = 0) -> np.ndarray:
    """`copies` random draws of the CNN's training augmentation for each image: (copies, N, H, W, C), uint8."""
    if copies < 1:
        raise ConfigError(f"copies must be at least 1, got {copies}")
    keras.utils.set_random_seed(seed)
    augment, batch = augmentation(flip, seed_stream(seed)), np.asarray(images, dtype="float32")
    # training=True: the random layers are the identity at inference, which is why predictions are not augmented.
    return np.stack([np.clip(np.asarray(augment(batch, training=True)), 0, 255).astype(np.uint8)
                     for _ in range(copies)])


def _block(features, filters: int, seeds: Iterator[int]):
    for _ in range(2):
        features = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=glorot(seeds))(features)
        features = layers.Activation("relu")(layers.BatchNormalization(momentum=0.9)(features))
    return layers.Dropout(0.25, seed=next(seeds))(layers.MaxPooling2D()(features))


def cnn_model(input_shape: tuple[int, int, int], outputs: int, filters: int = 32, seed: int = 0,
              config: TrainConfig = TrainConfig()) -> keras.Model:
    """Two conv blocks (`filters`, then twice as many), then a dense layer; mirror-flips only colour images."""
    seeds = seed_stream(seed)
    inputs = keras.Input(shape=input_shape, name="pixels")
    features = augmentation(input_shape[-1] == 3, seeds, config)(layers.Rescaling(1.0 / 255)(inputs))
    features = _block(_block(features, filters, seeds), 2 * filters, seeds)
    features = layers.Dense(4 * filters, activation="relu", kernel_initializer=glorot(seeds))(layers.Flatten()(features))
    return keras.Model(inputs, logits_layer(outputs, seeds)(layers.Dropout(0.5, seed=next(seeds))(features)),
                       name="small_cnn")


def _conv(features, filters: int, kernel: int, seeds: Iterator[int], strides: int = 1, padding: str = "valid"):
    features = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                             kernel_initializer=glorot(seeds))(features)
    return layers.Activation("relu")(layers.BatchNormalization(momentum=0.9)(features))


def deep_cnn_model(input_shape: tuple[int, int, int], outputs: int, filters: int = 32, seed: int = 0,
                   config: TrainConfig = TrainConfig()) -> keras.Model:
    """Three blocks, BatchNorm after every convolution, strided 5x5 convolutions instead of pooling (the design of
    Kaggle's public digit-recognizer ensembles, Deotte 2018): `filters`, twice, then four times as many."""
    seeds = seed_stream(seed)
    inputs = keras.Input(shape=input_shape, name="pixels")
    features = augmentation(input_shape[-1] == 3, seeds, config)(layers.Rescaling(1.0 / 255)(inputs))
    for width in (filters, 2 * filters):
        features = _conv(_conv(features, width, 3, seeds), width, 3, seeds)
        features = _conv(features, width, 5, seeds, strides=2, padding="same")
        features = layers.Dropout(0.4, seed=next(seeds))(features)
    features = layers.Flatten()(_conv(features, 4 * filters, features.shape[1], seeds))
    return keras.Model(inputs, logits_layer(outputs, seeds)(layers.Dropout(0.4, seed=next(seeds))(features)),
                       name="deep_cnn")


ARCHITECTURES = {"small": cnn_model, "deep": deep_cnn_model}
DEFAULT_ARCHITECTURE = "small"  # where the config names none (the large grey recipe names "deep": tasks/recipes.py)
DEFAULT_FILTERS = 32  # likewise (the large grey recipe's: 24)


def shifted(images: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Images moved by `rows` down and `columns` right, the uncovered edge black (as the training shifts fill it)."""
    moved = np.zeros_like(images)
    height, width = images.shape[1:3]
    moved[:, max(rows, 0):height + min(rows, 0), max(columns, 0):width + min(columns, 0)] = \
        images[:, max(-rows, 0):height + min(-rows, 0), max(-columns, 0):width + min(-columns, 0)]
    return moved


def tta_predictor(pixels: int, outputs):
    """Probabilities averaged over the image and four copies shifted by `pixels` (0: the image alone)."""
    offsets = [(0, 0)] + ([(pixels, 0), (-pixels, 0), (0, pixels), (0, -pixels)] if pixels else [])

    def predict(model: keras.Model, images: np.ndarray) -> np.ndarray:
        return np.mean([predict_probabilities(model, shifted(images, *offset), outputs=outputs)
                        for offset in offsets], axis=0)

    return predict


PSEUDO_RATE = 0.3  # the second round's learning rate, of the first's: it refines a trained model


def pseudo_label_round(context: MemberContext, predict):
    """The second round: the fold's training rows plus the test images whose top probability reaches
    `pseudo_threshold`, labelled by the first round and weighted `pseudo_weight`, for `pseudo_epochs` epochs on a
    cosine schedule from a lower rate. The fold's held-out rows are never among them: its out-of-fold predictions
    stay honest. None when the config asks for none, or the task has no single label per image."""
    config, outputs = context.train, context.outputs
    if not config.pseudo_epochs or outputs.task not in SINGLE_LABEL:
        return None
    tuning = dataclasses.replace(config, epochs=config.pseudo_epochs, patience=config.pseudo_epochs,
                                 schedule="cosine", learning_rate=PSEUDO_RATE * config.learning_rate,
                                 lr_range_test=False)

    def second_round(model, fit: tuple, stop: tuple, test_images: np.ndarray, clock, history: dict) -> dict:
        probabilities = predict(model, test_images)
        confident = probabilities.max(axis=1) >= config.pseudo_threshold
        images = np.concatenate([fit[0], test_images[confident]])
        labels = np.concatenate([fit[1], probabilities.argmax(axis=1)[confident]])
        weights = np.concatenate([np.ones(len(fit[0]), np.float32),
                                  np.full(int(confident.sum()), config.pseudo_weight, np.float32)])
        more = train_keras_model(model, (images, labels, weights), stop, tuning, context.seed + 1, clock,
                                 jit_compile=context.jit_compile, outputs=outputs, monitor=context.monitor)
        return {name: values + more.get(name, []) for name, values in history.items()} | \
            {"pseudo_labels": [float(confident.sum())]}

    return second_round


def fit_cnn(context: MemberContext) -> FoldFitter:
    config = context.train
    name = config.cnn_architecture or DEFAULT_ARCHITECTURE
    build = lambda shape, outputs: ARCHITECTURES[name](shape, outputs, config.cnn_filters or DEFAULT_FILTERS,
                                                       context.seed, config)
    predict = tta_predictor(config.tta_shifts, context.outputs)
    return pixel_member(context, build, f"cnn {name} (seed {context.seed})",
                        max_size=config.cnn_size or MAX_CNN_SIZE, predict=predict,
                        second_round=pseudo_label_round(context, predict), folds=config.cnn_folds)


def measure_cost(input_shape: tuple[int, int, int], outputs, config: TrainConfig, jit_compile: bool | str = "auto",
                 steps: int = 8):
    """What this CNN costs on this machine (tasks/budget_plan.py): `measure_training_cost` of it, built anew."""
    import time

    from tasks.training import measure_training_cost

    started = time.perf_counter()
    model = ARCHITECTURES[config.cnn_architecture or DEFAULT_ARCHITECTURE](input_shape, outputs.units,
                                                                           config.cnn_filters or DEFAULT_FILTERS,
                                                                           0, config)
    return measure_training_cost(model, input_shape, outputs, config, jit_compile, steps, started)
