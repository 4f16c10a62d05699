"""A competition's spec inferred from its downloaded files, and specs written as hand-editable TOML.

Most image competitions follow one of the kit's layouts: the sample submission gives the submission's form and
id column; a CSV with pixel0..pixelN columns makes a `pixels_csv` competition; otherwise an id/label CSV plus
train*/test* image folders (or .7z/.zip archives of them) make an image one. Where the files could be read two
ways, a SpecError names the key to set in spec.toml beside them; the keys set there are taken as given.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import tomllib
from pathlib import Path

import pandas as pd
from PIL import Image

from tasks.competitions import IMAGE_EXTENSIONS, CompetitionSpec, spec_from_dict, unpack_archive
from tasks.errors import SpecError
from tasks.files import atomic_write_text

SPEC_FILE = "spec.toml"
LABEL_NAMES = ("label", "labels", "target", "class", "category")
ARCHIVE_SUFFIXES = (".7z", ".zip")
PIXEL_COLUMN = re.compile(r"pixel\d+")
REQUIRED_KEYS = tuple(field.name for field in dataclasses.fields(CompetitionSpec)
                      if field.default is dataclasses.MISSING and field.name != "slug")
logger = logging.getLogger("headstart")


class _Inference:
    """One competition's raw folder, the keys given in its spec.toml, and the error that names a key."""

    def __init__(self, slug: str, raw_dir: Path, given: dict):
        self.slug, self.raw_dir, self.given = slug, Path(raw_dir), given
        if not self.raw_dir.is_dir():
            raise SpecError(f"{self.raw_dir}: no downloaded files of {slug!r} to infer its spec from")
        self.files = sorted(entry.name for entry in self.raw_dir.iterdir()
                            if not entry.name.startswith(".") and entry.name != SPEC_FILE)

    def fail(self, reason: str, *keys: str) -> SpecError:
        return SpecError(f"cannot infer the spec of {self.slug!r} from {self.raw_dir} (files: {', '.join(self.files)}): "
                         f"{reason}; set {' and '.join(keys)} in {self.raw_dir / SPEC_FILE} (the other keys are "
                         "inferred), or pass a whole spec with --spec FILE.toml")

    def choose(self, key: str, candidates: list, what: str):
        """The given value of `key`, else the one candidate; none or several is an error naming the key."""
        if key in self.given:
            return self.given[key]
        if len(candidates) != 1:
            found = f"found {', '.join(map(str, candidates))}" if candidates else "found none"
            raise self.fail(f"could not tell {what} ({found})", key)
        return candidates[0]

    def header(self, name: str) -> list[str]:
        """A CSV's column names (its first line only)."""
        path = self.raw_dir / name
        try:
            return [str(column) for column in pd.read_csv(path, nrows=0).columns]
        except pd.errors.EmptyDataError:
            raise SpecError(f"{path}: empty file; expected a CSV with a header row") from None
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise SpecError(f"{path}: not a readable CSV ({error})") from None


def metric_from_hint(hint: str | None) -> str | None:
    """Kaggle's evaluation metric name ("Categorization Accuracy", "Multi Class Log Loss") as the kit's, or None."""
    words = (hint or "").lower().replace("_", " ").replace("-", " ")
    if "log" in words and "loss" in words or words.strip() in ("logloss", "mlogloss"):
        return "log_loss"
    return "accuracy" if "accuracy" in words else None


def infer_spec(slug: str, raw_dir: Path, metric_hint: str | None = None, given: dict | None = None) -> CompetitionSpec:
    """The spec of the competition whose files are in `raw_dir` (keys in `given` win); SpecError when unsure."""
    inference = _Inference(slug, raw_dir, dict(given or {}))
    values = {**_submission_keys(inference, metric_hint)}
    pixel_csvs = [name for name in inference.files if name.endswith(".csv") and name != values["sample_submission"]
                  and any(PIXEL_COLUMN.fullmatch(column) for column in inference.header(name))]
    layout = inference.given.get("layout") or ("pixels_csv" if pixel_csvs else "image")
    keys = _pixel_keys(inference, pixel_csvs) if layout == "pixels_csv" else _image_keys(inference, values)
    values.update(keys)
    if "class_names" not in values and "class_names" not in inference.given:
        values["class_names"] = _train_labels(inference, values["train_csv"], values["label_column"])
    return spec_from_dict({**values, **inference.given, "slug": slug}, source=f"the spec inferred for {slug!r}")


def _submission_keys(inference: _Inference, metric_hint: str | None) -> dict:
    """Sample submission, its id column, and the form: one label column, or one probability column per class."""
    samples = [name for name in inference.files if name.lower().endswith(".csv")
               and ("sample" in name.lower() or "submission" in name.lower())]
    sample = inference.choose("sample_submission", samples, "the sample submission")
    columns = inference.header(sample)
    if len(columns) < 2:
        raise inference.fail(f"{sample} has no answer column (columns: {', '.join(columns)})", "sample_submission")
    form = inference.given.get("submission_form") or ("label" if len(columns) == 2 else "probabilities")
    values = {"sample_submission": sample, "submission_id_column": columns[0], "submission_form": form}
    if form == "label":
        values["submission_label_column"] = columns[1]
    else:
        values["class_names"] = tuple(columns[1:])
    metric = inference.given.get("metric") or metric_from_hint(metric_hint)
    metric = metric or ("log_loss" if form == "probabilities" else "accuracy")
    if metric == "log_loss" and form == "label":
        raise inference.fail(f"Kaggle scores it by {metric_hint!r} but {sample} has one answer column "
                             f"({', '.join(columns)}), not one probability column per class", "metric",
                             "submission_form")
    return {**values, "metric": metric}


def _pixel_keys(inference: _Inference, pixel_csvs: list[str]) -> dict:
    """digit-recognizer's layout: a train CSV with a label and pixel columns, a test CSV with the pixels."""
    extra = {name: [column for column in inference.header(name) if not PIXEL_COLUMN.fullmatch(column)]
             for name in pixel_csvs}
    widest = [name for name in pixel_csvs if len(extra[name]) == max(map(len, extra.values()))]
    train_csv = inference.choose("train_csv", _named(pixel_csvs, "train") or widest, "the training CSV")
    rest = [name for name in pixel_csvs if name != train_csv]
    test_csv = inference.choose("test_csv", _named(rest, "test") or rest, "the test CSV")
    shared = [column for column in extra.get(train_csv, []) if column in extra.get(test_csv, [])]
    own = [column for column in extra.get(train_csv, []) if column not in shared]
    label = inference.choose("label_column", own if len(own) == 1 else _label_named(own), f"the label column of "
                             f"{train_csv} (columns: {', '.join(extra.get(train_csv, [])) or 'pixels only'})")
    count = sum(1 for column in inference.header(train_csv) if PIXEL_COLUMN.fullmatch(column))
    values = {"layout": "pixels_csv", "train_csv": train_csv, "test_csv": test_csv, "label_column": label,
              "image_shape": inference.given.get("image_shape") or _square_shape(inference, train_csv, count)}
    if len(shared) == 1:
        values["id_column"] = shared[0]
    return values


def _named(names: list[str], word: str) -> list[str]:
    """The names that contain `word`, where exactly one does (else none: the caller decides otherwise)."""
    matching = [name for name in names if word in name.lower()]
    return matching if len(matching) == 1 else []


def _label_named(columns: list[str]) -> list[str]:
    return [column for column in columns if column.lower() in LABEL_NAMES]


def _square_shape(inference: _Inference, train_csv: str, count: int) -> tuple[int, int, int]:
    """N pixel columns as a square image: side x side x 1, or side x side x 3 when N/3 is the square."""
    for channels in (1, 3):
        side = math.isqrt(count // channels)
        if side * side * channels == count:
            return side, side, channels
    raise inference.fail(f"{count} pixel columns in {train_csv} make no square image", "image_shape")


def _image_keys(inference: _Inference, values: dict) -> dict:
    """An id/label CSV plus train*/test* image folders (or archives of them, unpacked here)."""
    csvs = [name for name in inference.files if name.lower().endswith(".csv") and name != values["sample_submission"]]
    labelled = [name for name in csvs if len(inference.header(name)) >= 2]
    labelled = _named(labelled, "train") or _named(labelled, "label") or labelled
    train_csv = inference.choose("train_csv", labelled, "the CSV of training ids and labels")
    columns = inference.header(train_csv)
    id_column = inference.given.get("id_column") or columns[0]
    others = [column for column in columns if column != id_column]
    label_candidates = others if len(others) == 1 else [
        column for column in others if column.lower() in LABEL_NAMES or column == values.get("submission_label_column")]
    label = inference.choose("label_column", label_candidates, f"the label column of {train_csv} "
                             f"(columns: {', '.join(columns)})")
    folders = {split: _image_folder(inference, split) for split in ("train", "test")}
    layout = "image_folder" if (folders["train"][0], folders["test"][0]) == ("train", "test") else "image_csv"
    first_id = str(pd.read_csv(inference.raw_dir / train_csv, usecols=[id_column], dtype=str, nrows=1).iloc[0, 0])
    extension, shape = _first_image(inference, folders["train"][0], first_id)
    return {"layout": layout, "train_csv": train_csv, "id_column": id_column, "label_column": label,
            "train_images": folders["train"][0], "train_archive": folders["train"][1],
            "test_images": folders["test"][0], "test_archive": folders["test"][1],
            "image_extension": extension, "image_shape": shape}


def _image_folder(inference: _Inference, split: str) -> tuple[str, str | None]:
    """The split's image folder (`train*` / `test*`), and the archive it came in, unpacked here if need be."""
    key = f"{split}_images"
    folders = [name for name in inference.files if name.lower().startswith(split) and (inference.raw_dir / name).is_dir()]
    archives = [name for name in inference.files if name.lower().startswith(split) and name.endswith(ARCHIVE_SUFFIXES)]
    by_stem = {Path(name).stem: name for name in archives}
    folder = inference.choose(key, folders or list(by_stem), f"the folder of {split} images")
    archive = inference.given.get(f"{split}_archive") or by_stem.get(folder)
    if not (inference.raw_dir / folder).is_dir() and archive:
        unpack_archive(inference.raw_dir / archive, inference.raw_dir)
    if not (inference.raw_dir / folder).is_dir():
        raise inference.fail(f"no folder {folder}/ of {split} images (from {archive or 'no archive'})", key)
    return folder, archive


def _first_image(inference: _Inference, folder: str, image_id: str) -> tuple[str, tuple[int, int, int]]:
    """The image files' extension (from the first training id's file) and that image's shape."""
    directory = inference.raw_dir / folder
    given = inference.given.get("image_extension")
    matches = [directory / f"{image_id}{given}"] if given is not None else (
        [directory / image_id] if (directory / image_id).is_file() else
        [directory / f"{image_id}{suffix}" for suffix in (*IMAGE_EXTENSIONS, *(s.upper() for s in IMAGE_EXTENSIONS))])
    found = [path for path in matches if path.is_file()]
    if not found:
        raise inference.fail(f"no image file for the first training id {image_id!r} in {folder}/", "image_extension")
    try:
        with Image.open(found[0]) as image:
            channels = 1 if image.mode in ("L", "I", "I;16", "1") else 3
            shape = (image.height, image.width, channels)
    except Exception:  # PIL raises many types for broken files
        raise inference.fail(f"{found[0].name} in {folder}/ is not a readable image", "image_extension") from None
    return found[0].name[len(image_id):], shape


def _train_labels(inference: _Inference, train_csv: str, label_column: str) -> tuple[str, ...]:
    """The training labels, sorted (as numbers where they all are)."""
    path = inference.raw_dir / train_csv
    labels = pd.read_csv(path, usecols=[label_column], dtype=str)[label_column].dropna()
    unique = set(labels)
    if not unique:
        raise SpecError(f"{path}: no labelled rows under the header, so no classes to infer; expected one row per "
                        f"training image with its label in column {label_column!r}")
    if len(unique) == 1:
        raise inference.fail(f"column {label_column!r} of {train_csv} holds one label ({labels.iloc[0]!r}); a "
                             "classification needs two or more", "class_names")
    numeric = all(label.lstrip("-").isdigit() for label in unique)
    return tuple(sorted(unique, key=(lambda label: (int(label), label)) if numeric else None))


def read_spec_values(raw_dir: Path) -> dict:
    """The keys set in spec.toml beside the raw files (all of a spec, or only those inference could not tell)."""
    path = Path(raw_dir) / SPEC_FILE
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML ({error})") from None


def saved_spec(slug: str, raw_dir: Path) -> CompetitionSpec | None:
    """The spec saved in spec.toml beside the raw files; None when there is none or it sets only some keys."""
    values = read_spec_values(raw_dir)
    if any(key not in values for key in REQUIRED_KEYS):
        return None
    return spec_from_dict({**values, "slug": slug}, source=str(Path(raw_dir) / SPEC_FILE))


def infer_and_save_spec(slug: str, raw_dir: Path, metric_hint: str | None = None) -> CompetitionSpec:
    """Infer the spec (keys set in spec.toml win), write it to spec.toml, and say so in one line."""
    spec = infer_spec(slug, raw_dir, metric_hint, given=read_spec_values(raw_dir))
    path = write_spec_toml(spec, Path(raw_dir) / SPEC_FILE, header=INFERRED_HEADER.format(slug=slug))
    logger.warning("%s; written to %s: edit it to change anything", describe_spec(spec, metric_hint), path)
    return spec


INFERRED_HEADER = ("Inferred by headstart from the files in this folder. Edit any key and run again;\n"
                   "`headstart spec {slug}` shows the spec in use.")
COMMENTS = {
    "layout": "pixels_csv (label + pixel columns), image_folder or image_csv (id/label CSV + image folders)",
    "class_names": "in the order of the submission's probability columns, or of the labels",
    "submission_form": "label (one answer column) or probabilities (one column per class)",
    "metric": "accuracy or log_loss (log_loss needs submission_form probabilities)",
    "image_shape": "height, width, channels (for pixel CSVs; informative for image folders)",
}


def describe_spec(spec: CompetitionSpec, metric_hint: str | None = None) -> str:
    """One line: layout, classes, submission form and metric."""
    classes = ", ".join(spec.class_names[:5]) + (", ..." if spec.num_classes > 5 else "")
    answer = spec.submission_label_column if spec.submission_form == "label" else "one column per class"
    scored = f" (Kaggle: {metric_hint})" if metric_hint else ""
    return (f"spec of {spec.slug!r}: {spec.layout} from {spec.train_csv}, {spec.num_classes} classes ({classes}); "
            f"submission {spec.sample_submission}: {spec.submission_id_column} + {answer}; metric {spec.metric}{scored}")


def spec_toml(spec: CompetitionSpec, header: str = "") -> str:
    """The spec as a commented TOML file that tomllib reads back to the same spec; unset keys are commented out."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for field in dataclasses.fields(CompetitionSpec):
        value, comment = getattr(spec, field.name), COMMENTS.get(field.name)
        if value is None:
            lines.append(f"# {field.name} = (not used)")
            continue
        lines += [f"# {comment}"] if comment else []
        lines.append(f"{field.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_spec_toml(spec: CompetitionSpec, path: Path, header: str = "") -> Path:
    """Write the spec's TOML atomically; returns the path."""
    return atomic_write_text(Path(path), spec_toml(spec, header))


def _toml_value(value) -> str:
    if isinstance(value, tuple):
        items = [_toml_value(item) for item in value]
        inline = f"[{', '.join(items)}]"
        return inline if len(inline) <= 80 else "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    if isinstance(value, int):
        return str(value)
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = "".join(f"\\u{ord(character):04x}" if ord(character) < 0x20 or ord(character) == 0x7F
                      else "\\" + character if character in '"\\' else character for character in text)
    return f'"{escaped}"'
