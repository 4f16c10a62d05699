"""Shared pieces of the benchmarks: real data at hand offline, timing, and the shared backbone."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LITE0 = ROOT.parent / "shared" / "models" / "efficientnet_lite0_imagenet_features.keras"
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "ihc.png",
          "retina.jpg", "motorcycle_left.png")


@contextmanager
def timed(results: dict, name: str):
    started = time.perf_counter()
    yield
    results[name] = time.perf_counter() - started


def photo_patches(per_class: int, region: str, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real colour patches cut from scikit-image's bundled photos; the class is the photo.

    Training patches come from the left 65 % of each photo, test patches from the right 35 %, so no
    test pixel was ever seen in training (overlapping patches would otherwise leak).
    """
    import skimage
    from PIL import Image

    folder = Path(skimage.__file__).parent / "data"
    rng = np.random.default_rng(seed + (region == "test"))
    images, labels = [], []
    for label, name in enumerate(PHOTOS):
        photo = np.asarray(Image.open(folder / name).convert("RGB"))
        height, width, _ = photo.shape
        split = int(0.65 * width)
        low, high = (0, split - size) if region == "train" else (split, width - size)
        for _ in range(per_class):
            row, column = rng.integers(0, height - size), rng.integers(low, high)
            images.append(photo[row:row + size, column:column + size])
            labels.append(label)
    order = rng.permutation(len(labels))
    return np.stack(images)[order], np.asarray(labels)[order]


def store_photos_as_tfds(data_dir: Path, train_per_class: int, test_per_class: int) -> str:
    """The photo patches as a TFDS dataset in `data_dir` (offline), for `headstart local create --tfds`."""
    import tensorflow_datasets as tfds

    name = f"photo_patches{train_per_class}"
    if (data_dir / name).exists():
        return name
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(32, 32, 3)),
        "label": tfds.features.ClassLabel(names=[photo.split(".")[0] for photo in PHOTOS])})
    splits = {}
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        images, labels = photo_patches(count, split)
        splits[split] = [(i, {"image": image, "label": int(label)}) for i, (image, label) in
                         enumerate(zip(images, labels))]
    tfds.dataset_builders.store_as_tfds_dataset(name=name, version="1.0.0", features=features,
                                                split_datasets=splits, data_dir=data_dir)
    return name


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline_tree(commit: str, prefix: str) -> tuple[Path, Path]:
    """A scratch folder, and in it `baseline/`: the files of `commit` (git archive: no worktree to remove), for a
    benchmark that compares this tree's code with an older commit's side by side."""
    import subprocess
    import tempfile

    work = Path(tempfile.mkdtemp(prefix=prefix))
    baseline = work / "baseline"
    baseline.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
    return work, baseline
