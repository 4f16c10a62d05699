"""The pictures: each helper writes a PNG, and refuses inputs that do not fit together."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from tasks.errors import ConfigError
from tasks.plots import (
    plot_augmentations,
    plot_class_histogram,
    plot_class_samples,
    plot_feature_maps,
    plot_feature_projections,
    plot_filters,
)

CLASSES = ["cat", "dog", "frog"]
rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
LABELS = np.arange(30) % 3


def is_png(path, min_size: tuple[int, int] = (200, 100)) -> bool:
    """A PNG that decodes, at least `min_size` pixels (width, height), and not one flat colour: something was drawn."""
    from PIL import Image

    if not (path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"):
        return False
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float64)
    except OSError:  # truncated or not a PNG after all
        return False
    distinct = len(np.unique(pixels))
    return pixels.shape[1] >= min_size[0] and pixels.shape[0] >= min_size[1] and pixels.std() > 5 and distinct > 20


def test_every_picture_is_a_png(tmp_path):
    assert is_png(plot_class_samples(IMAGES, LABELS, CLASSES, tmp_path / "samples.png", per_class=12))  # 10 of each
    assert is_png(plot_class_samples(IMAGES[..., :1], LABELS, CLASSES, tmp_path / "grey.png"))
    assert is_png(plot_class_histogram(LABELS, CLASSES, tmp_path / "histogram.png"))
    assert is_png(plot_filters(rng.normal(size=(3, 3, 3, 40)), "first", tmp_path / "filters.png"))
    assert is_png(plot_filters(rng.normal(size=(3, 3, 16, 4)), "deeper", tmp_path / "deeper.png"))
    maps = [("conv", rng.normal(size=(6, 6, 4))), ("top", rng.normal(size=(2, 2, 16)))]
    assert is_png(plot_feature_maps(IMAGES[0], maps, tmp_path / "maps.png"))
    features = rng.normal(size=(30, 60)) + LABELS[:, None]
    # One OpenMP thread: t-SNE's two spun against the other processes of a busy 2-core machine (3 s became 30 s).
    with threadpool_limits(1, user_api="openmp"):
        assert is_png(plot_feature_projections(features, LABELS, CLASSES, tmp_path / "projection.png", tsne_sample=20))
    assert is_png(plot_augmentations(IMAGES[:2], np.stack([IMAGES[:2]] * 3), tmp_path / "augmented.png"))


def test_a_blank_or_tiny_picture_is_not_taken_for_one(tmp_path):
    from PIL import Image

    Image.new("RGB", (640, 480), "white").save(tmp_path / "blank.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "tiny.png")
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    assert not any(is_png(tmp_path / name) for name in ("blank.png", "tiny.png", "fake.png"))


def test_inputs_that_do_not_fit_together_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="30 rows of images or features but 29 labels"):
        plot_class_samples(IMAGES, LABELS[:29], CLASSES, tmp_path / "samples.png")
    with pytest.raises(ConfigError, match="tsne_sample must be at least 5"):
        plot_feature_projections(rng.normal(size=(30, 4)), LABELS, CLASSES, tmp_path / "projection.png", tsne_sample=3)
    with pytest.raises(ConfigError, match="Conv2D kernel"):
        plot_filters(rng.normal(size=(3, 3, 3)), "flat", tmp_path / "filters.png")
    with pytest.raises(ConfigError, match="augmented copies have shape"):
        plot_augmentations(IMAGES[:2], np.stack([IMAGES[:3]] * 2), tmp_path / "augmented.png")
    assert not list(tmp_path.iterdir())  # nothing written
