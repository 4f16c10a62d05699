"""What a hub backbone costs per image on this machine: the forward pass at 224 px of the architectures behind
the presets README lists, built with random weights (the weights do not change the cost), against the shared
EfficientNet-Lite0, side by side in one process (interleaved repeats, medians).

    .venv/bin/python -m bench.hub_cost [--images 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import bench.common  # noqa: F401  (quiet TensorFlow)
from bench.common import LITE0


def architectures() -> dict:
    import keras
    import keras_hub

    vit = lambda patch, layers, width, heads, mlp: keras_hub.models.ViTBackbone(  # noqa: E731
        image_shape=(224, 224, 3), patch_size=patch, num_layers=layers, num_heads=heads, hidden_dim=width,
        mlp_dim=mlp)
    dino = lambda width, heads: keras_hub.models.DINOV2Backbone(  # noqa: E731
        patch_size=14, num_layers=12, hidden_dim=width, num_heads=heads, intermediate_dim=4 * width,
        image_shape=(224, 224, 3), position_embedding_shape=(518, 518, 3))
    return {
        "efficientnet_lite0 (shared/models, the kit's default here)": lambda: keras.saving.load_model(LITE0),
        "EfficientNetB0 (keras.applications)": lambda: keras.applications.EfficientNetB0(
            include_top=False, weights=None, pooling="avg"),
        "dinov2_small (ViT-S/14, 22M)": lambda: dino(384, 6),
        "dinov2_base (ViT-B/14, 87M)": lambda: dino(768, 12),
        "clip_vit_base_patch16 vision tower (ViT-B/16, 86M)": lambda: vit(16, 12, 768, 12, 3072),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    batch = np.random.default_rng(0).uniform(0, 255, (32, 224, 224, 3)).astype("float32")
    models = {}
    for name, build in architectures().items():
        model = build()
        models[name] = tf.function(lambda images, model=model: model(images, training=False), reduce_retracing=True)
        models[name](batch)  # traced and warmed up before any timing
    times = {name: [] for name in models}
    for _ in range(arguments.repeats):
        for name, forward in models.items():
            started = time.perf_counter()
            for _ in range(arguments.images // len(batch)):
                forward(batch)
            times[name].append(time.perf_counter() - started)
    base = statistics.median(next(iter(times.values())))
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(json.dumps({"backbone": name, "images_per_second": round(arguments.images / median, 1),
                          "ms_per_image": round(1000 * median / arguments.images, 1),
                          "cost_vs_lite0": round(median / base, 2)}), flush=True)


if __name__ == "__main__":
    main()
