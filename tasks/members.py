"""Ensemble members: anything that yields out-of-fold and fold-averaged test probabilities.

Here: the k-fold machinery shared by every member, and the softmax-on-pixels baseline. Members are
functions `(MemberContext) -> MemberResult`, registered by kind in tasks/recipes.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tasks.config import TrainConfig
from tasks.index import TEST, TRAIN, LoadedIndex
from tasks.pipelines import image_batches, split_source
from tasks.progress import progress_bar


@dataclass(frozen=True)
class MemberContext:
    """What a member trains on: the index, its training settings, and its backbone's feature sets."""

    index: LoadedIndex
    train: TrainConfig
    seed: int = 0
    feature_dirs: tuple[Path, ...] = ()  # one per view, identity first

    @property
    def labels(self) -> np.ndarray:
        return self.index.split(TRAIN)["label"].to_numpy()

    @property
    def folds(self) -> np.ndarray:
        return self.index.split(TRAIN)["fold"].to_numpy()

    @property
    def num_classes(self) -> int:
        return len(self.index.metadata["spec"]["class_names"])

    @property
    def num_test(self) -> int:
        return int(self.index.metadata["num_test"])


@dataclass
class MemberResult:
    oof: np.ndarray  # (num_train, num_classes): each row predicted by the fold model that did not see it
    test: np.ndarray  # (num_test, num_classes): the mean over the fold models
    histories: list[dict] = field(default_factory=list)  # per fold: metric name -> values per epoch


FoldFit = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, dict]]


def cross_validate(folds: np.ndarray, num_classes: int, num_test: int, fit_fold: FoldFit,
                   description: str = "folds") -> MemberResult:
    """Run `fit_fold(train_positions, valid_positions) -> (valid_probs, test_probs, history)` per fold."""
    fold_numbers = np.unique(folds)
    oof = np.full((len(folds), num_classes), np.nan, dtype=np.float32)
    test = np.zeros((num_test, num_classes), dtype=np.float32)
    histories = []
    with progress_bar(description, total=len(fold_numbers), unit="folds") as advance:
        for fold in fold_numbers:
            valid = np.flatnonzero(folds == fold)
            valid_probs, test_probs, history = fit_fold(np.flatnonzero(folds != fold), valid)
            oof[valid] = valid_probs
            test += test_probs / len(fold_numbers)
            histories.append(history)
            advance()
    return MemberResult(oof=oof, test=test, histories=histories)


def logits_layer(num_classes: int) -> layers.Dense:
    """Every Keras member's last layer: logits, in float32 whatever the compute policy (mixed precision keeps
    the loss and the softmax stable); probabilities are taken at prediction time (`predict_probabilities`)."""
    return layers.Dense(num_classes, dtype="float32", name="logits")


def predict_probabilities(model: keras.Model, inputs, **options) -> np.ndarray:
    """The model's logits turned into class probabilities (a stable softmax, in float64)."""
    logits = np.asarray(model.predict(inputs, verbose=0, **options), dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    exponentials = np.exp(logits)
    return (exponentials / exponentials.sum(axis=1, keepdims=True)).astype(np.float32)


def train_keras_model(model: keras.Model, train: tf.data.Dataset, valid: tf.data.Dataset,
                      config: TrainConfig) -> dict:
    """Train (on logits: `from_logits=True`, stabler than probabilities into the loss) with early stopping on the
    held-out fold, keeping the best weights; return the history."""
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True)
    history = model.fit(train, validation_data=valid, epochs=config.epochs, callbacks=[stop], shuffle=False,
                        verbose=0)
    return {name: [float(value) for value in values] for name, values in history.history.items()}


def softmax_model(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Multinomial logistic regression on raw pixels: the baseline that closes the loop."""
    inputs = keras.Input(shape=input_shape, name="pixels")
    features = layers.Flatten()(layers.Rescaling(1.0 / 255)(inputs))
    return keras.Model(inputs, logits_layer(num_classes)(features), name="softmax")


def pixel_member(context: MemberContext, build_model, description: str, max_size: int | None = None) -> MemberResult:
    """K-fold training of a Keras model built by `build_model(input_shape, num_classes)` on tf.data images."""
    index, config, labels = context.index, context.train, context.labels
    channels = index.metadata["channels"]
    native = max(index.metadata["image_height"], index.metadata["image_width"])
    size = config.image_size or (min(native, max_size) if max_size and native > max_size else None)
    input_shape = (size or index.metadata["image_height"], size or index.metadata["image_width"], channels)
    batches = lambda source, **options: image_batches(source, channels, size, config.batch_size,
                                                      same_size=index.same_size, **options)
    test_x = batches(split_source(index, TEST))

    def fit_fold(train_positions: np.ndarray, valid_positions: np.ndarray):
        keras.utils.set_random_seed(context.seed)
        train = batches(split_source(index, TRAIN, train_positions), labels=labels[train_positions],
                        shuffle_seed=context.seed)
        valid = batches(split_source(index, TRAIN, valid_positions), labels=labels[valid_positions])
        model = build_model(input_shape, context.num_classes)
        history = train_keras_model(model, train, valid, config)
        valid_x = valid.map(lambda inputs, _: inputs)
        return predict_probabilities(model, valid_x), predict_probabilities(model, test_x), history

    return cross_validate(context.folds, context.num_classes, context.num_test, fit_fold, description)


def fit_softmax(context: MemberContext) -> MemberResult:
    return pixel_member(context, softmax_model, "softmax on pixels")
