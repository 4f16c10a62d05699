"""P4: peak memory of feature extraction at 5,000 vs 50,000 images (32x32 PNG files, cifar-10 layout):
memory must stay flat as the data grows (shards are written one at a time, images streamed).

    .venv/bin/python -m bench.p4_memory
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

MEASURE = """
import json, sys
from pathlib import Path
from bench.common import peak_rss_mb
from tasks.backbones import backbone_spec
from tasks.features import Extractor, FeatureConfig, cache_feature_set
from tasks.index import read_index
index = read_index(Path(sys.argv[1]))
import keras
keras.utils.set_random_seed(0)
before = peak_rss_mb()
cache_feature_set(index, Extractor(backbone_spec("mobilenetv3small"), None, 32), "identity", Path(sys.argv[2]),
                  FeatureConfig(batch_size=64))
print(json.dumps({"peak_rss_mb": peak_rss_mb(), "rss_before_mb": before}))
"""


def write_images(root: Path, count: int) -> Path:
    """A cifar-10-layout folder of `count` training and count/10 test images (random pixels)."""
    from tasks.competitions import CIFAR_10

    rng = np.random.default_rng(0)
    names = np.asarray(CIFAR_10.class_names)
    for split, number in (("train", count), ("test", count // 10)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for image_id in range(1, number + 1):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / split / f"{image_id}.png")
    pd.DataFrame({"id": range(1, count + 1), "label": names[np.arange(count) % 10]}).to_csv(
        root / "trainLabels.csv", index=False)
    pd.DataFrame({"id": range(1, count // 10 + 1), "label": "cat"}).to_csv(root / "sampleSubmission.csv", index=False)
    return root


def measure(scratch: Path, count: int) -> dict:
    from tasks.competitions import CIFAR_10
    from tasks.index import ensure_index

    raw = write_images(scratch / f"raw-{count}", count)
    index_dir = ensure_index(CIFAR_10, raw, scratch / f"index-{count}", folds=5, seed=0)
    finished = subprocess.run([sys.executable, "-c", MEASURE, str(index_dir), str(scratch / f"features-{count}")],
                              capture_output=True, text=True, check=True)
    return {"images": count + count // 10, **json.loads(finished.stdout.strip().splitlines()[-1])}


if __name__ == "__main__":
    scratch = Path(tempfile.mkdtemp(prefix="p4-"))
    small, large = measure(scratch, 5_000), measure(scratch, 50_000)
    print(json.dumps({"small": small, "large": large,
                      "growth": large["peak_rss_mb"] / small["peak_rss_mb"] - 1}, indent=2))
