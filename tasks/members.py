"""Ensemble members: anything that yields out-of-fold and fold-averaged test probabilities.

Each member is a function `(index, config) -> MemberResult`, registered by name in MEMBERS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.index import TEST, TRAIN, LoadedIndex, read_index
from tasks.metrics import score_probabilities
from tasks.paths import atomic_write_json, atomic_write_npy
from tasks.plots import plot_training_curves
from tasks.pipelines import batched, image_dataset, split_source
from tasks.progress import progress_bar


@dataclass(frozen=True)
class TrainConfig:
    """How a Keras member trains on each fold."""

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 5
    image_size: int | None = None  # None: the competition's native size
    seed: int = 0


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


def fit_keras_fold(model: keras.Model, train: tf.data.Dataset, valid: tf.data.Dataset, test_x: tf.data.Dataset,
                   config: TrainConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train with early stopping on the held-out fold (best weights kept), then predict it and the test set."""
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True)
    history = model.fit(train, validation_data=valid, epochs=config.epochs, callbacks=[stop], shuffle=False, verbose=0)
    valid_x = valid.map(lambda inputs, _: inputs)
    return (model.predict(valid_x, verbose=0), model.predict(test_x, verbose=0),
            {name: [float(value) for value in values] for name, values in history.history.items()})


def softmax_model(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Multinomial logistic regression on raw pixels: the baseline that closes the loop."""
    inputs = keras.Input(shape=input_shape, name="pixels")
    features = layers.Flatten()(layers.Rescaling(1.0 / 255)(inputs))
    outputs = layers.Dense(num_classes, activation="softmax")(features)
    return keras.Model(inputs, outputs, name="softmax")


def pixel_member(index: LoadedIndex, config: TrainConfig, build_model, description: str) -> MemberResult:
    """K-fold training of a Keras model built by `build_model(input_shape, num_classes)` on tf.data images."""
    train_table = index.split(TRAIN)
    labels = train_table["label"].to_numpy()
    channels = index.metadata["channels"]
    size = config.image_size
    input_shape = (size or index.metadata["image_height"], size or index.metadata["image_width"], channels)
    num_classes = len(index.metadata["spec"]["class_names"])
    test_x = batched(image_dataset(split_source(index, TEST), channels, size), config.batch_size)

    def fit_fold(train_positions: np.ndarray, valid_positions: np.ndarray):
        keras.utils.set_random_seed(config.seed)
        images = lambda positions: image_dataset(split_source(index, TRAIN, positions), channels, size)
        train = batched(images(train_positions), config.batch_size, labels[train_positions], config.seed)
        valid = batched(images(valid_positions), config.batch_size, labels[valid_positions])
        return fit_keras_fold(build_model(input_shape, num_classes), train, valid, test_x, config)

    return cross_validate(train_table["fold"].to_numpy(), num_classes, len(index.split(TEST)), fit_fold,
                          description)


def fit_softmax(index: LoadedIndex, config: TrainConfig) -> MemberResult:
    return pixel_member(index, config, softmax_model, "softmax on pixels")


MEMBERS: dict[str, Callable[[LoadedIndex, TrainConfig], MemberResult]] = {
    "softmax": fit_softmax,
}


def member_function(name: str):
    if name not in MEMBERS:
        raise ValueError(f"unknown member {name!r}; known members are {sorted(MEMBERS)}")
    return MEMBERS[name]


def save_member(directory: Path, name: str, result: MemberResult, score: float) -> Path:
    """oof.npy and test.npy, then member.json (written last: its presence marks a complete member)."""
    atomic_write_npy(directory / "oof.npy", result.oof)
    atomic_write_npy(directory / "test.npy", result.test)
    return atomic_write_json(directory / "member.json", {"name": name, "cv_score": score,
                                                          "epochs_per_fold": [len(h.get("loss", [])) for h in
                                                                              result.histories]})


@task(cache_policy=NO_CACHE)
def fit_member(config, index_dir: Path, name: str, run_id: str) -> Path:
    """Train one member over the folds; leave its predictions in data/05_predictions/<comp>/<run>/<name>/."""
    index = read_index(index_dir)
    result = member_function(name)(index, config.train)
    labels = index.split(TRAIN)["label"].to_numpy()
    score = score_probabilities(labels, result.oof, index.metadata["spec"]["metric"])
    if result.histories and result.histories[0]:
        plot_training_curves(result.histories, name,
                             config.paths.models(config.competition, run_id) / name / "training_curves.png")
    directory = config.paths.predictions(config.competition, run_id) / name
    save_member(directory, name, result, score)
    return directory


def load_member(directory: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    return (json.loads((directory / "member.json").read_text()), np.load(directory / "oof.npy"),
            np.load(directory / "test.npy"))
