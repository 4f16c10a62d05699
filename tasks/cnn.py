"""A small CNN trained from scratch on pixels, with augmentation: the workshop's comparison model."""

from __future__ import annotations

from typing import Iterator

import keras
import numpy as np
from keras import layers

from tasks.errors import ConfigError
from tasks.members import FoldFitter, MemberContext, glorot, logits_layer, pixel_member, seed_stream

MAX_CNN_SIZE = 64  # larger images are resized down: a from-scratch CNN gains little above this on a CPU


def augmentation(flip: bool, seeds: Iterator[int]) -> keras.Sequential:
    """Random shifts, small rotations and zooms (and mirror images for natural photos), in training only."""
    steps = [layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=next(seeds)),
             layers.RandomRotation(0.04, fill_mode="constant", seed=next(seeds)),
             layers.RandomZoom(0.1, fill_mode="constant", seed=next(seeds))]
    if flip:
        steps.insert(0, layers.RandomFlip("horizontal", seed=next(seeds)))
    return keras.Sequential(steps, name="augmentation")


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


def cnn_model(input_shape: tuple[int, int, int], outputs: int, filters: int = 32, seed: int = 0) -> keras.Model:
    """Two conv blocks (`filters`, then twice as many), then a dense layer; mirror-flips only colour images."""
    seeds = seed_stream(seed)
    inputs = keras.Input(shape=input_shape, name="pixels")
    features = augmentation(input_shape[-1] == 3, seeds)(layers.Rescaling(1.0 / 255)(inputs))
    features = _block(_block(features, filters, seeds), 2 * filters, seeds)
    features = layers.Dense(4 * filters, activation="relu", kernel_initializer=glorot(seeds))(layers.Flatten()(features))
    return keras.Model(inputs, logits_layer(outputs, seeds)(layers.Dropout(0.5, seed=next(seeds))(features)),
                       name="small_cnn")


def fit_cnn(context: MemberContext) -> FoldFitter:
    build = lambda input_shape, outputs: cnn_model(input_shape, outputs, context.train.cnn_filters, context.seed)
    return pixel_member(context, build, f"cnn (seed {context.seed})", max_size=context.train.cnn_size or MAX_CNN_SIZE)
