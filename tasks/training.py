"""The one Keras training loop every Keras member uses (two ways to run it: `train_on_batch` over arrays, or
Keras' `fit` over tf.data), with one rule for early stopping and the weights kept, and the predictions.

Early stopping watches rows the caller holds back from the fold's training part (an inner split,
tasks/members.py `inner_split`): the rows a fold predicts out of fold never choose its epochs or weights. The
training tricks of tasks/tricks.py (optimiser, EMA, label smoothing, MixUp/CutMix, sample weights) apply in both.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import keras
import numpy as np

from tasks.budget import Clock
from tasks.config import TrainConfig
from tasks.outputs import Outputs
from tasks.tricks import (
    averaged_weights_in,
    batch_mixer,
    optimizer_for,
    range_test_rate,
    trained_weights_back,
    training_loss,
    training_targets,
)


def predict_logits(model: keras.Model, inputs: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The model's outputs on arrays in memory, chunk by chunk with `predict_on_batch` (no tf.data threads)."""
    if len(inputs) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.concatenate([np.asarray(model.predict_on_batch(inputs[start:start + batch_size]))
                           for start in range(0, len(inputs), batch_size)])


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
    validation loss), weights by keeps_best_weights. As `_fit_over_arrays`: `train` may carry each row's sample
    weight, and batches of images are mixed (MixUp, CutMix) as the config says. Not with the optimiser's moving
    average (but under several replicas), which `train_keras_model` gives to the arrays loop."""
    import tensorflow as tf

    scoring = [_ValidationScore(valid, monitor, outputs)] if monitor is not None else []
    (inputs, targets, *weights), (valid_x, valid_y) = train, valid
    rows = (inputs, training_targets(config, outputs, targets), *weights)
    valid = (valid_x, training_targets(config, outputs, valid_y))
    batches = tf.data.Dataset.from_tensor_slices(rows).shuffle(len(inputs), seed=seed).batch(config.batch_size)
    mix = batch_mixer(config, seed, graph=True) if np.ndim(inputs) == 4 else None
    if mix is not None:
        batches = batches.map(lambda images, labels, *rest: (*mix(images, labels), *rest),
                              num_parallel_calls=tf.data.AUTOTUNE)
    stopping = keras.callbacks.EarlyStopping(monitor="val_selection" if monitor else "val_loss", mode="max" if monitor
                                             else "min", patience=config.patience,
                                             restore_best_weights=keeps_best_weights(config))
    callbacks = [*scoring, stopping, *([_ClockStop(clock)] if clock is not None else [])]  # the score first
    history = model.fit(batches.prefetch(tf.data.AUTOTUNE), validation_data=valid, epochs=config.epochs,
                        callbacks=callbacks, verbose=0,
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

    if config.lr_range_test:  # the rate, chosen on the training rows (a fold's held-out rows are not among them)
        rate = range_test_rate(model, train[0], train[1], config, outputs, seed, jit_compile)
        history = train_keras_model(model, train, valid, dataclasses.replace(config, learning_rate=rate,
                                                                               lr_range_test=False),
                                    seed, clock, loop, jit_compile, outputs, monitor)
        return history | {"range_test_rate": [rate]}
    # With the optimiser's moving average, Keras' `fit` validates (and early stopping keeps) the trained weights,
    # then puts the average of the weights seen after the kept epoch back in: the arrays loop validates and keeps
    # the average itself.
    if (loop == "fit" and not config.ema) or replicas() > 1:
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
    rng, mix = np.random.default_rng(seed), batch_mixer(config, seed) if np.ndim(train_x) == 4 else None
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
    """One `train_on_batch`, on the batch mixed first where `mix` (a `batch_mixer`) is given."""
    if mix is not None:
        images, targets = mix(images, targets)
    return model.train_on_batch(images, targets, sample_weight=sample_weight)


def measure_training_cost(model: keras.Model, input_shape: tuple[int, int, int], outputs: Outputs,
                          config: TrainConfig, jit_compile: bool | str = "auto", steps: int = 8,
                          started: float | None = None):
    """What a model costs on this machine (tasks/budget_plan.py): seconds to trace it (from `started`, when its
    build is to count too), then per image trained (`steps` timed batches of random pixels: the cost does not
    depend on them) and predicted (one view)."""
    import time

    from tasks.budget_plan import TrainingCost

    started, rng = started or time.perf_counter(), np.random.default_rng(0)
    images = rng.integers(0, 256, (config.batch_size * (steps + 2), *input_shape), dtype=np.uint8)
    labels = np.zeros((len(images), outputs.columns), int) if outputs.task == "multilabel" else np.zeros(len(images), int)
    targets, mix = training_targets(config, outputs, labels), batch_mixer(config, 0)
    compile_once(model, config, steps, jit_compile, outputs)
    batches = [slice(start, start + config.batch_size) for start in range(0, len(images), config.batch_size)]
    for batch in batches[:2]:  # the first steps trace the training step
        train_step(model, images[batch], targets[batch], mix)
    predict_probabilities(model, images[:256], outputs=outputs)  # and the prediction
    setup, timed = time.perf_counter() - started, time.perf_counter()
    for batch in batches[2:]:
        train_step(model, images[batch], targets[batch], mix)
    train, timed = (time.perf_counter() - timed) / (steps * config.batch_size), time.perf_counter()
    predict_probabilities(model, images, outputs=outputs)
    return TrainingCost(train, (time.perf_counter() - timed) / len(images), setup)
