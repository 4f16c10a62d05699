"""P2: extraction throughput vs (a) the bare backbone forward pass on pre-resized tensors already in
memory (the limit) and (b) a plain `model.predict` on a numpy array with resizing inside the model.

All three run warm (model built and traced once, before timing); headstart's time is the whole
`cache_feature_set` call: PNG files decoded and resized by tf.data, float16 shards, checksums, manifest.

    .venv/bin/python -m bench.p2_throughput [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import LITE0
from bench.photos_competition import photos_index

CASES = (("mobilenetv2", 96, 2000), (f"file:{LITE0}", 224, 600))


def measure(name: str, size: int, count: int, index, scratch: Path) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from tasks.backbones import backbone_spec, build_extractor
    from tasks.features import (
        Extractor,
        FeatureConfig,
        cache_feature_set,
        inference_function,
    )
    from tasks.index import TRAIN

    spec = backbone_spec(name)
    weights = LITE0 if spec.builder == "file" else None
    keras.utils.set_random_seed(0)
    extractor = Extractor(spec, weights, size)
    forward = inference_function(extractor.model)  # the bare model, on pre-resized float batches
    subset = index.split(TRAIN).iloc[:count]
    paths = [str(index.raw_dir / image) for image in subset["image"]]
    pixels = np.stack([np.asarray(tf.io.decode_png(tf.io.read_file(p), channels=3)) for p in paths])
    resized = [tf.image.resize(tf.cast(pixels[i:i + 64], tf.float32), (size, size)) for i in range(0, count, 64)]
    plain = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Resizing(size, size),
                              build_extractor(spec, weights, size)])
    # Trace and warm up all three outside the timings (full and last partial batch).
    forward(resized[0]), forward(resized[-1])
    extractor.forward("identity")(pixels[:64]), extractor.forward("identity")(pixels[-(count % 64 or 64):])
    plain.predict(pixels[:64], verbose=0)

    def limit():
        for batch in resized:
            forward(batch).numpy()

    def headstart():
        # The real extraction path: files decoded and resized by tf.data, float16 shards, checksums.
        directory = scratch / "set"
        shutil.rmtree(directory, ignore_errors=True)
        config = FeatureConfig(image_size=size, batch_size=64, shard_size=count)
        sliced = type(index)(index.directory, subset.assign(split=TRAIN), {**index.metadata, "num_train": count,
                             "num_test": 0}, None, None)
        cache_feature_set(sliced, extractor, "identity", directory, config)

    def predict():
        plain.predict(pixels, batch_size=64, verbose=0)

    timings = {"limit": [], "headstart": [], "predict": []}
    for _ in range(args.repeats):
        for label, run in (("limit", limit), ("headstart", headstart), ("predict", predict)):
            started = time.perf_counter()
            run()
            timings[label].append(time.perf_counter() - started)
    medians = {label: statistics.median(values) for label, values in timings.items()}
    return {"backbone": spec.label, "size": size, "images": count,
            **{f"{label}_images_per_s": count / seconds for label, seconds in medians.items()},
            "vs_limit": medians["limit"] / medians["headstart"],
            "vs_predict": medians["predict"] / medians["headstart"],
            "repeats": args.repeats,
            "seconds": {label: [round(value, 3) for value in values] for label, values in timings.items()}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="p2-")))
    args = parser.parse_args()
    _, index = photos_index(args.data_dir)
    print(json.dumps([measure(case, size, count, index, args.data_dir) for case, size, count in CASES], indent=2))
