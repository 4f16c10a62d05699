"""The fine-tuning member, `finetune@BACKBONE`: a pretrained backbone trained further on the competition.

Per fold: (1) warm the head up on the backbone's cached features at the fine-tuning size (cheap: the
frozen backbone ran once, in the feature cache): a Dense layer trained by Adam, or a logistic regression
(`finetune_head`); (2) unfreeze the top `finetune_fraction` of the
backbone's layers, BatchNorm excepted, and train backbone and head together with a low learning rate
decayed by a cosine schedule, recompiled after the change; augmentation (mirror, shift) sits inside the
model; (3) predict as the mean over views (identity and mirror for photos: test-time augmentation).

Why BatchNorm stays frozen and in inference mode: fine-tuning batches are small and from another
distribution; letting BatchNorm update its ImageNet statistics from them destroys what the backbone
learnt (keras-io's transfer-learning guide). The backbone is called with `training=False` and its
BatchNorm layers are not trainable.

On a CPU, k full fine-tunes are too slow, so by default only the first `finetune_folds` folds are
fine-tuned: their held-out rows get out-of-fold predictions, the other rows none (NaN), and the test
prediction is the mean of the fold models trained. The blend is then fitted and scored on the rows that
every member predicted (tasks/ensemble.py), and its nested estimate splits those rows in two.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np
from keras import layers
from sklearn.linear_model import LogisticRegression

from tasks.backbones import backbone_spec, build_extractor, weighted_layers
from tasks.config import TrainConfig
from tasks.devices import extraction_jit
from tasks.errors import ConfigError
from tasks.index import TEST, TRAIN
from tasks.members import (
    FoldFitter,
    MemberContext,
    load_images,
    logits_layer,
    seed_stream,
)
from tasks.outputs import Outputs
from tasks.training import predict_probabilities, train_keras_model


def unfreeze_top(extractor: keras.Model, fraction: float) -> int:
    """Make the top `fraction` of the extractor's weighted layers trainable, BatchNorm never; return how many."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"finetune_fraction must be in (0, 1], got {fraction}")
    extractor.trainable = True  # sets every nested layer; the loop below decides each one
    weighted = weighted_layers(extractor)
    first = len(weighted) - max(1, round(fraction * len(weighted)))
    for position, layer in enumerate(weighted):
        layer.trainable = position >= first and not isinstance(layer, layers.BatchNormalization)
    return sum(layer.trainable for layer in weighted)


def augmentation(flip: bool, seed: int = 0) -> keras.Sequential:
    """Shifts by up to an eighth (reflected at the border) and, for photos, mirror images; in training only."""
    seeds = seed_stream(seed)
    steps = [layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", seed=next(seeds))]
    if flip:
        steps.insert(0, layers.RandomFlip("horizontal", seed=next(seeds)))
    return keras.Sequential(steps, name="augmentation")


def head_model(features: np.ndarray, units: int, seed: int = 0) -> keras.Sequential:
    """Standardise the features (by the training features' mean and variance, fixed), dropout, logits."""
    mean, variance, seeds = features.mean(axis=0), features.var(axis=0), seed_stream(seed)
    return keras.Sequential([keras.Input(shape=(features.shape[1],)),
                             layers.Normalization(mean=mean, variance=variance), layers.Dropout(0.2, seed=next(seeds)),
                             logits_layer(units, seeds)], name="head")


def finetune_model(extractor: keras.Model, head: keras.Model, input_shape: tuple[int, int, int], size: int,
                   flip: bool, seed: int = 0) -> keras.Model:
    """Images (0..255, any size) -> augmentation -> resize to `size` -> backbone (inference mode) -> head."""
    inputs = keras.Input(shape=input_shape, name="pixels")
    images = layers.Resizing(size, size, name="resize")(augmentation(flip, seed)(inputs))
    features = extractor(images, training=False)  # BatchNorm on its running statistics, whatever is trainable
    return keras.Model(inputs, head(features), name="finetune")


def warm_head(features: np.ndarray, targets: np.ndarray, outputs: Outputs, inverse_l2: float,
              seed: int = 0) -> keras.Sequential:
    """The head fitted on frozen features first (fine-tuning from a random head would first undo the backbone):
    a logistic regression on the standardised features (multinomial; one for a binary task's single output; one per
    tag), solved to convergence whatever the data's size, then copied into the logits layer. Classes absent from
    these rows get a bias far below the others."""
    head = head_model(features, outputs.units, seed)
    scaled = np.asarray(head.layers[0](features))
    kernel, bias = np.zeros((features.shape[1], outputs.units), np.float32), np.zeros(outputs.units, np.float32)
    if outputs.sigmoid:  # one binary regression per output: the positive class, or each tag
        columns = np.asarray(targets).reshape(len(targets), -1)
        for output in range(outputs.units):
            kernel[:, output], bias[output] = _binary_logits(scaled, columns[:, output], inverse_l2)
    else:
        solved = LogisticRegression(C=inverse_l2, max_iter=2000).fit(scaled, targets)
        bias[:] = solved.intercept_.min() - 10.0
        if len(solved.classes_) == 2:  # sklearn keeps one row of coefficients for two classes
            kernel[:, solved.classes_[1]], bias[solved.classes_] = solved.coef_[0], (0.0, solved.intercept_[0])
        else:
            kernel[:, solved.classes_], bias[solved.classes_] = solved.coef_.T, solved.intercept_
    head.get_layer("logits").set_weights([kernel, bias])
    return head


# The "adam" warm-up head's training over the cached features (seconds: features are small): WARM_EPOCHS, and at
# least WARM_STEPS steps (as many as 30 epochs of 4,000 rows: on 100 rows 30 epochs are 30 steps, far from fitted).
WARM_EPOCHS = 30
WARM_STEPS = 900


def trained_head(features: np.ndarray, targets: np.ndarray, outputs: Outputs, seed: int = 0) -> keras.Sequential:
    """The "adam" warm-up head: dropout and logits on the raw features, trained WARM_EPOCHS (at least WARM_STEPS
    steps) by Adam (rate 1e-3, batch 128). On cifar10-dev it stops short of a converged logistic regression (about 96 % of its training rows right, not
    all), and the fine-tuning after it goes further (bench/RESULTS.md, "Issue 21: colour photos in 25 minutes")."""
    seeds = seed_stream(seed)
    head = keras.Sequential([keras.Input(shape=(features.shape[1],)), layers.Dropout(0.2, seed=next(seeds)),
                             logits_layer(outputs.units, seeds)], name="head")
    head.compile(keras.optimizers.Adam(1e-3), outputs.keras_loss())
    repeats = max(1, math.ceil(WARM_STEPS / WARM_EPOCHS * 128 / max(1, len(features))))  # few rows: each epoch
    head.fit(np.tile(np.asarray(features, np.float32), (repeats, 1)),       # sees them several times over
             np.concatenate([outputs.fit_targets(targets)] * repeats), epochs=WARM_EPOCHS, batch_size=128,
             shuffle=True, verbose=0)
    return head


def _binary_logits(scaled: np.ndarray, positive: np.ndarray, inverse_l2: float) -> tuple[np.ndarray, float]:
    """A binary logistic regression's weights and bias; a column with one value only: its log-odds, clipped."""
    if len(np.unique(positive)) < 2:
        rate = np.clip(positive.mean(), 1e-3, 1 - 1e-3)
        return np.zeros(scaled.shape[1], np.float32), float(np.log(rate / (1 - rate)))
    solved = LogisticRegression(C=inverse_l2, max_iter=2000).fit(scaled, positive)
    return solved.coef_[0], float(solved.intercept_[0])


def predict_views(model: keras.Model, images: np.ndarray, flip: bool, outputs: Outputs = Outputs()) -> np.ndarray:
    """Probabilities averaged over the identity and (for photos) the mirrored images."""
    views = [images, images[:, :, ::-1]] if flip else [images]
    return np.mean([predict_probabilities(model, view, batch_size=128, outputs=outputs) for view in views], axis=0)


def tuning_config(config: TrainConfig) -> TrainConfig:
    """The training settings of fine-tuning: the finetune_* fields in place of the Keras members' own, on a cosine
    schedule run to its end (no early stopping: the fold's held-out rows are only watched)."""
    return dataclasses.replace(config, epochs=config.finetune_epochs, learning_rate=config.finetune_learning_rate,
                               batch_size=config.finetune_batch_size, schedule="cosine", patience=config.finetune_epochs)


def measure_cost(backbone: str, weights: Path | None, size: int, input_shape: tuple[int, int, int], outputs: Outputs,
                 config: TrainConfig, jit_compile: bool | str = "auto", steps: int = 8):
    """What fine-tuning this backbone costs on this machine, per image at `size` (tasks/budget_plan.py): built,
    unfrozen and traced as a fold does, with an untrained head."""
    import time

    from tasks.training import measure_training_cost

    started, spec = time.perf_counter(), backbone_spec(backbone)
    extractor = build_extractor(spec, weights, size)
    unfreeze_top(extractor, config.finetune_fraction)
    head = keras.Sequential([keras.Input(shape=(extractor.output_shape[-1],)), logits_layer(outputs.units,
                                                                                            seed_stream(0))])
    model = finetune_model(extractor, head, input_shape, size, input_shape[-1] == 3)
    return measure_training_cost(model, input_shape, outputs, tuning_config(config), jit_compile, steps, started)


def fit_finetune(context: MemberContext) -> FoldFitter:
    """Fine-tune the member's backbone on the first `finetune_folds` folds (see the module's docstring)."""
    from tasks.features import Extractor, cache_feature_set, feature_directory, load_features

    if context.backbone is None or context.features_root is None:
        raise ConfigError("a finetune member needs a backbone: name it as finetune@BACKBONE")
    index, config, targets, outputs = context.index, context.train, context.targets, context.outputs
    spec, size = backbone_spec(context.backbone), config.finetune_size
    weights = Path(context.weights) if context.weights else None
    feature_config = dataclasses.replace(context.features, image_size=size)  # the run's shards: its cache
    policy = keras.config.dtype_policy().name
    directory = feature_directory(context.features_root, index, spec, weights, "identity", feature_config, policy)
    cache_feature_set(index, Extractor(spec, weights, size, extraction_jit(context.jit_compile)), "identity",
                      directory, feature_config)
    features, _ = load_features(directory)
    native = max(index.metadata["image_height"], index.metadata["image_width"])
    load_size = size if native > size or not index.same_size else None
    images, test_images = (load_images(index, split, 3, load_size) for split in (TRAIN, TEST))
    flip = index.metadata["channels"] == 3
    tuning = tuning_config(config)

    def fit_fold(train_positions: np.ndarray, valid_positions: np.ndarray, clock=None):
        keras.utils.set_random_seed(context.seed)
        valid = (images[valid_positions], targets[valid_positions])
        if config.finetune_head == "adam":
            head = trained_head(features[train_positions], targets[train_positions], outputs, context.seed)
        else:
            head = warm_head(features[train_positions], targets[train_positions], outputs, config.finetune_head_c,
                             context.seed)
        extractor = build_extractor(spec, weights, size)
        unfreeze_top(extractor, config.finetune_fraction)
        model = finetune_model(extractor, head, images.shape[1:], size, flip, context.seed)
        # No early stopping and no weights chosen (a cosine schedule, patience = epochs, the last weights kept:
        # keeps_best_weights): the held-out rows are only watched for the training curves, so its out-of-fold
        # predictions stay honest without giving up training rows to an inner split.
        history = train_keras_model(model, (images[train_positions], targets[train_positions]), valid, tuning,
                                    context.seed, clock, jit_compile=context.jit_compile, outputs=outputs)
        return (predict_views(model, valid[0], flip, outputs), predict_views(model, test_images, flip, outputs),
                history)

    return FoldFitter(fit_fold, f"finetune {spec.label} at {size} px", config.finetune_folds)
