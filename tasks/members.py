"""Ensemble members: anything that yields out-of-fold and fold-averaged test probabilities.

Here: what every member shares (its context, the one Keras training loop, predictions) and the softmax-on-pixels
baseline. A member kind is a function `(MemberContext) -> FoldFitter` (registered in tasks/recipes.py): it prepares
once what all its folds share, and fits one fold at a time; tasks/fitting.py runs the folds as units of work.
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
from tasks.tricks import (
    averaged_weights_in,
    batch_mixer,
    optimizer_for,
    trained_weights_back,
    training_loss,
    training_targets,
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

    def stopping_split(self, train_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fold's training rows the model fits, and those its early stopping watches (`inner_split`)."""
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


def predict_logits(model: keras.Model, inputs: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The model's outputs on arrays in memory, chunk by chunk with `predict_on_batch` (no tf.data threads)."""
    if len(inputs) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.concatenate([np.asarray(model.predict_on_batch(inputs[start:start + batch_size]))
                           for start in range(0, len(inputs), batch_size)])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities from logits (a stable softmax, in float64)."""
    return Outputs().probabilities(logits)


def predict_probabilities(model: keras.Model, inputs: np.ndarray, batch_size: int = 512,
                          outputs: Outputs = Outputs()) -> np.ndarray:
    """The model's logits turned into the task's probabilities (softmax, or sigmoid)."""
    return outputs.probabilities(predict_logits(model, inputs, batch_size))


ONE_CYCLE_WARMUP = 0.2  # of the steps: "onecycle" rises linearly from 4 % of the rate to it, then decays


def learning_rate(config: TrainConfig, steps_per_epoch: int):
    """Constant, or cosine decay to 1 % over all the epochs (`schedule = "cosine"`), or one cycle (`"onecycle"`:
    a linear warm-up over the first fifth of the steps, then that cosine decay): with a schedule, fewer
    epochs reach the same accuracy."""
    steps = config.epochs * steps_per_epoch
    if config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.01)
    if config.schedule == "onecycle":
        warmup = int(ONE_CYCLE_WARMUP * steps)
        return keras.optimizers.schedules.CosineDecay(config.learning_rate / 25, max(1, steps - warmup), alpha=0.01,
                                                      warmup_target=config.learning_rate, warmup_steps=warmup)
    return config.learning_rate


def evaluate_arrays(model: keras.Model, inputs: np.ndarray, targets: np.ndarray, batch_size: int = 512,
                    outputs: Outputs = Outputs()) -> tuple:
    """Mean loss and accuracy on arrays in memory, as the compiled loss and metric count them."""
    probabilities = predict_probabilities(model, inputs, batch_size, outputs)
    return outputs.loss(targets, probabilities), outputs.accuracy(targets, probabilities)


Monitor = Callable[[np.ndarray, np.ndarray], float]  # (targets, probabilities) -> a score, higher is better


def metric_monitor(metric: str, outputs: Outputs) -> Monitor:
    """Early stopping on the competition's own metric (answers by its plain decision: argmax, 0.5 per tag, the top
    K, rounded grades; log loss negated), as the blend and local scoring score it. Where the metric is undefined on
    the rows (ROC AUC on one class), the loss decides."""
    from tasks.errors import CompetitionDataError
    from tasks.metrics import higher_is_better, score_probabilities

    sign = 1.0 if higher_is_better(metric) else -1.0

    def monitor(targets: np.ndarray, probabilities: np.ndarray) -> float:
        try:
            return sign * score_probabilities(targets, probabilities, metric)
        except (CompetitionDataError, ValueError):
            return -outputs.loss(targets, probabilities)

    return monitor


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


def selection_value(score: float, loss: float) -> float:
    """What early stopping maximises, in every training loop: the monitor's score, ties broken by the lower
    validation loss. A metric counted on a hundred rows moves in steps: on the built-in digits the CNN's accuracy on
    its stopping rows sat level for five epochs while the loss still fell, so strict improvement stopped folds at 15
    epochs and kept the first epoch to reach the level (CV 0.958; with the tie broken, see bench/RESULTS.md)."""
    return float(score) - 1e-6 * min(float(loss), 1e3)


class _ValidationScore(keras.callbacks.Callback):
    """`val_score` in the logs after every epoch: the monitor's score of the validation rows; `val_selection`: what
    EarlyStopping maximises (`selection_value`)."""

    def __init__(self, valid: tuple, monitor: Monitor, outputs: Outputs):
        super().__init__()
        self.valid, self.monitor, self.outputs = valid, monitor, outputs

    def on_epoch_end(self, epoch, logs=None):
        probabilities = predict_probabilities(self.model, self.valid[0], outputs=self.outputs)
        logs["val_score"] = self.monitor(self.valid[1], probabilities)
        logs["val_selection"] = selection_value(logs["val_score"], self.outputs.loss(self.valid[1], probabilities))


class _ClockStop(keras.callbacks.Callback):
    def __init__(self, clock: Clock):
        super().__init__()
        self.clock = clock

    def on_epoch_end(self, epoch, logs=None):
        self.clock.tick()
        if epoch + 1 < self.params["epochs"] and not self.clock.room_for_another():
            self.model.stop_training = True


def keeps_best_weights(config: TrainConfig) -> bool:
    """The one rule for the weights a Keras member ends with, in every training loop: those of its epoch with the
    lowest validation loss, except under a schedule (cosine, one-cycle), which is meant to end where it ends (the
    rate annealed: on cifar10-dev the fine-tuned model's lowest validation loss came two epochs before its best
    accuracy, and restoring it cost 1.5 points)."""
    return config.schedule == "constant"


def _fit_over_tf_data(model: keras.Model, train: tuple, valid: tuple, config: TrainConfig, seed: int,
                      clock: Clock | None, outputs: Outputs, monitor: Monitor | None) -> dict:
    """Keras' `fit` over a tf.data pipeline of the arrays, early-stopped on `valid` by the monitor's score (else the
    validation loss), weights by keeps_best_weights."""
    import tensorflow as tf

    scoring = [_ValidationScore(valid, monitor, outputs)] if monitor is not None else []
    train, valid = (train[0], training_targets(config, outputs, train[1])), \
        (valid[0], training_targets(config, outputs, valid[1]))
    batches = (tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[0]), seed=seed)
               .batch(config.batch_size).prefetch(tf.data.AUTOTUNE))
    stopping = keras.callbacks.EarlyStopping(monitor="val_selection" if monitor else "val_loss", mode="max" if monitor
                                             else "min", patience=config.patience,
                                             restore_best_weights=keeps_best_weights(config))
    callbacks = [*scoring, stopping, *([_ClockStop(clock)] if clock is not None else [])]  # the score first
    history = model.fit(batches, validation_data=valid, epochs=config.epochs, callbacks=callbacks, verbose=0,
                        shuffle=False)  # the dataset shuffles itself (Keras warns that it ignores shuffle=True)
    return {name: [float(value) for value in values] for name, values in history.history.items()}


def compile_once(model: keras.Model, config: TrainConfig, steps_per_epoch: int, jit_compile: bool | str = "auto",
                 outputs: Outputs = Outputs()) -> None:
    """Compile for these settings, or, when the model is compiled for them already (the next fold of a member
    that reuses its model), only reset the optimizer: every new compile traces the training step again,
    seconds each time on a CPU (a third of a small CNN's time over 5 folds)."""
    settings = (dataclasses.replace(config, patience=0), steps_per_epoch, jit_compile, outputs.task)
    if getattr(model, "_headstart_compiled_for", None) == settings:
        for variable in model.optimizer.variables:  # moments and the step count (the schedule restarts)
            if not variable.path.endswith("learning_rate"):  # a constant rate is a variable too: keep it
                variable.assign(np.zeros(variable.shape, variable.dtype))
        return
    model.compile(optimizer=optimizer_for(config, learning_rate(config, steps_per_epoch)),
                  loss=training_loss(config, outputs), metrics=outputs.keras_metrics(), jit_compile=jit_compile)
    model._headstart_compiled_for = settings


def train_keras_model(model: keras.Model, train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray],
                      config: TrainConfig, seed: int = 0, clock: Clock | None = None, loop: str = "arrays",
                      jit_compile: bool | str = "auto", outputs: Outputs = Outputs(),
                      monitor: Monitor | None = None) -> dict:
    """Train, early-stopped on `valid` (`config.patience` epochs without a better `monitor` score of its rows, or
    without a lower validation loss when there is no monitor), ending with the weights `keeps_best_weights` says,
    whichever loop runs; return the history. `valid` must not be rows the model is then judged on (members pass an
    inner split: `inner_split`). On logits (`from_logits=True`: stabler than probabilities into the loss). With a
    `clock`, no epoch starts that would end after its deadline (at least one runs).

    `loop="arrays"`: one `train_on_batch` per shuffled batch of the arrays, no tf.data threads beside the model
    (faster for the CNN on 2 cores: bench/RESULTS.md, "The training loop"); `loop="fit"`: Keras' `fit` over
    tf.data (faster for a small MLP, whose steps are too short to pay `train_on_batch`'s per-call cost). Under
    several replicas (tasks/devices.py) always `fit`: it splits each batch across them, `train_on_batch` would
    give every replica the whole batch."""
    from tasks.devices import replicas

    if loop == "fit" or replicas() > 1:
        steps = max(1, -(-len(train[0]) // config.batch_size))
        compile_once(model, config, steps, jit_compile, outputs)
        return _fit_over_tf_data(model, train, valid, config, seed, clock, outputs, monitor)
    return _fit_over_arrays(model, train, valid, config, seed, clock, jit_compile, outputs, monitor)


def _fit_over_arrays(model: keras.Model, train: tuple, valid: tuple, config: TrainConfig, seed: int,
                     clock: Clock | None, jit_compile: bool | str, outputs: Outputs, monitor: Monitor | None) -> dict:
    """`train_on_batch` over shuffled whole batches of the arrays (one batch shape, one trace: a fresh shuffle each
    epoch reaches the rest), early-stopped on `valid` as `fit` is. `train` may carry a third array, each row's
    sample weight; batches are mixed (MixUp, CutMix) as the config says; with the optimiser's moving average of
    the weights, that average is validated and kept."""
    (train_x, train_y, *sample_weights), (valid_x, valid_y) = train, valid
    train_y, sample_weights = training_targets(config, outputs, train_y), (sample_weights or [None])[0]
    batch_size = min(config.batch_size, len(train_x))
    steps = len(train_x) // batch_size
    compile_once(model, config, steps, jit_compile, outputs)
    rng, mix = np.random.default_rng(seed), batch_mixer(config, seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [],
                                       **({"val_score": []} if monitor else {})}
    best_score, best_weights, waited = -np.inf, None, 0
    for epoch in range(config.epochs):
        results = [train_step(model, train_x[batch], train_y[batch], mix,
                              None if sample_weights is None else sample_weights[batch])
                   for batch in rng.permutation(len(train_x))[:steps * batch_size].reshape(steps, batch_size)]
        for name, value in zip(("loss", "accuracy"), np.mean(results, axis=0)):
            history[name].append(float(value))
        trained = averaged_weights_in(model)
        probabilities = predict_probabilities(model, valid_x, outputs=outputs)
        history["val_loss"].append(outputs.loss(valid_y, probabilities))
        history["val_accuracy"].append(outputs.accuracy(valid_y, probabilities))
        score = -history["val_loss"][-1]
        if monitor:
            history["val_score"].append(monitor(valid_y, probabilities))
            score = selection_value(history["val_score"][-1], history["val_loss"][-1])
        if score > best_score:
            best_score, waited = score, 0
            best_weights = model.get_weights() if keeps_best_weights(config) else None
        else:
            waited += 1
        if clock is not None:
            clock.tick()
        # Ask the clock only when another epoch is wanted: after the last one, "no room" would mark a member
        # that finished every epoch as cut short.
        if waited >= config.patience or epoch + 1 == config.epochs:
            break
        if clock is not None and not clock.room_for_another():
            break
        trained_weights_back(model, trained)  # training goes on from the weights it trained, not their average
    if best_weights is not None:
        model.set_weights(best_weights)
    return history


def train_step(model: keras.Model, images: np.ndarray, targets: np.ndarray, mix, sample_weight=None) -> list:
    if mix is not None:
        images, targets = mix(images, targets)
    return model.train_on_batch(images, targets, sample_weight=sample_weight)


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
        fit_rows, stop_rows = context.stopping_split(train_positions)
        fit, stop = (images[fit_rows], targets[fit_rows]), (images[stop_rows], targets[stop_rows])
        epochs = epochs_for(config, len(fit_rows))
        history = train_keras_model(model, fit, stop,
                                    dataclasses.replace(config, epochs=epochs, patience=min(config.patience, epochs)),
                                    context.seed, clock, jit_compile=context.jit_compile, outputs=outputs,
                                    monitor=context.monitor)
        if second_round is not None:
            history = second_round(model, fit, stop, test_images, clock, history)
        return predict(model, images[valid_positions]), predict(model, test_images), history

    return FoldFitter(fit_fold, description, folds)


def fit_softmax(context: MemberContext) -> FoldFitter:
    return pixel_member(context, lambda shape, classes: softmax_model(shape, classes, context.seed), "softmax on pixels")
