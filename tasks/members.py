"""Ensemble members: anything that yields out-of-fold and fold-averaged test probabilities.

Here: what every member shares (its context, its inner split, its images) and the softmax-on-pixels baseline; the
one Keras training loop and the predictions are in tasks/training.py. A member kind is a function
`(MemberContext) -> FoldFitter` (registered in tasks/recipes.py): it prepares once what all its folds share, and
fits one fold at a time; tasks/fitting.py runs the folds as units of work.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import keras
import numpy as np
from keras import layers

from tasks.budget import Clock
from tasks.config import FeatureConfig, TrainConfig
from tasks.index import TEST, TRAIN, LoadedIndex
from tasks.outputs import Outputs, outputs_of
from tasks.pipelines import image_batches, split_source
from tasks.training import (  # noqa: F401  (members and their tests import the loop from here too)
    Monitor,
    compile_once,
    evaluate_arrays,
    keeps_best_weights,
    learning_rate,
    metric_monitor,
    predict_logits,
    predict_probabilities,
    selection_value,
    train_keras_model,
    train_step,
)


@dataclass(frozen=True)
class MemberContext:
    """What a member trains on: the index, its training settings, and its backbone's feature sets."""

    index: LoadedIndex
    train: TrainConfig
    seed: int = 0
    feature_dirs: tuple[Path, ...] = ()  # one per view, identity first
    backbone: str | None = None  # the member's backbone, for members that build it (finetune)
    weights: Path | None = None  # its weights file (None: random weights)
    features_root: Path | None = None  # the competition's feature cache, for feature sets a member adds
    features: FeatureConfig = FeatureConfig()  # the run's, for feature sets a member extracts itself
    jit_compile: bool | str = "auto"  # XLA for training steps ("auto": Keras decides, on a GPU only)

    @property
    def targets(self) -> np.ndarray:
        """The training rows' targets: class indices (N,), or a 0/1 tag matrix (N, T) for a multi-label task."""
        return self.index.targets()

    @property
    def outputs(self) -> Outputs:
        return outputs_of(self.index)

    @property
    def folds(self) -> np.ndarray:
        return self.index.split(TRAIN)["fold"].to_numpy()

    @property
    def num_classes(self) -> int:
        """Probability columns: classes, or tags."""
        return self.outputs.columns

    @property
    def monitor(self) -> Monitor:
        """What Keras members early-stop on: the competition's metric."""
        return metric_monitor(self.index.metadata["spec"]["metric"], self.outputs)

    def stopping_split(self, train_positions: np.ndarray, valid_positions: np.ndarray,
                       config: TrainConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The fold's training rows the model fits, and those its training watches: an inner split of the training
        rows (`inner_split`) where `config` (default: the member's) chooses epochs or weights by them; where it
        chooses nothing (`chooses_by_validation`: a schedule run to its end), every training row is fitted and at
        most WATCHED_ROWS of the fold's held-out rows are watched, for the training curves only (as the finetune
        member does): they decide nothing, so the out-of-fold predictions stay honest."""
        if not chooses_by_validation(config or self.train):
            return train_positions, valid_positions[:: -(-len(valid_positions) // WATCHED_ROWS)]
        return inner_split(train_positions, self.targets, self.train.stop_fraction, self.seed)

    @property
    def num_test(self) -> int:
        return int(self.index.metadata["num_test"])


FoldFit = Callable[[np.ndarray, np.ndarray, Clock], tuple[np.ndarray, np.ndarray, dict]]


@dataclass(frozen=True)
class FoldFitter:
    """A member prepared to fit folds: what it does once for all folds (images decoded into memory, a model built and
    traced) is done, and `fit_fold(train_positions, valid_positions, clock) -> (valid_probs, test_probs, history)`
    fits one. `folds`: it fits only the first `folds` folds (finetune, slow on a CPU); None: every fold."""

    fit_fold: FoldFit
    description: str
    folds: int | None = None


@dataclass
class MemberResult:
    oof: np.ndarray  # (num_train, num_classes): each row predicted by the fold model that did not see it
    test: np.ndarray  # (num_test, num_classes): the mean over the fold models
    histories: list[dict] = field(default_factory=list)  # per fold: metric name -> values per epoch
    ended_early: bool = False  # the time limit cut epochs or folds short


def class_probabilities(model, rows: np.ndarray, num_classes: int) -> np.ndarray:
    """A scikit-learn model's predict_proba with a column for every class (or tag), even one absent from the fold's
    training part."""
    probabilities = np.zeros((len(rows), num_classes), dtype=np.float32)
    if len(rows):
        probabilities[:, model.classes_] = model.predict_proba(rows)
    return probabilities


def for_task(classifier, outputs: Outputs):
    """A scikit-learn classifier for the task: as it is for one label per row, one per tag (one against the rest)
    for a multi-label task."""
    if outputs.task != "multilabel":
        return classifier
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(classifier)


def strata(targets: np.ndarray) -> np.ndarray:
    """One class per row for stratified sampling: the label, or a multi-label row's rarest tag."""
    if np.ndim(targets) == 1:
        return np.asarray(targets)
    from tasks.index import rarest_tags

    return rarest_tags(np.asarray(targets))


def seed_stream(seed: int) -> Iterator[int]:
    """Explicit seeds for a model's initializers and random layers, one each, from the member's seed. Keras draws
    a missing seed from Python's process-wide `random`, which other threads (Prefect's, a Dask worker's) draw from
    too: the same fold built in another process started from other weights (0.05 apart in an MLP's predictions)."""
    return itertools.count(1000 * seed + 1)


def glorot(seeds: Iterator[int]) -> keras.initializers.Initializer:
    return keras.initializers.GlorotUniform(seed=next(seeds))


def logits_layer(units: int, seeds: Iterator[int]) -> layers.Dense:
    """Every Keras member's last layer: logits (`Outputs.units` of them), in float32 whatever the compute policy
    (mixed precision keeps the loss and the softmax or sigmoid stable); probabilities are taken at prediction time
    (`predict_probabilities`)."""
    return layers.Dense(units, dtype="float32", name="logits", kernel_initializer=glorot(seeds))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities from logits (a stable softmax, in float64)."""
    return Outputs().probabilities(logits)


WATCHED_ROWS = 2_000  # held-out rows a training that chooses nothing by them watches each epoch (its curves)


def chooses_by_validation(config: TrainConfig) -> bool:
    """Whether a Keras member's training chooses anything by the rows it watches: its epochs (early stopping can
    end it before `config.epochs`) or its weights (`keeps_best_weights`)."""
    return keeps_best_weights(config) or config.patience < config.epochs


def inner_split(positions: np.ndarray, targets: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fold's training rows split in two: those the model fits, and the `fraction` its early stopping watches.
    The fold's held-out rows are then predicted by a model that chose nothing on them: its out-of-fold predictions
    are honest. Stratified by class (a multi-label row's rarest tag) where every class has two rows."""
    from sklearn.model_selection import train_test_split

    strata_of = strata(targets[positions])
    counts = np.unique(strata_of, return_counts=True)[1]
    stratify = strata_of if counts.min() >= 2 and round(fraction * len(positions)) >= len(counts) else None
    fit, stop = train_test_split(positions, test_size=fraction, random_state=seed, stratify=stratify)
    return np.sort(fit), np.sort(stop)


def epochs_for(config: TrainConfig, num_images: int) -> int:
    """`config.epochs`, or fewer where `images_per_fold` caps epochs x images (at least 2 epochs)."""
    if config.images_per_fold is None or num_images == 0:
        return config.epochs
    return max(2, min(config.epochs, round(config.images_per_fold / num_images)))


def load_images(index: LoadedIndex, split: str, channels: int, image_size: int | None) -> np.ndarray:
    """A split's images decoded once into memory, uint8 (N, H, W, C), resized to `image_size` when given."""
    batches = image_batches(split_source(index, split), channels, image_size, 512, same_size=index.same_size)
    return np.concatenate([np.round(np.clip(batch.numpy(), 0, 255)).astype(np.uint8) for batch in batches])


def softmax_model(input_shape: tuple[int, int, int], units: int, seed: int = 0) -> keras.Model:
    """Logistic regression on raw pixels (multinomial, or one sigmoid per output): the baseline that closes the
    loop."""
    inputs = keras.Input(shape=input_shape, name="pixels")
    features = layers.Flatten()(layers.Rescaling(1.0 / 255)(inputs))
    return keras.Model(inputs, logits_layer(units, seed_stream(seed))(features), name="softmax")


def capped_size(index: LoadedIndex, max_size: int | None) -> int | None:
    """The size to load a competition's images at so that none is larger than `max_size` (None: as they are)."""
    native = max(index.metadata["image_height"], index.metadata["image_width"])
    return max_size if max_size and native > max_size else None


def pixel_member(context: MemberContext, build_model, description: str, max_size: int | None = None,
                 predict=None, second_round=None, folds: int | None = None) -> FoldFitter:
    """Folds of a Keras model built by `build_model(input_shape, num_classes)` on the images, decoded once into
    memory, and one model for all folds (traced once). `predict(model, images)`: its probabilities (default: the
    model's own); `second_round(model, fit, stop, test_images, clock) -> history`: more training after the first
    (pseudo-labels); `folds`: the FoldFitter's."""
    index, config, targets, outputs = context.index, context.train, context.targets, context.outputs
    channels = index.metadata["channels"]
    size = config.image_size or capped_size(index, max_size)
    images, test_images = (load_images(index, split, channels, size) for split in (TRAIN, TEST))
    keras.utils.set_random_seed(context.seed)
    model = build_model(images.shape[1:], outputs.units)
    predict = predict or (lambda trained, rows: predict_probabilities(trained, rows, outputs=outputs))
    # Every fold starts from the same state, random layers' seeds included (`variables`, not only `weights`): a
    # fold's result must not depend on the folds fitted before it in the same process (mapped folds are not).
    initial = [(variable, variable.numpy()) for variable in model.variables]

    def fit_fold(train_positions: np.ndarray, valid_positions: np.ndarray, clock: Clock):
        keras.utils.set_random_seed(context.seed)
        for variable, value in initial:
            variable.assign(value)
        epochs = epochs_for(config, len(train_positions))
        training = dataclasses.replace(config, epochs=epochs, patience=min(config.patience, epochs))
        fit_rows, stop_rows = context.stopping_split(train_positions, valid_positions, training)
        fit, stop = (images[fit_rows], targets[fit_rows]), (images[stop_rows], targets[stop_rows])
        history = train_keras_model(model, fit, stop, training, context.seed, clock,
                                    jit_compile=context.jit_compile, outputs=outputs, monitor=context.monitor)
        if second_round is not None:
            history = second_round(model, fit, stop, test_images, clock, history)
        return predict(model, images[valid_positions]), predict(model, test_images), history

    return FoldFitter(fit_fold, description, folds)


def fit_softmax(context: MemberContext) -> FoldFitter:
    return pixel_member(context, lambda shape, classes: softmax_model(shape, classes, context.seed), "softmax on pixels")
