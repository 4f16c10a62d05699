"""Heads on cached backbone features: logistic regression and a small MLP.

Training uses every view's features of the fold's training images (the flipped copy is free
augmentation); predictions average the probabilities over views (test-time augmentation).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from tasks.errors import ConfigError
from tasks.features import load_features
from tasks.members import (
    FoldFitter,
    MemberContext,
    class_probabilities,
    for_task,
    glorot,
    logits_layer,
    seed_stream,
)
from tasks.training import predict_probabilities, train_keras_model


def _views(context: MemberContext) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if not context.feature_dirs:
        raise ConfigError("a head member needs a backbone: name it as KIND@BACKBONE, e.g. logistic@efficientnetb0")
    loaded = [load_features(directory) for directory in context.feature_dirs]
    return [train for train, _ in loaded], [test for _, test in loaded]


def _mean_over_views(predict, views: list[np.ndarray]) -> np.ndarray:
    return np.mean([predict(features) for features in views], axis=0)


def fit_logistic(context: MemberContext) -> FoldFitter:
    """Logistic regression (scikit-learn, L2) on standardised features: multinomial, or one per tag."""
    train_views, test_views = _views(context)
    targets, outputs = context.targets, context.outputs

    def fit_fold(train_positions: np.ndarray, valid_positions: np.ndarray, clock=None):
        features = np.concatenate([view[train_positions] for view in train_views])
        scaler = StandardScaler().fit(features)
        model = for_task(LogisticRegression(C=context.train.logistic_c, max_iter=2000), outputs)
        model.fit(scaler.transform(features), np.concatenate([targets[train_positions]] * len(train_views)))
        predict = lambda x: class_probabilities(model, scaler.transform(x), context.num_classes)
        return (_mean_over_views(predict, [view[valid_positions] for view in train_views]),
                _mean_over_views(predict, test_views), {})

    return FoldFitter(fit_fold, "logistic head")


def mlp_model(feature_width: int, outputs: int, units: int, seed: int = 0) -> keras.Model:
    seeds = seed_stream(seed)
    inputs = keras.Input(shape=(feature_width,), name="features")
    hidden = layers.Dense(units, activation="relu", kernel_initializer=glorot(seeds))(
        layers.Dropout(0.2, seed=next(seeds))(inputs))
    return keras.Model(inputs, logits_layer(outputs, seeds)(layers.Dropout(0.5, seed=next(seeds))(hidden)),
                       name="mlp_head")


def fit_mlp(context: MemberContext) -> FoldFitter:
    """A one-hidden-layer MLP on standardised features, early-stopped on an inner split of the fold's training part
    (never on the rows it then predicts out of fold)."""
    train_views, test_views = _views(context)
    targets, config, outputs = context.targets, context.train, context.outputs

    def fit_fold(train_positions: np.ndarray, valid_positions: np.ndarray, clock=None):
        keras.utils.set_random_seed(context.seed)
        fit_rows, stop_rows = context.stopping_split(train_positions, valid_positions)
        features = np.concatenate([view[fit_rows] for view in train_views])
        scaler = StandardScaler().fit(features)
        scale = lambda x: scaler.transform(x).astype(np.float32)
        train = (scale(features), np.concatenate([targets[fit_rows]] * len(train_views)))
        stop = (scale(train_views[0][stop_rows]), targets[stop_rows])
        model = mlp_model(features.shape[1], outputs.units, config.mlp_units, context.seed)
        history = train_keras_model(model, train, stop, config, context.seed, clock, loop="fit",
                                    jit_compile=context.jit_compile, outputs=outputs, monitor=context.monitor)
        predict = lambda x: predict_probabilities(model, scale(x), outputs=outputs)
        return (_mean_over_views(predict, [view[valid_positions] for view in train_views]),
                _mean_over_views(predict, test_views), history)

    return FoldFitter(fit_fold, "mlp head")
