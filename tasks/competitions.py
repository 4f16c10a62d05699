"""Competition specs: what a competition ships and wants back; reading its CSVs with clear errors.

Loading a competition's files by layout is in tasks/layouts.py.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.archives import unpack_archive  # noqa: F401  (callers unpack through here)
from tasks.errors import CompetitionDataError, SpecError
from tasks.metrics import METRICS as ALL_METRICS
from tasks.metrics import TASKS, get_metric, metrics_for

LAYOUTS = ("pixels_csv", "image_folder", "image_csv", "class_folders", "filename_labels")
METRICS = tuple(ALL_METRICS)
SUBMISSION_FORMS = ("label", "probabilities", "probability", "tags", "ranked")
FORMS = {  # the submission forms of each task type, the first its default
    "multiclass": ("label", "probabilities"),  # one class name, or one probability column per class
    "binary": ("probability",),  # one probability column: the positive class's (the last of class_names)
    "multilabel": ("tags",),  # the space-separated tags that apply
    "ordinal": ("label",),  # one integer grade
    "ranking": ("ranked",),  # the K most likely labels, space-separated, most likely first (K of map@K)
}
DEFAULT_METRICS = {"multiclass": "accuracy", "binary": "roc_auc", "multilabel": "mean_f2", "ordinal":
                   "quadratic_weighted_kappa", "ranking": "map@5"}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass(frozen=True)
class CompetitionSpec:
    """What a competition ships and what it wants back.

    Layouts: `pixels_csv` (digit-recognizer: label + pixel columns), `image_folder` (cifar-10: an id/label CSV plus
    train/ and test/ folders, possibly as .7z or .zip archives), `image_csv` (any other id/label CSV plus image
    folders), `class_folders` (plant-seedlings: train/<class>/<file>, no CSV) and `filename_labels`
    (dogs-vs-cats: train/cat.0.jpg, the label being the file name up to its first dot). Test ids and their order
    come from the sample submission; their images may lie in `test_images` or any of `extra_test_images`.
    The task type decides the targets and the submission's form (FORMS); the metric must fit the task.
    """

    slug: str
    layout: str
    class_names: tuple[str, ...]
    sample_submission: str
    submission_id_column: str
    submission_label_column: str = "label"
    metric: str = "accuracy"
    submission_form: str = "label"
    task: str = "multiclass"
    train_csv: str | None = "train.csv"
    label_column: str = "label"
    id_column: str | None = None
    test_csv: str | None = None
    test_id_column: str | None = None
    extra_train_csvs: tuple[str, ...] = ()
    image_shape: tuple[int, int, int] = (28, 28, 1)
    train_images: str | None = None
    test_images: str | None = None
    extra_test_images: tuple[str, ...] = ()
    train_archive: str | None = None
    test_archive: str | None = None
    image_extension: str = ".png"

    def __post_init__(self) -> None:
        _require(self.layout in LAYOUTS, f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        _require(self.task in TASKS, f"task must be one of {TASKS}, got {self.task!r}")
        _require(self.metric in METRICS, f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        metric = get_metric(self.metric)
        _require(self.task in metric.tasks, f"metric {self.metric} does not fit task {self.task}; a {self.task} "
                 f"competition is scored by one of {', '.join(metrics_for(self.task))}")
        _require(self.submission_form in SUBMISSION_FORMS,
                 f"submission_form must be one of {SUBMISSION_FORMS}, got {self.submission_form!r}")
        _require(self.submission_form in FORMS[self.task], f"a {self.task} competition's submission_form is one "
                 f"of {FORMS[self.task]}, got {self.submission_form!r}")
        _require(metric.scores != "probabilities" or self.submission_form in ("probabilities", "probability"),
                 f"metric {self.metric} needs submission_form 'probabilities' (or 'probability' for binary)")
        _require(len(self.class_names) >= 2, "class_names needs at least two classes")
        _require(self.task != "binary" or len(self.class_names) == 2,
                 f"a binary competition has two classes (negative, positive), got {len(self.class_names)}")
        _require(len(set(self.class_names)) == len(self.class_names), "class_names has duplicates")
        if self.layout == "pixels_csv":
            _require(self.test_csv is not None and self.train_csv is not None,
                     "a pixels_csv competition needs train_csv and test_csv")
        elif self.layout in ("image_folder", "image_csv"):
            _require(self.id_column is not None and self.train_csv and self.train_images and self.test_images,
                     f"a {self.layout} competition needs train_csv, id_column, train_images and test_images")
        else:
            _require(self.train_images and self.test_images,
                     f"a {self.layout} competition needs train_images and test_images")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def top_k(self) -> int | None:
        """How many labels a ranking answer holds (K of map@K)."""
        return get_metric(self.metric).k

    def with_slug(self, slug: str) -> CompetitionSpec:
        return dataclasses.replace(self, slug=slug)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SpecError(f"competition spec: {message}")


def default_metric(task: str, submission_form: str) -> str:
    """The obvious metric for a submission's form: log loss for one column per class, else by the task."""
    return "log_loss" if submission_form == "probabilities" else DEFAULT_METRICS[task]


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
    if "task" in values and values["task"] in FORMS:  # a task's own form and metric unless given
        values.setdefault("submission_form", FORMS[values["task"]][0])
        values.setdefault("metric", default_metric(values["task"], values["submission_form"]))
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


def check_unique(values: pd.Series, path: Path, column: str) -> None:
    duplicated = values.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise CompetitionDataError(f"{path}: row {row + 2}, column {column!r}: duplicate id {plain(values.iloc[row])}")


def shown_names(names, limit: int = 10) -> str:
    """A list of class or tag names as a message shows it: all of a short list, the first few of a long one."""
    names = list(names)
    return str(names) if len(names) <= limit else f"{str(names[:limit])[:-1]}, ...] ({len(names)} in all)"


def encode_labels(values: pd.Series, class_names: tuple[str, ...], path: Path, column: str) -> np.ndarray:
    """Class names to class indices, naming the first row whose label is not a class."""
    lookup = {name: index for index, name in enumerate(class_names)}
    encoded = values.map(lookup)
    if encoded.isna().any():
        row = int(np.flatnonzero(encoded.isna().to_numpy())[0])
        raise CompetitionDataError(f"{path}: row {row + 2}, column {column!r}: label {plain(values.iloc[row])} "
                                   f"is not one of the classes {shown_names(class_names)}")
    return encoded.to_numpy(dtype=np.int64)


def encode_tags(values: pd.Series, tags: tuple[str, ...], path: Path, column: str) -> np.ndarray:
    """Space-separated tags to a 0/1 matrix (one column per tag), naming the first row with an unknown tag."""
    lookup = {name: index for index, name in enumerate(tags)}
    matrix = np.zeros((len(values), len(tags)), dtype=np.int8)
    for row, text in enumerate(values.fillna("").astype(str)):
        for tag in text.split():
            if tag not in lookup:
                raise CompetitionDataError(f"{path}: row {row + 2}, column {column!r}: tag {tag!r} is not one of "
                                           f"the tags {shown_names(tags)}")
            matrix[row, lookup[tag]] = 1
    return matrix


def encode_targets(values: pd.Series, spec: CompetitionSpec, path: Path, column: str) -> np.ndarray:
    """A label column as targets: class indices (N,), or for multi-label a tag matrix (N, T)."""
    if spec.task == "multilabel":
        return encode_tags(values, spec.class_names, path, column)
    return encode_labels(values, spec.class_names, path, column)


def read_test_ids(spec: CompetitionSpec, raw_dir: Path) -> np.ndarray:
    """Test ids, in the sample submission's order."""
    path = raw_dir / spec.sample_submission
    frame = read_csv(path, [spec.submission_id_column])
    if frame.empty:
        raise CompetitionDataError(f"{path}: empty test set: the sample submission has no rows")
    check_unique(frame[spec.submission_id_column], path, spec.submission_id_column)
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
