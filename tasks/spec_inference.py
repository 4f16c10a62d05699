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

from tasks.competitions import CompetitionSpec, spec_from_dict
from tasks.errors import SpecError
from tasks.folder_inference import first_image, image_folder, test_folders
from tasks.metric_names import metric_from_hint
from tasks.spec_files import INFERRED_HEADER, describe_spec, spec_toml, write_spec_toml
from tasks.task_inference import TaskUnclear, infer_task, labels_per_answer

__all__ = ["SPEC_FILE", "infer_spec", "infer_and_save_spec", "metric_from_hint", "read_spec_values", "saved_spec",
           "spec_toml", "write_spec_toml", "describe_spec"]

SPEC_FILE = "spec.toml"
LABEL_NAMES = ("label", "labels", "target", "class", "category")
PIXEL_COLUMN = re.compile(r"pixel\d+")
FOLDER_LAYOUTS = ("class_folders", "filename_labels")  # labels from folder or file names: never several tags
SAMPLE_ROWS = 1000  # sample submission rows read to tell its form
REQUIRED_KEYS = tuple(field.name for field in dataclasses.fields(CompetitionSpec)
                      if field.default is dataclasses.MISSING and field.name != "slug")
logger = logging.getLogger("headstart")


class _Inference:
    """One competition's raw folder, the keys given in its spec.toml, and the error that names a key."""

    def __init__(self, slug: str, raw_dir: Path, given: dict, where: str | None = None, source: str | None = None,
                 notes: list | None = None):
        self.slug, self.raw_dir, self.given, self.notes = slug, Path(raw_dir), given, notes
        self.source = source or str(self.raw_dir)
        self.where = where or f"in {self.raw_dir / SPEC_FILE} (the other keys are inferred), or pass a whole spec " \
            "with --spec FILE.toml"
        if not self.raw_dir.is_dir():
            raise SpecError(f"{self.raw_dir}: no downloaded files of {slug!r} to infer its spec from")
        self.files = sorted(entry.name for entry in self.raw_dir.iterdir()
                            if not entry.name.startswith(".") and entry.name != SPEC_FILE)

    def fail(self, reason: str, *keys: str) -> SpecError:
        return SpecError(f"cannot infer the spec of {self.slug!r} from {self.source} (files: {', '.join(self.files)}): "
                         f"{reason}; set {' and '.join(keys)} {self.where}")

    def note(self, text: str) -> None:
        """Tell the user something the files suggest (logged, or kept for the caller to print)."""
        if self.notes is None:
            logger.warning("%s", text)
        else:
            self.notes.append(text)

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


def infer_spec(slug: str, raw_dir: Path, metric_hint: str | None = None, given: dict | None = None,
               where: str | None = None, source: str | None = None, notes: list | None = None) -> CompetitionSpec:
    """The spec of the competition whose files are in `raw_dir` (keys in `given` win); SpecError when unsure.
    `where`: where a user sets the keys inference could not tell (default: spec.toml beside the files); `source`:
    what errors call the files (default: raw_dir); `notes`: a list to keep notes in (default: logged)."""
    inference = _Inference(slug, raw_dir, dict(given or {}), where, source, notes)
    values = _sample_keys(inference)
    columns, answers = values.pop("columns"), values.pop("answers")
    csvs = [name for name in inference.files if name.lower().endswith(".csv") and name != values["sample_submission"]]
    pixel_csvs = [name for name in csvs if any(PIXEL_COLUMN.fullmatch(column) for column in inference.header(name))]
    labelled = [name for name in csvs if len(inference.header(name)) >= 2]
    layout = inference.given.get("layout") or ("pixels_csv" if pixel_csvs else "image_csv" if labelled else "folders")
    if layout == "pixels_csv":
        keys = _pixel_keys(inference, pixel_csvs, values)
    elif layout in ("image_csv", "image_folder"):
        keys = _image_keys(inference, labelled, values)
    else:
        keys = _folder_keys(inference, values)
    labels = keys.pop("labels")
    if labels.empty:
        raise SpecError(f"{raw_dir / keys.get('train_csv', '')}: no labelled rows under the header, so no classes to "
                        f"infer; expected one row per training image with its label in column "
                        f"{keys.get('label_column')!r}")
    metric = inference.given.get("metric") or metric_from_hint(metric_hint, labels_per_answer(answers, labels))
    if metric_hint and not metric:
        inference.note(f"Kaggle's metric {metric_hint!r} is not one the kit knows; the files decide (set metric "
                       "in spec.toml)")
    try:
        task = infer_task(columns, answers, labels, inference.given, metric, single=keys["layout"] in FOLDER_LAYOUTS)
    except TaskUnclear as unclear:
        raise inference.fail(unclear.reason, *unclear.keys) from None
    # the solution's truth column: the sample's answer column, or (one column per class) the training labels'
    values["submission_label_column"] = columns[1] if task["submission_form"] != "probabilities" else \
        keys.get("label_column", "label")
    return spec_from_dict({**values, **keys, **task, **inference.given, "slug": slug},
                          source=f"the spec inferred for {slug!r}")


def _sample_keys(inference: _Inference) -> dict:
    """Sample submission, its id column, its columns and (one answer column) its answers."""
    samples = [name for name in inference.files if name.lower().endswith(".csv")
               and ("sample" in name.lower() or "submission" in name.lower())]
    sample = inference.choose("sample_submission", samples, "the sample submission")
    columns = inference.header(sample)
    if len(columns) < 2:
        raise inference.fail(f"{sample} has no answer column (columns: {', '.join(columns)})", "sample_submission")
    answers = None
    if len(columns) == 2:
        answers = pd.read_csv(inference.raw_dir / sample, usecols=[1], dtype=str, keep_default_na=False,
                              nrows=SAMPLE_ROWS).iloc[:, 0]
    return {"sample_submission": sample, "submission_id_column": columns[0], "columns": columns, "answers": answers}


def _pixel_keys(inference: _Inference, pixel_csvs: list[str], values: dict) -> dict:
    """digit-recognizer's layout: a train CSV with a label and pixel columns, a test CSV with the pixels (and maybe
    the sample's id column, Kannada-MNIST's `id`); other labelled pixel CSVs are extra training data if asked."""
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
    keys = {"layout": "pixels_csv", "train_csv": train_csv, "test_csv": test_csv, "label_column": label,
            "image_shape": inference.given.get("image_shape") or _square_shape(inference, train_csv, count),
            "labels": _column(inference, train_csv, label)}
    if len(shared) == 1:
        keys["id_column"] = shared[0]
    elif values["submission_id_column"] in extra.get(test_csv, []):
        keys["test_id_column"] = values["submission_id_column"]
    also = [name for name in rest if name != test_csv and label in extra[name]]
    if also:
        inference.note(f"{', '.join(also)} also hold{'s' if len(also) == 1 else ''} labelled images: set "
                       f"extra_train_csvs = {_toml_list(also)} in the spec to train on them too")
    return keys


def _toml_list(names: list[str]) -> str:
    return "[" + ", ".join(f'"{name}"' for name in names) + "]"


def _column(inference: _Inference, name: str, column: str) -> pd.Series:
    return pd.read_csv(inference.raw_dir / name, usecols=[column], dtype=str)[column].dropna()


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


def _image_keys(inference: _Inference, labelled: list[str], values: dict) -> dict:
    """An id/label CSV plus train*/test* image folders (or archives of them, unpacked here)."""
    labelled = _named(labelled, "train") or _named(labelled, "label") or labelled
    train_csv = inference.choose("train_csv", labelled, "the CSV of training ids and labels")
    columns = inference.header(train_csv)
    id_column = inference.given.get("id_column") or columns[0]
    others = [column for column in columns if column != id_column]
    sample_answer = values.get("columns", [None, None])[1] if len(values.get("columns", [])) == 2 else None
    label_candidates = others if len(others) == 1 else [
        column for column in others if column.lower() in LABEL_NAMES or column == sample_answer]
    label = inference.choose("label_column", label_candidates, f"the label column of {train_csv} "
                             f"(columns: {', '.join(columns)})")
    first_id = str(pd.read_csv(inference.raw_dir / train_csv, usecols=[id_column], dtype=str, nrows=1).iloc[0, 0])
    train = image_folder(inference, "train", [first_id])
    extension, shape = first_image(inference, train[0], first_id)
    tests = test_folders(inference, values)
    layout = "image_folder" if (train[0], tests[0][0]) == ("train", "test") and len(tests) == 1 else "image_csv"
    return {"layout": layout, "train_csv": train_csv, "id_column": id_column, "label_column": label,
            "train_images": train[0], "train_archive": train[1], "image_extension": extension, "image_shape": shape,
            **_test_keys(tests), "labels": _column(inference, train_csv, label)}


def _test_keys(tests: list[tuple[str, str | None]]) -> dict:
    return {"test_images": tests[0][0], "test_archive": tests[0][1],
            "extra_test_images": tuple(folder for folder, _ in tests[1:])}


def _folder_keys(inference: _Inference, values: dict) -> dict:
    """No labels CSV: one folder per class (plant-seedlings) or labels in the file names (dogs-vs-cats)."""
    train_folder, archive = image_folder(inference, "train", [])
    folder = inference.raw_dir / train_folder
    entries = [entry for entry in folder.iterdir() if not entry.name.startswith(".")]
    folders, files = [entry for entry in entries if entry.is_dir()], [entry for entry in entries if entry.is_file()]
    layout = inference.given.get("layout") or ("class_folders" if folders and not files else
                                               "filename_labels" if files and not folders else None)
    if layout is None:
        raise inference.fail(f"{train_folder}/ holds {len(folders)} folders and {len(files)} files, and no CSV names "
                             "the training labels", "layout")
    if layout == "class_folders":
        pairs = [(entry.name, image) for entry in sorted(folders) for image in sorted(entry.iterdir())
                 if image.is_file() and not image.name.startswith(".")]
    else:
        pairs = [(image.name.split(".")[0], image) for image in sorted(files)]
    if len({label for label, _ in pairs}) < 2 or not pairs:
        raise inference.fail(f"the images in {train_folder}/ show fewer than two labels", "layout", "class_names")
    tests = test_folders(inference, values)
    first_test = str(pd.read_csv(inference.raw_dir / values["sample_submission"], usecols=[0], dtype=str,
                                 nrows=1).iloc[0, 0])
    extension, _ = first_image(inference, tests[0][0], first_test, what="test")
    _, shape = first_image(inference, train_folder, pairs[0][1].relative_to(folder).as_posix(), "")
    return {"layout": layout, "train_csv": None, "train_images": train_folder, "train_archive": archive,
            "image_extension": extension, "image_shape": shape, **_test_keys(tests),
            "labels": pd.Series([label for label, _ in pairs])}


def read_spec_values(raw_dir: Path) -> dict:
    """The keys set in spec.toml beside the raw files (all of a spec, or only those inference could not tell)."""
    path = Path(raw_dir) / SPEC_FILE
    return read_spec_file_values(path) if path.is_file() else {}


def read_spec_file_values(path: Path) -> dict:
    """The keys a spec TOML file sets."""
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
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
