import numpy as np
import pandas as pd
import pytest

from tasks.backends.practice import (
    create_from_tfds,
    digits_frames,
    ensure_digits,
    upsample_digits,
)
from tasks.errors import ConfigError
from tasks.layouts import load_competition


def test_upsampled_digits_look_like_mnist():
    image = np.zeros((1, 8, 8))
    image[0, 2:6, 3:5] = 16
    upsampled = upsample_digits(image)
    assert upsampled.shape == (1, 28, 28) and upsampled.dtype == np.uint8
    assert upsampled[0, :4].max() == 0 and upsampled[0, 24:].max() == 0  # MNIST's 4-pixel margin
    assert upsampled.max() == 255


def test_digits_frames_are_digit_recognizer_layout():
    frames = digits_frames()
    assert list(frames["train.csv"].columns[:2]) == ["label", "pixel0"] and frames["train.csv"].shape[1] == 785
    assert len(frames["test.csv"]) == len(frames["sample_submission.csv"]) == 540
    assert frames["sample_submission.csv"]["ImageId"].iloc[0] == 1


def test_digits_competition_is_created_once(digits_store, tmp_path):
    root = digits_store / "local" / "digits"
    files = [root / "competition.json", root / "solution.csv", root / "public" / "digits.zip"]
    stamps = [path.stat().st_mtime_ns for path in files]
    backend = ensure_digits(root)
    assert [path.stat().st_mtime_ns for path in files] == stamps  # found, not rebuilt
    assert backend.spec.slug == "digits"
    data = load_competition(backend.download(tmp_path / "raw"), tmp_path / "raw")
    assert data.train_pixels.shape == (1257, 28, 28, 1)


@pytest.fixture
def tfds_dir(tmp_path):
    """A tiny image-classification dataset stored in TFDS's format, offline, in a temporary data_dir."""
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(0)
    features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(8, 8, 3)),
                                           "label": tfds.features.ClassLabel(names=["ant", "bee", "cow"])})

    def examples(count):
        return [(i, {"image": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), "label": i % 3}) for i in range(count)]

    tfds.dataset_builders.store_as_tfds_dataset(name="tiny_animals", version="1.0.0", features=features,
                                                split_datasets={"train": examples(30), "test": examples(9)},
                                                data_dir=tmp_path / "tfds")
    return tmp_path / "tfds"


def test_create_from_tfds(tfds_dir, tmp_path):
    backend = create_from_tfds(tmp_path / "store" / "animals", "animals", "tiny_animals", tfds_dir, max_train=24)
    assert backend.spec.class_names == ("ant", "bee", "cow") and backend.spec.layout == "image_csv"
    raw = tmp_path / "raw"
    backend.download(raw)
    data = load_competition(backend.spec, raw)
    assert len(data.train_images) == 24 and len(data.test_images) == 9
    solution = pd.read_csv(backend.root / "solution.csv")
    answer = tmp_path / "answer.csv"
    solution[["id", "label"]].to_csv(answer, index=False)
    assert backend.submit(answer)["public_score"] == 1.0


def test_unknown_tfds_dataset_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="TFDS has no dataset 'no_such_dataset'"):
        create_from_tfds(tmp_path / "store" / "x", "x", "no_such_dataset", tmp_path / "tfds")
    assert not (tmp_path / "store" / "x").exists()
