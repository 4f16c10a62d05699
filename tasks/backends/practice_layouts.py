"""Practice competitions in the layouts of real Kaggle image competitions, made from labelled images at hand.

Each builder writes one competition's public files (the real competition's file names, folder names, CSV headers
and id styles) and returns its hidden solution; `build_practice` zips them as Kaggle ships them. The targets are
derived from the source's real labels so that they can be learnt: tags and a binary class from the CIFAR class,
grades from the MNIST digit, many whale-like ids from pairs of digits. Sources: CIFAR-10 or MNIST practice files
(`cifar_source`, `mnist_source`), or small generated images for tests (`pattern_source`).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tasks.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """Labelled images: uint8 arrays (H, W, C) or (H, W), class indices, and the class names."""

    images: list
    labels: np.ndarray
    class_names: tuple[str, ...]


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_TAGS = {  # planet-like tags from the CIFAR class
    "animal": {"bird", "cat", "deer", "dog", "frog", "horse"}, "vehicle": {"airplane", "automobile", "ship", "truck"},
    "has_wings": {"airplane", "bird"}, "four_legs": {"cat", "deer", "dog", "horse", "frog"},
    "on_road": {"automobile", "truck"}, "on_water": {"ship"}, "pet": {"cat", "dog"}}
SPECIES = ("Black-grass", "Charlock", "Cleavers", "Common Chickweed", "Common wheat", "Fat Hen", "Loose Silky-bent",
           "Maize", "Scentless Mayweed", "Sugar beet")
BREEDS = ("affenpinscher", "afghan_hound", "african_hunting_dog", "airedale", "american_staffordshire_terrier",
          "appenzeller", "australian_terrier", "basenji", "basset", "beagle")


def _hex(rng: np.random.Generator, count: int, digits: int) -> list[str]:
    """Distinct random lower-case hex ids of `digits` characters (Kaggle's id style)."""
    ids: list[str] = []
    while len(ids) < count:
        nibbles = rng.integers(0, 16, (count - len(ids), digits))
        ids = list(dict.fromkeys(ids + ["".join("0123456789abcdef"[n] for n in row) for row in nibbles]))
    return ids


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)
    picture.save(path, quality=95) if path.suffix == ".jpg" else picture.save(path)


def _zip_members(folder: Path, archive: Path, root: Path) -> None:
    """Zip `folder` with entries relative to `root` (train.zip holding train/...), then remove the folder."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(root).as_posix())
    for path in sorted(folder.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()


def _split(source: Source, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(source.labels))
    cut = int(round(len(order) * (1 - test_fraction)))
    return order[:cut], order[cut:]


def _names(source: Source, rows: np.ndarray) -> np.ndarray:
    return np.asarray(source.class_names)[source.labels[rows]]


def aerial_cactus(source: Source, folder: Path, rng) -> pd.DataFrame:
    """Binary, ROC AUC: has_cactus = the CIFAR image shows an animal; ids are file names with .jpg."""
    train, test = _split(source, 0.2, rng)
    ids = np.asarray([f"{name}.jpg" for name in _hex(rng, len(source.labels), 32)])
    has = np.isin(_names(source, np.arange(len(ids))), list(CIFAR_TAGS["animal"])).astype(int)
    for split, rows in (("train", train), ("test", test)):
        for row in rows:
            _save(source.images[row], folder / split / ids[row])
        _zip_members(folder / split, folder / f"{split}.zip", folder)
    pd.DataFrame({"id": ids[train], "has_cactus": has[train]}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"id": ids[test], "has_cactus": 0.5}).to_csv(folder / "sample_submission.csv", index=False)
    return pd.DataFrame({"id": ids[test], "has_cactus": has[test]})


def plant_seedlings(source: Source, folder: Path, rng) -> pd.DataFrame:
    """One folder per class (train/<Species>/<hex>.png), test in one folder, `file,species` keyed by file name."""
    train, test = _split(source, 0.15, rng)
    files = np.asarray([f"{name}.png" for name in _hex(rng, len(source.labels), 9)])
    species = np.asarray(SPECIES)[source.labels]
    for row in train:
        _save(source.images[row], folder / "train" / species[row] / files[row])
    for row in test:
        _save(source.images[row], folder / "test" / files[row])
    pd.DataFrame({"file": files[test], "species": "Sugar beet"}).to_csv(folder / "sample_submission.csv", index=False)
    return pd.DataFrame({"file": files[test], "species": species[test]})


def planet(source: Source, folder: Path, rng) -> pd.DataFrame:
    """Multi-label tags, mean F2: train_v2.csv `image_name,tags`; test images in test-jpg/ and
    test-jpg-additional/ (test_N and file_N)."""
    train, test = _split(source, 0.25, rng)
    names = _names(source, np.arange(len(source.labels)))
    tags = np.asarray([" ".join(tag for tag, members in CIFAR_TAGS.items() if name in members) for name in names])
    train_ids = [f"train_{index}" for index in range(len(train))]
    additional = len(test) * 2 // 5
    test_ids = [f"test_{index}" for index in range(len(test) - additional)] + \
        [f"file_{index}" for index in range(additional)]
    for image_id, row in zip(train_ids, train):
        _save(source.images[row], folder / "train-jpg" / f"{image_id}.jpg")
    for image_id, row in zip(test_ids, test):
        subfolder = "test-jpg" if image_id.startswith("test_") else "test-jpg-additional"
        _save(source.images[row], folder / subfolder / f"{image_id}.jpg")
    pd.DataFrame({"image_name": train_ids, "tags": tags[train]}).to_csv(folder / "train_v2.csv", index=False)
    pd.DataFrame({"image_name": test_ids, "tags": "animal vehicle"}).to_csv(folder / "sample_submission_v2.csv",
                                                                          index=False)
    return pd.DataFrame({"image_name": test_ids, "tags": tags[test]})


def humpback_whales(source: Source, folder: Path, rng) -> pd.DataFrame:
    """Ranking, MAP@5: many whale ids (w_ + 7 hex), new_whale the commonest; `Image,Id` with five ids."""
    train, test = _split(source, 0.2, rng)
    whale_ids = np.asarray(["new_whale", *(f"w_{name}" for name in _hex(rng, len(source.class_names) - 1, 7))])
    labels = whale_ids[source.labels]
    labels[test] = np.where(np.isin(labels[test], labels[train]), labels[test], "new_whale")  # as Kaggle's test set
    files = np.asarray([f"{name}.jpg" for name in _hex(rng, len(source.labels), 9)])
    for split, rows in (("train", train), ("test", test)):
        for row in rows:
            _save(source.images[row], folder / split / files[row])
        _zip_members(folder / split, folder / f"{split}.zip", folder)
    pd.DataFrame({"Image": files[train], "Id": labels[train]}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"Image": files[test], "Id": " ".join(whale_ids[:5])}).to_csv(folder / "sample_submission.csv",
                                                                              index=False)
    return pd.DataFrame({"Image": files[test], "Id": labels[test]})


def dogs_vs_cats(source: Source, folder: Path, rng) -> pd.DataFrame:
    """Labels only in file names (train/cat.0.jpg), test ids the file stems (1.jpg), `id,label` = P(dog)."""
    names = _names(source, np.arange(len(source.labels)))
    keep = np.flatnonzero(np.isin(names, ["cat", "dog"]))
    if len(np.unique(names[keep])) < 2:
        raise ConfigError("dogs-vs-cats needs a source with both 'cat' and 'dog' images")
    order = rng.permutation(keep)
    cut = int(round(len(order) * 0.8))
    train, test = order[:cut], order[cut:]
    counters = {"cat": 0, "dog": 0}
    for row in train:
        _save(source.images[row], folder / "train" / f"{names[row]}.{counters[names[row]]}.jpg")
        counters[names[row]] += 1
    for number, row in enumerate(test, start=1):
        _save(source.images[row], folder / "test" / f"{number}.jpg")
    for split in ("train", "test"):
        _zip_members(folder / split, folder / f"{split}.zip", folder)
    ids = np.arange(1, len(test) + 1)
    pd.DataFrame({"id": ids, "label": 0.5}).to_csv(folder / "sample_submission.csv", index=False)
    return pd.DataFrame({"id": ids, "label": (names[test] == "dog").astype(int)})


def dog_breeds(source: Source, folder: Path, rng) -> pd.DataFrame:
    """labels.csv `id,breed` (32 hex), train.zip/test.zip of <id>.jpg, one probability column per breed."""
    train, test = _split(source, 0.2, rng)
    ids = np.asarray(_hex(rng, len(source.labels), 32))
    breeds = np.asarray(BREEDS)[source.labels]
    for split, rows in (("train", train), ("test", test)):
        for row in rows:
            _save(source.images[row], folder / split / f"{ids[row]}.jpg")
        _zip_members(folder / split, folder / f"{split}.zip", folder)
    pd.DataFrame({"id": ids[train], "breed": breeds[train]}).to_csv(folder / "labels.csv", index=False)
    sample = pd.DataFrame({"id": ids[test], **{breed: 1 / len(BREEDS) for breed in sorted(BREEDS)}})
    sample.to_csv(folder / "sample_submission.csv", index=False)
    return pd.DataFrame({"id": ids[test], "breed": breeds[test]})


def aptos(source: Source, folder: Path, rng) -> pd.DataFrame:
    """Ordinal grades 0..4 (the digit halved), quadratic weighted kappa: train.csv `id_code,diagnosis`, test.csv
    `id_code`, train_images/ and test_images/ of <12 hex>.png."""
    train, test = _split(source, 0.2, rng)
    ids = np.asarray(_hex(rng, len(source.labels), 12))
    grades = source.labels * 5 // len(source.class_names)
    for split, rows in (("train", train), ("test", test)):
        for row in rows:
            _save(source.images[row], folder / f"{split}_images" / f"{ids[row]}.png")
    pd.DataFrame({"id_code": ids[train], "diagnosis": grades[train]}).to_csv(folder / "train.csv", index=False)
    pd.DataFrame({"id_code": ids[test]}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id_code": ids[test], "diagnosis": 0}).to_csv(folder / "sample_submission.csv", index=False)
    return pd.DataFrame({"id_code": ids[test], "diagnosis": grades[test]})


def kannada(source: Source, folder: Path, rng) -> pd.DataFrame:
    """Pixel CSVs: train.csv `label,pixel0..`, test.csv `id,pixel0..` (ids from 0), Dig-MNIST.csv (more labelled
    images), sample_submission.csv `id,label`."""
    pixels = np.stack([np.asarray(image).reshape(-1) for image in source.images])
    columns = [f"pixel{index}" for index in range(pixels.shape[1])]
    train, test = _split(source, 0.2, rng)
    extra, train = train[: len(train) // 6], train[len(train) // 6:]
    for name, rows in (("train.csv", train), ("Dig-MNIST.csv", extra)):
        frame = pd.DataFrame(pixels[rows], columns=columns)
        frame.insert(0, "label", source.labels[rows])
        frame.to_csv(folder / name, index=False)
    frame = pd.DataFrame(pixels[test], columns=columns)
    frame.insert(0, "id", np.arange(len(test)))
    frame.to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": np.arange(len(test)), "label": 0}).to_csv(folder / "sample_submission.csv", index=False)
    return pd.DataFrame({"id": np.arange(len(test)), "label": source.labels[test]})


PRACTICE = {  # competition: (builder, the source it is made from)
    "aerial-cactus-identification": (aerial_cactus, "cifar"),
    "plant-seedlings-classification": (plant_seedlings, "cifar"),
    "planet-understanding-the-amazon-from-space": (planet, "cifar"),
    "humpback-whale-identification": (humpback_whales, "digit-pairs"),
    "dogs-vs-cats-redux-kernels-edition": (dogs_vs_cats, "cifar"),
    "dog-breed-identification": (dog_breeds, "cifar"),
    "aptos2019-blindness-detection": (aptos, "mnist"),
    "Kannada-MNIST": (kannada, "mnist"),
}


def build_practice(name: str, source: Source, directory: Path, seed: int = 0) -> tuple[Path, Path]:
    """`<name>.zip` (the public files, as Kaggle ships them) and `<name>-solution.csv` in `directory`."""
    if name not in PRACTICE:
        raise ConfigError(f"no practice layout {name!r}; known: {', '.join(PRACTICE)}")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        solution = PRACTICE[name][0](source, folder, np.random.default_rng(seed))
        archive = directory / f"{name}.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zipped.write(path, path.relative_to(folder).as_posix())
    solution_path = directory / f"{name}-solution.csv"
    solution.to_csv(solution_path, index=False)
    return archive, solution_path


def pattern_source(count: int, num_classes: int = 10, size: int = 8, channels: int = 3, seed: int = 0,
                   class_names: tuple[str, ...] = CIFAR_CLASSES) -> Source:
    """Small learnable images for tests: each class its own colour and stripe, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % num_classes
    base = rng.integers(40, 216, (num_classes, channels))
    images = []
    for label in labels:
        image = np.clip(base[label] + rng.normal(0, 12, (size, size, channels)), 0, 255)
        image[:, label % size] = 255
        images.append((image[..., 0] if channels == 1 else image).astype(np.uint8))
    return Source(images, labels, tuple(class_names[:num_classes]))


def digit_pairs(source: Source, count: int, seed: int = 0) -> Source:
    """Whale-like: images of two digits side by side, one class per pair (0x pairs all 'new_whale', class 0)."""
    rng = np.random.default_rng(seed)
    left, right = rng.integers(0, len(source.labels), (2, count))
    labels = np.where(source.labels[left] == 0, 0, source.labels[left] * 10 + source.labels[right] - 9)
    images = [np.concatenate([source.images[a], source.images[b]], axis=1) for a, b in zip(left, right)]
    return Source(images, labels.astype(np.int64), tuple(f"pair{index}" for index in range(91)))


def mnist_source(zip_path: Path, limit: int | None = None) -> Source:
    """Digit-recognizer's train.csv (label, pixel0..783) from its competition zip, as 28x28 grey images."""
    with zipfile.ZipFile(zip_path) as zipped, zipped.open("train.csv") as stream:
        frame = pd.read_csv(stream, nrows=limit)
    pixels = frame.drop(columns="label").to_numpy(np.uint8).reshape(-1, 28, 28)
    return Source(list(pixels), frame["label"].to_numpy(np.int64), tuple(str(digit) for digit in range(10)))


def cifar_source(zip_path: Path, limit: int | None = None) -> Source:
    """CIFAR-10's training images and labels (trainLabels.csv, train.7z) from its competition zip."""
    import py7zr

    with zipfile.ZipFile(zip_path) as zipped:
        labels = pd.read_csv(zipped.open("trainLabels.csv"), dtype={"id": str}).iloc[:limit]
        archive = io.BytesIO(zipped.read("train.7z"))
    wanted = [f"train/{image_id}.png" for image_id in labels["id"]]
    with tempfile.TemporaryDirectory() as scratch, py7zr.SevenZipFile(archive, "r") as seven_zip:
        seven_zip.extract(path=scratch, targets=wanted)
        images = [np.asarray(Image.open(Path(scratch) / name).convert("RGB")) for name in wanted]
    return Source(images, labels["label"].map(CIFAR_CLASSES.index).to_numpy(np.int64), CIFAR_CLASSES)
