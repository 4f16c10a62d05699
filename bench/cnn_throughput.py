"""What a CNN costs per training image on this machine: images/s of `train_on_batch` (the kit's loop) and of
Keras' `fit`, by architecture, batch size and XLA, on 28x28 grey images (random pixels: the cost does not depend
on them), augmentation inside the model as the kit trains it; and prediction's images/s.

    .venv/bin/python -m bench.cnn_throughput [--architectures small,deep] [--batches 64,128] [--jit off,on]

Each setting is traced first (a few steps), then timed over `--steps` steps; repeats interleaved, medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import bench.common  # noqa: F401  (quiet TensorFlow)


def build(architecture: str, seed: int = 0, augmentation: float = 1.0, filters: int = 32):
    from tasks.cnn import ARCHITECTURES
    from tasks.config import TrainConfig

    return ARCHITECTURES[architecture]((28, 28, 1), 10, filters, seed=seed,
                                       config=TrainConfig(augmentation=augmentation))


def compiled(architecture: str, jit: bool, augmentation: float = 1.0, filters: int = 32):
    import keras

    model = build(architecture, augmentation=augmentation, filters=filters)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  jit_compile=jit)
    return model


def time_steps(model, images, labels, batch: int, steps: int) -> float:
    """Images/s of `train_on_batch` over `steps` batches (after two untimed ones: the trace)."""
    for start in (0, batch):
        model.train_on_batch(images[start:start + batch], labels[start:start + batch])
    started = time.perf_counter()
    for step in range(steps):
        start = (step * batch) % (len(images) - batch)
        model.train_on_batch(images[start:start + batch], labels[start:start + batch])
    return steps * batch / (time.perf_counter() - started)


def time_fit(model, images, labels, batch: int, steps: int) -> float:
    """Images/s of Keras' `fit` over tf.data for `steps` batches (after one untimed epoch of two: the trace)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch, drop_remainder=True)
    model.fit(data.take(2), epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(data.take(steps).prefetch(tf.data.AUTOTUNE), epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - started)


def time_predict(model, images) -> float:
    from tasks.members import predict_logits

    predict_logits(model, images[:512])
    started = time.perf_counter()
    predict_logits(model, images)
    return len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--architectures", default="small,deep")
    parser.add_argument("--batches", default="64,128")
    parser.add_argument("--jit", default="off,on")
    parser.add_argument("--loops", default="arrays,fit")
    parser.add_argument("--augmentation", default="1", help="augmentation strengths (0: none; cf. TrainConfig)")
    parser.add_argument("--filters", default="32", help="the first block's filters (cnn_filters)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8192, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, len(images))
    settings = [(a, int(b), j == "on", loop, float(strength), int(f)) for a in arguments.architectures.split(",")
                for b in arguments.batches.split(",") for j in arguments.jit.split(",")
                for loop in arguments.loops.split(",") for strength in arguments.augmentation.split(",")
                for f in arguments.filters.split(",")]
    models = {setting: compiled(setting[0], setting[2], setting[4], setting[5]) for setting in settings}
    rates = {setting: [] for setting in settings}
    for _ in range(arguments.repeats):
        for setting, model in models.items():
            timer = time_steps if setting[3] == "arrays" else time_fit
            rates[setting].append(timer(model, images, labels, setting[1], arguments.steps))
    for (architecture, batch, jit, loop, strength, filters), values in rates.items():
        model = models[(architecture, batch, jit, loop, strength, filters)]
        print(json.dumps({"architecture": architecture, "batch": batch, "jit": jit, "loop": loop,
                          "augmentation": strength, "filters": filters,
                          "parameters": model.count_params(), "train_images_per_s": round(statistics.median(values)),
                          "repeats": [round(v) for v in values],
                          "predict_images_per_s": round(time_predict(model, images)),
                          "threads": tf.config.threading.get_intra_op_parallelism_threads()}), flush=True)


if __name__ == "__main__":
    main()
