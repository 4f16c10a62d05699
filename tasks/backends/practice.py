"""Practice competitions made from data at hand: scikit-learn's digits, or a TFDS dataset."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split

from tasks.backends.local import (
    DEFAULT_DAILY_LIMIT,
    LocalBackend,
    create_local_competition,
)
from tasks.competitions import DIGIT_RECOGNIZER, CompetitionSpec, pixel_columns
from tasks.errors import ConfigError
from tasks.files import file_lock

DIGITS = "digits"


def upsample_digits(images: np.ndarray) -> np.ndarray:
    """8x8 images with values 0..16 to MNIST's form: 0..255, the digit in the middle 20x20 of 28x28."""
    upsampled = np.zeros((len(images), 28, 28), dtype=np.uint8)
    for index, image in enumerate(images):
        scaled = Image.fromarray((image * (255.0 / 16.0)).astype(np.uint8)).resize((20, 20), Image.BILINEAR)
        upsampled[index, 4:24, 4:24] = np.asarray(scaled)
    return upsampled


def digits_frames(test_fraction: float = 0.3, seed: int = 0) -> dict[str, pd.DataFrame]:
    """scikit-learn's handwritten digits in digit-recognizer's files, with the test labels as solution."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = upsample_digits(digits.images).reshape(len(digits.images), -1)
    train_x, test_x, train_y, test_y = train_test_split(
        pixels, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed)
    columns = pixel_columns(DIGIT_RECOGNIZER)
    train = pd.DataFrame(train_x, columns=columns)
    train.insert(0, "label", train_y)
    test_ids = np.arange(1, len(test_x) + 1)
    return {
        "train.csv": train,
        "test.csv": pd.DataFrame(test_x, columns=columns),
        "sample_submission.csv": pd.DataFrame({"ImageId": test_ids, "Label": 0}),
        "solution": pd.DataFrame({"ImageId": test_ids, "Label": test_y}),
    }


def _zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(folder).as_posix())
    return archive


def _create_from_files(root: Path, name: str, spec: CompetitionSpec, write_files, daily_limit: int,
                       seed: int) -> LocalBackend:
    """Write a competition's files with `write_files(folder) -> solution frame`, zip them, create it."""
    with tempfile.TemporaryDirectory() as scratch:
        public = Path(scratch) / "public"
        public.mkdir()
        solution = write_files(public)
        solution_path = Path(scratch) / "solution.csv"
        solution.to_csv(solution_path, index=False)
        archive = _zip_folder(public, Path(scratch) / f"{name}.zip")
        return create_local_competition(root, name, spec, archive, solution_path, daily_limit, seed=seed)


def ensure_digits(root: Path, daily_limit: int = DEFAULT_DAILY_LIMIT) -> LocalBackend:
    """The built-in `digits` competition, created on first use (by one process, when several start at once)."""
    if (root / "competition.json").is_file():
        return LocalBackend(root)
    with file_lock(root.with_name(f".{root.name}.lock")):
        if (root / "competition.json").is_file():  # another process made it while this one waited
            return LocalBackend(root)
        return _create_digits(root, daily_limit)


def _create_digits(root: Path, daily_limit: int) -> LocalBackend:
    def write_files(folder: Path) -> pd.DataFrame:
        frames = digits_frames()
        for file_name in ("train.csv", "test.csv", "sample_submission.csv"):
            frames[file_name].to_csv(folder / file_name, index=False)
        return frames["solution"]

    return _create_from_files(root, DIGITS, DIGIT_RECOGNIZER.with_slug(DIGITS), write_files, daily_limit, seed=0)


def _tfds_split_arrays(builder, split: str, image_key: str, label_key: str, limit: int | None):
    import tensorflow_datasets as tfds

    dataset = builder.as_dataset(split=split, shuffle_files=False)
    if limit:
        dataset = dataset.take(limit)
    images, labels = [], []
    for example in tfds.as_numpy(dataset):
        images.append(example[image_key])
        labels.append(int(example[label_key]))
    return images, np.asarray(labels)


def create_from_tfds(root: Path, name: str, dataset: str, tfds_data_dir: Path | None = None,
                     max_train: int | None = None, max_test: int | None = None,
                     daily_limit: int = DEFAULT_DAILY_LIMIT, seed: int = 0) -> LocalBackend:
    """A practice competition in the `image_csv` layout from a TFDS image-classification dataset.

    Uses TFDS's data_dir (TFDS downloads the dataset when online and it is not there yet). The
    `test` split, or else a stratified fifth of `train`, becomes the hidden test set.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(dataset, data_dir=None if tfds_data_dir is None else str(tfds_data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        raise ConfigError(f"TFDS has no dataset {dataset!r}; see `tfds.list_builders()` for the names it knows, "
                          "e.g. mnist, cifar10, fashion_mnist") from None
    builder.download_and_prepare()
    image_key, label_key = builder.info.supervised_keys or ("image", "label")
    label_feature = builder.info.features[label_key]
    if not hasattr(label_feature, "names"):
        raise ConfigError(f"TFDS dataset {dataset!r}: {label_key!r} is not a class label; "
                          "expected an image-classification dataset")
    class_names = tuple(label_feature.names)
    spec = CompetitionSpec(
        slug=name, layout="image_csv", class_names=class_names, train_csv="train.csv", id_column="id",
        label_column="label", train_images="train", test_images="test", image_extension=".png",
        sample_submission="sample_submission.csv", submission_id_column="id", submission_label_column="label")

    def write_files(folder: Path) -> pd.DataFrame:
        train_images, train_labels = _tfds_split_arrays(builder, "train", image_key, label_key, max_train)
        if "test" in builder.info.splits:
            test_images, test_labels = _tfds_split_arrays(builder, "test", image_key, label_key, max_test)
        else:
            order = np.arange(len(train_labels))
            keep, held = train_test_split(order, test_size=0.2, stratify=train_labels, random_state=seed)
            test_images, test_labels = [train_images[i] for i in held], train_labels[held]
            train_images, train_labels = [train_images[i] for i in keep], train_labels[keep]
        train_ids = _write_images(folder / "train", train_images, "train")
        test_ids = _write_images(folder / "test", test_images, "test")
        pd.DataFrame({"id": train_ids, "label": np.asarray(class_names)[train_labels]}).to_csv(
            folder / "train.csv", index=False)
        pd.DataFrame({"id": test_ids, "label": class_names[0]}).to_csv(folder / "sample_submission.csv", index=False)
        return pd.DataFrame({"id": test_ids, "label": np.asarray(class_names)[test_labels]})

    return _create_from_files(root, name, spec, write_files, daily_limit, seed)


def _write_images(folder: Path, images: list[np.ndarray], prefix: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for index, image in enumerate(images):
        image_id = f"{prefix}{index:06d}"
        array = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        Image.fromarray(array).save(folder / f"{image_id}.png")
        ids.append(image_id)
    return ids
