"""A standalone probe of fine-tuning EfficientNet-Lite0 on cifar10-dev (the experiment that sized the
finetune member): 4,000 training images of the first 5,000, validated on the other 1,000, tested on the
2,000 test images; a Dense head warmed on frozen features, then the whole backbone (BatchNorm frozen, in
inference mode) trained with Adam on a cosine schedule, mirror + shift augmentation, mirror TTA.

    .venv/bin/python -m bench.finetune_probe SIZE EPOCHS all LEARNING_RATE    (e.g. 96 5 all 3e-4)

Needs the photos unpacked by bench.cifar_recipes (its --scratch folder, default /tmp/cifar-recipes).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.cifar_recipes import CIFAR, subset_zip

SCRATCH = Path(tempfile.gettempdir()) / "cifar-recipes"


def load(count: int):
    import pandas as pd
    from PIL import Image

    subset_zip(10, SCRATCH)
    raw = SCRATCH / "raw"
    labels = pd.read_csv(raw / "trainLabels.csv")
    classes = sorted(labels["label"].unique())
    read = lambda folder, i: np.asarray(Image.open(raw / folder / f"{i}.png").convert("RGB"))
    train = np.stack([read("train", i) for i in labels["id"][:count]])
    solution = pd.read_csv(CIFAR / "solution.csv")
    test = np.stack([read("test", i) for i in solution["id"]])
    return (train, labels["label"].map(classes.index).to_numpy()[:count], test,
            solution["label"].map(classes.index).to_numpy())


def main() -> None:
    import keras
    import tensorflow as tf
    from keras import layers

    from bench.common import LITE0

    size, epochs, unfreeze, rate = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    x, y, xt, yt = load(5000)
    xtr, ytr, xva, yva = x[:4000], y[:4000], x[4000:], y[4000:]
    base = keras.saving.load_model(LITE0)
    started = time.perf_counter()
    inputs, resize = keras.Input((32, 32, 3)), layers.Resizing(size, size)
    base.trainable = False
    features = keras.Model(inputs, base(resize(inputs), training=False)).predict(xtr, batch_size=128, verbose=0)
    head = layers.Dense(10, dtype="float32")
    head_inputs = keras.Input((1280,))
    warm = keras.Model(head_inputs, head(layers.Dropout(0.2)(head_inputs)))
    warm.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    warm.fit(features, ytr, epochs=30, batch_size=128, verbose=0)
    print(f"warm-up {time.perf_counter() - started:.0f}s", flush=True)
    base.trainable = True
    names = [layer.name for layer in base.layers]
    start = names.index(unfreeze) if unfreeze != "all" else 0
    for position, layer in enumerate(base.layers):
        layer.trainable = position >= start and not isinstance(layer, layers.BatchNormalization)
    augment = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomTranslation(0.125, 0.125, fill_mode="reflect")])
    model = keras.Model(inputs, head(layers.Dropout(0.2)(base(resize(augment(inputs)), training=False))))
    batch = 32
    schedule = keras.optimizers.schedules.CosineDecay(rate, epochs * (4000 // batch))
    model.compile(keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = tf.data.Dataset.from_tensor_slices((xtr, ytr)).shuffle(4000, seed=0).batch(batch, drop_remainder=True)

    def tta(images):
        softmax = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)
        return (softmax(model.predict(images, batch_size=128, verbose=0))
                + softmax(model.predict(images[:, :, ::-1], batch_size=128, verbose=0))) / 2

    for epoch in range(epochs):
        epoch_started = time.perf_counter()
        model.fit(data, epochs=1, verbose=0)
        valid = (tta(xva).argmax(1) == yva).mean()
        print(f"epoch {epoch} {time.perf_counter() - epoch_started:.0f}s val_tta {valid:.4f} "
              f"total {time.perf_counter() - started:.0f}s", flush=True)
    test = (tta(xt).argmax(1) == yt).mean()
    print(f"RESULT size {size} epochs {epochs} unfreeze {unfreeze} lr {rate}: val {valid:.4f} test {test:.4f} "
          f"total {time.perf_counter() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
