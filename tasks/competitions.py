"""Competition specs, and loading a competition's files into arrays with clear errors."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tasks.archives import unpack_archive
from tasks.errors import CompetitionDataError, SpecError

LAYOUTS = ("pixels_csv", "image_folder", "image_csv")
METRICS = ("accuracy", "log_loss")
SUBMISSION_FORMS = ("label", "probabilities")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass(frozen=True)
class CompetitionSpec:
    """What a competition ships and what it wants back.

    Layouts: `pixels_csv` (digit-recognizer: label + pixel columns), `image_folder` (cifar-10: an
    id/label CSV plus train/ and test/ folders, possibly as .7z archives) and `image_csv` (any other
    id/label CSV plus image folders). Test ids and their order come from the sample submission.
    """

    slug: str
    layout: str
    class_names: tuple[str, ...]
    sample_submission: str
    submission_id_column: str
    submission_label_column: str = "label"
    metric: str = "accuracy"
    submission_form: str = "label"
    train_csv: str = "train.csv"
    label_column: str = "label"
    id_column: str | None = None
    test_csv: str | None = None
    image_shape: tuple[int, int, int] = (28, 28, 1)
    train_images: str | None = None
    test_images: str | None = None
    train_archive: str | None = None
    test_archive: str | None = None
    image_extension: str = ".png"

    def __post_init__(self) -> None:
        _require(self.layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        _require(self.metric in METRICS, f"metric must be one of {METRICS}, got {self.metric!r}")
        _require(self.submission_form in SUBMISSION_FORMS,
                 f"submission_form must be one of {SUBMISSION_FORMS}, got {self.submission_form!r}")
        _require(self.metric != "log_loss" or self.submission_form == "probabilities",
                 "metric log_loss needs submission_form 'probabilities'")
        _require(len(self.class_names) >= 2, "class_names needs at least two classes")
        _require(len(set(self.class_names)) == len(self.class_names), "class_names has duplicates")
        if self.layout == "pixels_csv":
            _require(self.test_csv is not None, "a pixels_csv competition needs test_csv")
        else:
            _require(self.id_column is not None and self.train_images and self.test_images,
                     f"a {self.layout} competition needs id_column, train_images and test_images")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def with_slug(self, slug: str) -> CompetitionSpec:
        return dataclasses.replace(self, slug=slug)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SpecError(f"competition spec: {message}")


DIGIT_RECOGNIZER = CompetitionSpec(
    slug="digit-recognizer", layout="pixels_csv", class_names=tuple(str(digit) for digit in range(10)),
    train_csv="train.csv", test_csv="test.csv", label_column="label", image_shape=(28, 28, 1),
    sample_submission="sample_submission.csv", submission_id_column="ImageId", submission_label_column="Label",
)
CIFAR_10 = CompetitionSpec(
    slug="cifar-10", layout="image_folder",
    class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    train_csv="trainLabels.csv", id_column="id", label_column="label",
    train_images="train", test_images="test", train_archive="train.7z", test_archive="test.7z",
    sample_submission="sampleSubmission.csv", submission_id_column="id", submission_label_column="label",
)
BUILTIN_SPECS = {spec.slug: spec for spec in (DIGIT_RECOGNIZER, CIFAR_10)}


def spec_from_dict(values: dict, source: str = "spec") -> CompetitionSpec:
    """Build a spec from plain values (a TOML table or a stored JSON file)."""
    known = {field.name for field in dataclasses.fields(CompetitionSpec)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpecError(f"{source}: unknown keys {unknown}; known keys are {sorted(known)}")
    fields = {field.name: field for field in dataclasses.fields(CompetitionSpec)}
    missing = sorted(name for name, field in fields.items() if name not in values
                     and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING)
    if missing:
        raise SpecError(f"{source}: missing keys {missing}")
    for key, value in values.items():
        problem = _type_problem(value, fields[key].type)
        if problem:
            raise SpecError(f"{source}: key {key!r} must be {problem}, got {_shown(value)}")
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
    try:
        return CompetitionSpec(**values)
    except (TypeError, ValueError) as error:
        raise SpecError(f"{source}: {error}") from None


def _shown(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _type_problem(value, annotation: str) -> str | None:
    """What a spec value of this field's type must be, when it is not that; None when it is."""
    if annotation == "str":
        return None if isinstance(value, str) else "a string"
    if annotation == "str | None":
        return None if value is None or isinstance(value, str) else "a string (or left out)"
    if annotation == "tuple[str, ...]":
        ok = isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
        return None if ok else "a list of strings, e.g. [\"cat\", \"dog\"]"
    if annotation == "tuple[int, int, int]":
        ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(
            isinstance(item, int) and not isinstance(item, bool) and item > 0 for item in value)
        return None if ok else "[height, width, channels]: three positive integers, e.g. [28, 28, 1]"
    raise TypeError(f"no check for spec fields of type {annotation}")  # a new field type: add its check


def load_spec_file(path: Path) -> CompetitionSpec:
    """Read a spec from a TOML file (or the JSON a local competition stores)."""
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    if path.suffix == ".json":
        return spec_from_dict(json.loads(path.read_text()), source=str(path))
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML ({error})") from None
    return spec_from_dict(values, source=str(path))


def resolve_spec(name_or_path: str) -> CompetitionSpec:
    """A built-in spec by slug, or one read from a TOML path."""
    if name_or_path in BUILTIN_SPECS:
        return BUILTIN_SPECS[name_or_path]
    path = Path(name_or_path)
    if path.suffix in (".toml", ".json"):
        return load_spec_file(path)
    raise SpecError(f"unknown competition spec {name_or_path!r}: use one of {sorted(BUILTIN_SPECS)} "
                    "or the path of a .toml spec file")


@dataclass(frozen=True)
class CompetitionData:
    """A competition's training and test examples, checked against its spec."""

    train_ids: np.ndarray
    train_labels: np.ndarray
    test_ids: np.ndarray
    train_pixels: np.ndarray | None = None
    test_pixels: np.ndarray | None = None
    train_images: tuple[str, ...] | None = None
    test_images: tuple[str, ...] | None = None
    geometry: dict | None = None  # image files: channels, the most common height and width, same_size

    @property
    def same_size(self) -> bool:
        """Every image has the same height and width."""
        return self.geometry is None or self.geometry["same_size"]


def read_csv(path: Path, required_columns: list[str], text_only: bool = True) -> pd.DataFrame:
    """Read a CSV (as strings, or with the required columns as strings and the rest parsed),
    failing clearly when it is missing or lacks a column."""
    if not path.is_file():
        raise CompetitionDataError(f"{path}: file not found")
    dtype = str if text_only else {column: str for column in required_columns}
    try:
        frame = pd.read_csv(path, dtype=dtype, keep_default_na=text_only is False)
    except pd.errors.EmptyDataError:
        raise CompetitionDataError(f"{path}: empty file; expected a CSV with a header row"
                                   + (f" ({', '.join(required_columns)}, ...)" if required_columns else "")) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise CompetitionDataError(f"{path}: not a readable CSV ({error})") from None
    missing = [column for column in required_columns if column not in frame.columns]
    if missing:
        raise CompetitionDataError(
            f"{path}: wrong header: missing column(s) {missing}; expected {required_columns}, "
            f"found {list(frame.columns)[:8]}{'...' if len(frame.columns) > 8 else ''}")
    return frame


def _check_unique(values: pd.Series, path: Path, column: str) -> None:
    duplicated = values.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise CompetitionDataError(f"{path}: row {row + 2}, column {column!r}: duplicate id {plain(values.iloc[row])}")


def encode_labels(values: pd.Series, class_names: tuple[str, ...], path: Path, column: str) -> np.ndarray:
    """Class names to class indices, naming the first row whose label is not a class."""
    lookup = {name: index for index, name in enumerate(class_names)}
    encoded = values.map(lookup)
    if encoded.isna().any():
        row = int(np.flatnonzero(encoded.isna().to_numpy())[0])
        raise CompetitionDataError(f"{path}: row {row + 2}, column {column!r}: label {plain(values.iloc[row])} "
                                   f"is not one of the classes {list(class_names)}")
    return encoded.to_numpy(dtype=np.int64)


def read_test_ids(spec: CompetitionSpec, raw_dir: Path) -> np.ndarray:
    """Test ids, in the sample submission's order."""
    path = raw_dir / spec.sample_submission
    frame = read_csv(path, [spec.submission_id_column])
    if frame.empty:
        raise CompetitionDataError(f"{path}: empty test set: the sample submission has no rows")
    _check_unique(frame[spec.submission_id_column], path, spec.submission_id_column)
    return frame[spec.submission_id_column].to_numpy(dtype=str)


def pixel_columns(spec: CompetitionSpec) -> list[str]:
    return [f"pixel{index}" for index in range(int(np.prod(spec.image_shape)))]


def read_pixels(path: Path, frame: pd.DataFrame, spec: CompetitionSpec) -> np.ndarray:
    """Pixel columns to a uint8 array of `spec.image_shape` images, naming the first bad cell."""
    expected = pixel_columns(spec)
    found = [column for column in frame.columns if column.startswith("pixel")]
    if found != expected:
        raise CompetitionDataError(f"{path}: {_pixel_header_problem(found, expected, spec.image_shape)}")
    pixels = frame[expected]
    # Parsed columns are numeric; a column pandas left as text holds a non-numeric cell.
    numeric = all(pd.api.types.is_numeric_dtype(dtype) for dtype in pixels.dtypes)
    values = pixels if numeric else pixels.apply(pd.to_numeric, errors="coerce")
    values = values.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > 255) | (values != np.round(values))
    if bad.any():
        row, column = (int(index) for index in np.argwhere(bad)[0])
        cell = pixels.iat[row, column]
        raise CompetitionDataError(
            f"{path}: row {row + 2}, column {expected[column]!r}: pixel {'' if pd.isna(cell) else plain(cell)} "
            "is not an integer in 0..255")
    return values.astype(np.uint8).reshape((len(frame), *spec.image_shape))


def _pixel_header_problem(found: list[str], expected: list[str], shape: tuple[int, int, int]) -> str:
    """What is wrong with the pixel columns: the first one missing, unexpected or out of place."""
    height, width, channels = shape
    wanted = f"expected {len(expected)} columns pixel0..pixel{len(expected) - 1} ({height}x{width}x{channels})"
    missing = [column for column in expected if column not in set(found)]
    unexpected = [column for column in found if column not in set(expected)]
    if missing or unexpected or len(found) != len(expected):
        first = f"column {missing[0]!r} is missing" if missing else f"unexpected column {unexpected[0]!r}" \
            if unexpected else "a pixel column appears twice"
        problem = "wrong pixel count" if len(found) != len(expected) else "wrong pixel columns"
        return f"{problem}: {wanted}, found {len(found)}; {first}"
    position = next(place for place, (have, want) in enumerate(zip(found, expected)) if have != want)
    return (f"pixel columns out of order: {wanted} in that order; the pixel column at position {position + 1} is "
            f"{found[position]!r}, expected {expected[position]!r}")


def plain(value) -> str:
    """A cell as a message shows it: 300 and 'abc', never np.int64(300)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def load_pixels_csv(spec: CompetitionSpec, raw_dir: Path) -> CompetitionData:
    train_path, test_path = raw_dir / spec.train_csv, raw_dir / spec.test_csv
    train = read_csv(train_path, [spec.label_column] + ([spec.id_column] if spec.id_column else []),
                     text_only=False)
    test_ids = read_test_ids(spec, raw_dir)
    test = read_csv(test_path, [], text_only=False)
    if test.empty:
        raise CompetitionDataError(f"{test_path}: empty test set: no rows")
    if len(test) != len(test_ids):
        raise CompetitionDataError(f"{test_path}: {len(test)} rows, but {spec.sample_submission} "
                                   f"has {len(test_ids)} ids; expected one row per id")
    if train.empty:
        raise CompetitionDataError(f"{train_path}: no training rows")
    train_ids = (train[spec.id_column].to_numpy(dtype=str) if spec.id_column
                 else np.arange(1, len(train) + 1).astype(str))
    return CompetitionData(
        train_ids=train_ids,
        train_labels=encode_labels(train[spec.label_column], spec.class_names, train_path, spec.label_column),
        test_ids=test_ids,
        train_pixels=read_pixels(train_path, train, spec),
        test_pixels=read_pixels(test_path, test, spec))


def _image_paths(folder: Path, ids: np.ndarray, extension: str, source: Path) -> tuple[tuple[str, ...], list]:
    """The image file of every id, checked to stay inside `folder`, exist and decode; and every image's
    (width, height, mode)."""
    if not folder.is_dir():
        raise CompetitionDataError(f"{folder}: image folder not found")
    paths, geometries, inside = [], [], folder.resolve()
    for row, image_id in enumerate(map(str, ids)):
        path = folder / f"{image_id}{extension}"
        if not path.resolve().is_relative_to(inside) or Path(image_id).is_absolute():
            raise CompetitionDataError(f"{source}: row {row + 2}: id {image_id!r} names a file outside {folder}; "
                                       "ids are file names inside the image folder")
        if not path.is_file():
            raise CompetitionDataError(f"{path}: missing image for id {image_id!r}")
        try:
            with Image.open(path) as image:
                geometries.append((*image.size, image.mode))
                image.verify()  # checks the file's structure and checksums without decoding every pixel
        except Exception as error:  # PIL raises many types for broken files
            raise CompetitionDataError(f"{path}: undecodable image for id {image_id!r} ({error})") from None
        paths.append(str(path))
    return tuple(paths), geometries


GREY_MODES = ("L", "LA", "I", "I;16", "1")


def image_summary(geometries: list) -> dict:
    """Channels from every image (colour when any image is colour: a grey first image must not make a colour
    competition grey) and the most common size, which images of other sizes are resized to."""
    sizes = pd.Series([(width, height) for width, height, _ in geometries]).value_counts()
    width, height = sizes.index[0]
    return {"channels": 1 if all(mode in GREY_MODES for *_, mode in geometries) else 3,
            "image_height": int(height), "image_width": int(width), "same_size": len(sizes) == 1}


def load_image_folders(spec: CompetitionSpec, raw_dir: Path) -> CompetitionData:
    labels_path = raw_dir / spec.train_csv
    labels = read_csv(labels_path, [spec.id_column, spec.label_column])
    if labels.empty:
        raise CompetitionDataError(f"{labels_path}: no training rows")
    _check_unique(labels[spec.id_column], labels_path, spec.id_column)
    train_ids = labels[spec.id_column].to_numpy(dtype=str)
    test_ids = read_test_ids(spec, raw_dir)
    train_images, train_geometry = _image_paths(raw_dir / spec.train_images, train_ids, spec.image_extension,
                                                labels_path)
    test_images, test_geometry = _image_paths(raw_dir / spec.test_images, test_ids, spec.image_extension,
                                              raw_dir / spec.sample_submission)
    return CompetitionData(
        train_ids=train_ids,
        train_labels=encode_labels(labels[spec.label_column], spec.class_names, labels_path, spec.label_column),
        test_ids=test_ids, train_images=train_images, test_images=test_images,
        geometry=image_summary(train_geometry + test_geometry))


def load_competition(spec: CompetitionSpec, raw_dir: Path) -> CompetitionData:
    """Read and check a competition's unpacked files; raises CompetitionDataError on bad input."""
    if spec.layout == "pixels_csv":
        return load_pixels_csv(spec, raw_dir)
    return load_image_folders(spec, raw_dir)


def unpack_image_archives(spec: CompetitionSpec, raw_dir: Path) -> None:
    """Unpack train.7z/test.7z (as Kaggle ships cifar-10) where the image folder is not there yet."""
    for folder, archive in ((spec.train_images, spec.train_archive), (spec.test_images, spec.test_archive)):
        if folder and archive and not (raw_dir / folder).is_dir() and (raw_dir / archive).is_file():
            unpack_archive(raw_dir / archive, raw_dir)
