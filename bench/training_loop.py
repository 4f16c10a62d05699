"""The training loop: Keras `fit` over a tf.data pipeline (headstart's loop until issue 10) against one
`train_on_batch` per batch of arrays already in memory (`tasks.members.train_keras_model`), for the CNN
on digit images and the MLP head on 1280-d features; side by side, interleaved, in one process.

    .venv/bin/python -m bench.training_loop [--repeats 3] [--epochs 2]

Both loops run the same model, optimiser, batch size and number of epochs, warm (traced once before
timing); each timing covers the epochs and the per-epoch validation pass. Prints images/s and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import bench.common  # noqa: F401  (quiet TensorFlow)


def digit_images(count: int):
    """sklearn's 8x8 digits scaled to 0..255 and enlarged to 28x28, as the built-in competition has them."""
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    chosen = rng.integers(0, len(digits.target), count)
    small = (digits.images[chosen] * (255 / 16)).astype("float32")[..., None]
    return np.round(tf.image.resize(small, (28, 28)).numpy()).clip(0, 255).astype("uint8"), digits.target[chosen]


def fit_over_tf_data(build, images, labels, config, epochs: int) -> float:
    """The old loop (now `train_keras_model(..., loop="fit")`'s, kept for the MLP head): tf.data (shuffle,
    batch, cast, prefetch) into `model.fit` with validation."""
    import keras
    import tensorflow as tf

    split = int(0.8 * len(images))
    to_float = lambda x, y: (tf.cast(x, tf.float32), y)
    train = (tf.data.Dataset.from_tensor_slices((images[:split], labels[:split])).shuffle(4096, seed=0)
             .batch(config.batch_size).map(to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    valid = (tf.data.Dataset.from_tensor_slices((images[split:], labels[split:])).batch(config.batch_size)
             .map(to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(train.take(2), validation_data=valid.take(1), epochs=1, verbose=0)  # trace before timing
    started = time.perf_counter()
    model.fit(train, validation_data=valid, epochs=epochs, verbose=0)
    return time.perf_counter() - started


def arrays_in_memory(build, images, labels, config, epochs: int) -> float:
    """headstart's loop: `train_keras_model` on arrays (patience above the epochs: no early stop)."""
    import dataclasses

    from tasks.members import train_keras_model

    split = int(0.8 * len(images))
    train, valid = (images[:split], labels[:split]), (images[split:], labels[split:])
    model = build()
    warm = dataclasses.replace(config, epochs=1)
    train_keras_model(model, (train[0][:2 * config.batch_size], train[1][:2 * config.batch_size]),
                      (valid[0][:64], valid[1][:64]), warm)  # trace before timing
    started = time.perf_counter()
    train_keras_model(model, train, valid, dataclasses.replace(config, epochs=epochs, patience=epochs + 1))
    return time.perf_counter() - started


def folds_rebuilt_or_reused(images, labels, folds: int = 5) -> dict:
    """One epoch per fold of the 16-filter CNN, each fold on a new model (built and compiled: traced again)
    against one model for all folds (weights and optimizer reset: traced once), as pixel members now do."""
    import dataclasses

    from tasks.cnn import cnn_model
    from tasks.config import TrainConfig
    from tasks.members import train_keras_model

    config, times = dataclasses.replace(TrainConfig(), epochs=1), {}
    split = int(0.8 * len(images))
    train, valid = (images[:split], labels[:split]), (images[split:], labels[split:])
    started = time.perf_counter()
    for _ in range(folds):
        train_keras_model(cnn_model(images.shape[1:], 10, 16), train, valid, config)
    times["a new model per fold"] = round(time.perf_counter() - started, 2)
    started, model = time.perf_counter(), cnn_model(images.shape[1:], 10, 16)
    initial = model.get_weights()
    for _ in range(folds):
        model.set_weights(initial)
        train_keras_model(model, train, valid, config)
    times["one model, reset per fold"] = round(time.perf_counter() - started, 2)
    return {"folds": folds, "seconds": times}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--retrace", action="store_true", help="only: folds on new models vs one reused model")
    arguments = parser.parse_args()
    if arguments.retrace:
        print(json.dumps(folds_rebuilt_or_reused(*digit_images(1250))), flush=True)
        return

    import numpy as np

    from tasks.cnn import cnn_model
    from tasks.config import TrainConfig
    from tasks.heads import mlp_model

    config = TrainConfig()
    images, labels = digit_images(arguments.images)
    features = np.random.default_rng(1).normal(size=(arguments.images * 4, 1280)).astype("float32")
    feature_labels = np.random.default_rng(2).integers(0, 10, len(features))
    cases = {"cnn (28x28x1 digits)": (lambda: cnn_model((28, 28, 1), 10), images, labels),
             "mlp head (1280-d features)": (lambda: mlp_model(1280, 10, config.mlp_units), features, feature_labels)}
    rows = []
    for name, (build, x, y) in cases.items():
        times = {"fit over tf.data": [], "train_on_batch on arrays": []}
        for _ in range(arguments.repeats):
            times["fit over tf.data"].append(fit_over_tf_data(build, x, y, config, arguments.epochs))
            times["train_on_batch on arrays"].append(arrays_in_memory(build, x, y, config, arguments.epochs))
        trained = int(0.8 * len(x)) * arguments.epochs
        rates = {loop: trained / statistics.median(seconds) for loop, seconds in times.items()}
        rows.append({"model": name, "images_per_epoch": int(0.8 * len(x)), **{k: round(v, 1) for k, v in rates.items()},
                     "ratio": round(rates["train_on_batch on arrays"] / rates["fit over tf.data"], 2),
                     "seconds": {k: [round(s, 2) for s in v] for k, v in times.items()}})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
