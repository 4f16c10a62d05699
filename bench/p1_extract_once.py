"""P1: extract features once, then 10 head epochs, vs the workshop's frozen base inside the model for
10 epochs over the images. Same 5,000 training images, same head (a softmax layer), same pipeline.

    .venv/bin/python -m bench.p1_extract_once [--size 96] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.common import LITE0, timed
from bench.photos_competition import photos_index


def softmax_head(width: int, num_classes: int):
    import keras

    inputs = keras.Input(shape=(width,))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(inputs))


def compile_head(model):
    import keras

    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="p1-")))
    args = parser.parse_args()

    import keras
    import pandas as pd

    from tasks.backbones import backbone_spec, build_extractor
    from tasks.features import (
        Extractor,
        FeatureConfig,
        cache_feature_set,
        load_features,
    )
    from tasks.index import TEST, TRAIN
    from tasks.paths import DataPaths
    from tasks.pipelines import image_batches, split_source

    paths = DataPaths(args.data_dir)
    backend, index = photos_index(args.data_dir)
    name = backend.name
    labels = index.split(TRAIN)["label"].to_numpy()
    solution = pd.read_csv(backend.root / "solution.csv", dtype=str).set_index("id")
    truth = solution.loc[index.split(TEST)["id"], "label"].map(backend.spec.class_names.index).to_numpy()
    spec, results = backbone_spec(f"file:{LITE0}"), {}

    keras.utils.set_random_seed(0)
    with timed(results, "headstart_seconds"):
        cache_feature_set(index, Extractor(spec, LITE0, args.size), "identity", paths.features(name) / "p1",
                          FeatureConfig(image_size=args.size, batch_size=64))
        train_features, test_features = load_features(paths.features(name) / "p1")
        head = compile_head(softmax_head(train_features.shape[1], backend.spec.num_classes))
        head.fit(train_features, labels, batch_size=64, epochs=args.epochs, verbose=0)
        headstart_predictions = head.predict(test_features, verbose=0)
    results["headstart_accuracy"] = float((headstart_predictions.argmax(1) == truth).mean())

    keras.utils.set_random_seed(0)
    with timed(results, "workshop_seconds"):
        extractor = build_extractor(spec, LITE0, args.size)
        inputs = keras.Input(shape=(args.size, args.size, 3))
        features = extractor(inputs, training=False)
        model = compile_head(keras.Model(inputs, softmax_head(features.shape[-1], backend.spec.num_classes)(features)))
        train = image_batches(split_source(index, TRAIN), 3, args.size, 64, labels=labels, shuffle_seed=0,
                              same_size=index.same_size)
        model.fit(train, epochs=args.epochs, verbose=0)
        workshop_predictions = model.predict(image_batches(split_source(index, TEST), 3, args.size, 64,
                                                           same_size=index.same_size),
                                             verbose=0)
    results["workshop_accuracy"] = float((workshop_predictions.argmax(1) == truth).mean())
    results["speedup"] = results["workshop_seconds"] / results["headstart_seconds"]
    results.update(images=len(labels), test_images=len(truth), size=args.size, epochs=args.epochs)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
