"""Bad input through the command line (issue 12), in-process: exit 1 (2 for a usage error: an option's value of the
wrong type or out of range, a missing value), the whole output one `error:` line naming the file and the row or
field, no traceback, nothing written."""

import io
import shutil
import stat
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.archives import unpack_archive
from tasks.errors import CompetitionDataError
from tests.factories import kaggle_zip, write_digit_recognizer

GOOD_SPEC = '''slug = "tiny"
layout = "pixels_csv"
class_names = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
train_csv = "train.csv"
test_csv = "test.csv"
label_column = "label"
image_shape = [28, 28, 1]
sample_submission = "sample_submission.csv"
submission_id_column = "ImageId"
submission_label_column = "Label"
'''


def _spec(replace: str, by: str) -> str:
    assert replace in GOOD_SPEC
    return GOOD_SPEC.replace(replace, by)


SPECS = {  # name: (spec text, what the one error line must say)
    "class-names-a-number": (_spec('class_names = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]',
                                   "class_names = 10"), ["key 'class_names' must be a list of strings", "int 10"]),
    "class-names-a-string": (_spec('class_names = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]',
                                   'class_names = "0123456789"'), ["key 'class_names'", "str '0123456789'"]),
    "class-names-numbers": (_spec('class_names = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]',
                                  "class_names = [0, 1]"), ["key 'class_names' must be a list of strings"]),
    "image-shape-text": (_spec("image_shape = [28, 28, 1]", 'image_shape = "28x28"'),
                         ["key 'image_shape' must be [height, width, channels]", "str '28x28'"]),
    "image-shape-two": (_spec("image_shape = [28, 28, 1]", "image_shape = [28, 28]"),
                        ["key 'image_shape'", "three positive integers", "list [28, 28]"]),
    "image-shape-zero": (_spec("image_shape = [28, 28, 1]", "image_shape = [28, 0, 1]"), ["key 'image_shape'"]),
    "image-shape-text-item": (_spec("image_shape = [28, 28, 1]", 'image_shape = [28, 28, "1"]'),
                              ["key 'image_shape'"]),
    "train-csv-a-number": (_spec('train_csv = "train.csv"', "train_csv = 5"),
                           ["key 'train_csv' must be a string", "int 5"]),
    "test-csv-a-bool": (_spec('test_csv = "test.csv"', "test_csv = true"), ["key 'test_csv' must be a string"]),
    "layout-a-list": (_spec('layout = "pixels_csv"', 'layout = ["pixels_csv"]'), ["key 'layout' must be a string"]),
    "layout-unknown": (_spec('layout = "pixels_csv"', 'layout = "pixels"'), ["layout must be one of", "'pixels'"]),
    "metric-not-of-the-task": (_spec('submission_label_column = "Label"', 'submission_label_column = "Label"\n'
                                     'metric = "mean_f2"'), ["metric mean_f2 does not fit task multiclass",
                                                             "scored by one of accuracy, log_loss, roc_auc"]),
    "task-unknown": (_spec('layout = "pixels_csv"', 'layout = "pixels_csv"\ntask = "regression"'),
                     ["task must be one of ('multiclass', 'binary', 'multilabel', 'ordinal', 'ranking')"]),
    "unknown-key": (GOOD_SPEC + 'colour = "red"\n', ["unknown keys ['colour']"]),
    "not-toml": (GOOD_SPEC + "image_shape = [\n", ["not valid TOML"]),
    "one-class": (_spec('class_names = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]', 'class_names = ["0"]'),
                  ["class_names needs at least two classes"]),
    "duplicate-classes": (_spec('class_names = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]',
                                'class_names = ["0", "0"]'), ["class_names has duplicates"]),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-input-cli")
    kaggle_zip(root, "digit-recognizer")
    for name, (text, _) in {**SPECS, **PARTIAL_SPECS}.items():
        (root / f"{name}.toml").write_text(text)
    good = (root / "digit-recognizer.zip").read_bytes()
    with zipfile.ZipFile(root / "digit-recognizer.zip") as zipped:
        member = zipped.getinfo("train.csv")
        start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra)
    damaged = bytearray(good)
    damaged[start + 10] ^= 0xFF  # one byte of train.csv's compressed data: its CRC no longer matches
    (root / "crc-damaged.zip").write_bytes(bytes(damaged))
    for name, member in HOSTILE_ENTRIES.items():
        _with_member(root / "digit-recognizer.zip", root / f"{name}.zip", member)
    sample = pd.read_csv(root / "digit-recognizer-files" / "sample_submission.csv", dtype=str)
    _replaced(root / "digit-recognizer.zip", root / "sample-wrong-header.zip", "sample_submission.csv",
              sample.rename(columns={"ImageId": "Id"}).to_csv(index=False))
    _replaced(root / "digit-recognizer.zip", root / "sample-one-row-short.zip", "sample_submission.csv",
              sample.iloc[:-1].to_csv(index=False))
    solution = pd.read_csv(root / "digit-recognizer-solution.csv", dtype=str)
    for name, (edit, _) in SOLUTIONS.items():
        edit(solution).to_csv(root / f"{name}.csv", index=False)
    return root


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, str]:
    info = zipfile.ZipInfo(name)
    info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16  # as `zip --symlinks` stores a link
    return info, target


HOSTILE_ENTRIES = {  # archive name: (the added member, its data), what extraction used to do with it
    "dotdot-entry": ("../escaped.csv", "a,b\n"),  # written as escaped.csv inside the folder
    "deep-dotdot-entry": ("train/../../../escaped.csv", "a,b\n"),
    "absolute-entry": ("/tmp/headstart-escaped.csv", "a,b\n"),  # written as tmp/headstart-escaped.csv
    "symlink-entry": _symlink("train.csv.link", "/etc/passwd"),  # written as a file holding "/etc/passwd"
    "zip-bomb": ("bomb.csv", "0" * (17 * 2**20)),  # 17 MB of zeros in a 17 KB member
}
HOSTILE_MESSAGES = {"dotdot-entry": ["entry '../escaped.csv'", "leaves the folder"],
                    "deep-dotdot-entry": ["entry 'train/../../../escaped.csv'", "leaves the folder"],
                    "absolute-entry": ["entry '/tmp/headstart-escaped.csv'", "absolute path"],
                    "symlink-entry": ["entry 'train.csv.link'", "symbolic link"],
                    "zip-bomb": ["entry 'bomb.csv'", "zip bomb"]}


def _with_member(good: Path, archive: Path, member) -> Path:
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for info in source.infolist():
            zipped.writestr(info, source.read(info))
        zipped.writestr(*member)
    return archive


def _replaced(good: Path, archive: Path, name: str, text: str) -> Path:
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for info in source.infolist():
            zipped.writestr(info, text if info.filename == name else source.read(info))
    return archive


def _create(files: Path, data_dir: Path, spec: str, archive: str = "digit-recognizer.zip") -> list[str]:
    return ["local", "create", "x", "--from", str(files / archive), "--solution",
            str(files / "digit-recognizer-solution.csv"), "--spec", spec, "--data-dir", str(data_dir)]


PARTIAL_SPECS = {  # a spec.toml of only some keys: the rest inferred from the zip
    "partial-spec-wrong-metric": ('metric = "roc_auc"\n', [
        "digit-recognizer.zip (files: sample_submission.csv, test.csv, train.csv): metric roc_auc scores "
        "probabilities, but the sample submission has one answer column (ImageId, Label)",
        "set metric and submission_form in a spec.toml and pass it with --spec"]),
}
CASES = [pytest.param(f"{{files}}/{name}.toml", "digit-recognizer.zip", [f"{name}.toml", *expected], id=name)
         for name, (_, expected) in SPECS.items()]
CASES += [pytest.param(f"{{files}}/{name}.toml", "digit-recognizer.zip", expected, id=name)
          for name, (_, expected) in PARTIAL_SPECS.items()]
CASES += [pytest.param("digit-recognizer", "crc-damaged.zip", ["crc-damaged.zip", "member 'train.csv' is damaged"],
                       id="crc-damaged-zip")]
CASES += [pytest.param("digit-recognizer", f"{name}.zip", [f"{name}.zip", *expected], id=name)
          for name, expected in HOSTILE_MESSAGES.items()]
CASES += [pytest.param("digit-recognizer", "sample-wrong-header.zip", [
    "sample-wrong-header.zip: sample_submission.csv: wrong header ['Id', 'Label']; the spec expects ['ImageId', "
    "'Label'] (submission_id_column and submission_label_column)"], id="sample-wrong-header"),
          pytest.param("digit-recognizer", "sample-one-row-short.zip", [
              "sample-one-row-short.zip: sample_submission.csv: 19 rows, but the test set has 20 images (as "
              "digit-recognizer-solution.csv has); id '20' is missing from it; expected one row per test id"],
              id="sample-one-row-short")]


SOLUTIONS = {  # solution file: (edit of the good solution, what the one error line must say)
    "solution-duplicate-id": (lambda frame: frame.assign(ImageId=frame["ImageId"].replace("7", "3")),
                              ["row 8, column 'ImageId': duplicate id '3' (also at row 4)"]),
    "solution-unknown-id": (lambda frame: frame.assign(ImageId=frame["ImageId"].replace("7", "700")),
                            ["row 8, column 'ImageId': id '700' is not in the sample submission"]),
    "solution-missing-id": (lambda frame: frame.drop(index=[6]), ["1 of the sample submission's ids are missing",
                                                                  "the first '7'"]),
    "solution-label-300": (lambda frame: frame.assign(Label=frame["Label"].replace("3", "300")),
                           ["row 5, column 'Label': label '300' is not one of"]),
}
CASES += [pytest.param("digit-recognizer", "digit-recognizer.zip", [f"{name}.csv", *expected], name, id=name)
          for name, (_, expected) in SOLUTIONS.items()]


@pytest.mark.parametrize("spec, archive, expected, solution", [
    case if len(case.values) == 4 else pytest.param(*case.values, None, id=case.id) for case in CASES])
def test_bad_input_is_one_clear_error(files, tmp_path, spec, archive, expected, solution):
    data_dir = tmp_path / "data"
    arguments = _create(files, data_dir, spec.format(files=files), archive)
    if solution:
        arguments[arguments.index("--solution") + 1] = str(files / f"{solution}.csv")
    assert_one_error_line(CliRunner().invoke(app, arguments), 1, expected)
    assert not data_dir.exists() or not list(data_dir.rglob("*.*")), list(data_dir.rglob("*"))


def assert_one_error_line(result, exit_code: int, expected: list[str]) -> None:
    """The whole output (stdout and stderr) is one `error:` line holding every expected part; no traceback."""
    output = result.output
    assert result.exit_code == exit_code, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an escaped exception
    lines = output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert all(part in lines[0] for part in expected), lines[0]
    assert "Traceback" not in output and 'File "' not in output


@pytest.fixture(scope="module")
def data_template(digits_store, files, practice, tmp_path_factory) -> Path:
    """A data folder where commands have something to work on: the digits competition, downloaded (its sample
    submission at hand for `submit`), and the raw files of two Kaggle competitions whose train.csv is empty or
    only a header (for `spec --backend kaggle`, which infers a spec from the files already there)."""
    from tasks.backends import open_local_backend
    from tasks.backends.local import create_local_competition, spec_for_zip
    from tasks.paths import DataPaths

    root = tmp_path_factory.mktemp("bad-input-data") / "data"
    shutil.copytree(digits_store, root)
    paths = DataPaths(root)
    open_local_backend("digits", paths).download(paths.raw("digits"))
    kaggle = paths.for_backend("kaggle")
    for name, text in (("empty-train", ""), ("header-only-train", None)):
        write_digit_recognizer(kaggle.raw(name))
        train = kaggle.raw(name) / "train.csv"
        train.write_text(text if text is not None else train.read_text().splitlines()[0] + "\n")
    sample = pd.read_csv(paths.raw("digits") / "sample_submission.csv", dtype=str)
    sample.rename(columns={"ImageId": "Id"}).to_csv(files / "wrong-header.csv", index=False)
    for name, local in (("aerial-cactus-identification", "cactus"), ("planet-understanding-the-amazon-from-space",
                                                                     "planet")):
        archive, solution = practice[name]
        backend = create_local_competition(paths.local(local), local, spec_for_zip(local, archive)[0], archive,
                                           solution)
        backend.download(paths.raw(local))
        sample = pd.read_csv(paths.raw(local) / backend.spec.sample_submission, dtype=str)
        column = backend.spec.submission_label_column
        sample[column] = ["0.2", "1.5", *sample[column].iloc[2:]] if local == "cactus" else \
            ["animal", "animal fins", *sample[column].iloc[2:]]
        sample.to_csv(files / f"{local}-bad-answer.csv", index=False)
    return root


COMMANDS = [  # arguments ({files}: the module's files), exit code, what the one error line must say
    pytest.param(["run", "digits", "--member", "softmax#x"], 1,
                 ["member 'softmax#x': the seed after '#' must be a whole number"], id="member-seed-not-a-number"),
    pytest.param(["run", "digits", "--member", "cnn@resnet50"], 1,
                 ["member 'cnn@resnet50'", "pixel members (softmax, cnn, svm) take none"], id="member-pixel-with-backbone"),
    pytest.param(["run", "digits", "--member", "logistic", "--backbone", "file:model.h5"], 1,
                 ["backbone 'file:model.h5': expected file:PATH.keras"], id="backbone-file-not-keras"),
    pytest.param(["run", "digits", "--member", "softmax", "--view", "sideways"], 1,
                 ["unknown view 'sideways' (--view)", "['identity', 'flip']"], id="unknown-view"),
    pytest.param(["run", "nope"], 1, ["no local competition 'nope'", "known: ['cactus', 'digits', 'planet']",
                                      "headstart local create nope"], id="run-unknown-local-competition"),
    pytest.param(["run", "digits", "--folds", "0"], 2, ["'--folds'", "greater than or equal to 2", "--help"],
                 id="folds-zero"),
    pytest.param(["run", "digits", "--time-limit", "soon"], 2, ["'--time-limit'", "valid number"],
                 id="time-limit-not-a-number"),
    pytest.param(["run", "digits", "--time-limit", "-5"], 2, ["'--time-limit'", "greater than or equal to 0.1"],
                 id="time-limit-negative"),
    pytest.param(["run", "digits", "--member"], 2, ["'--member' requires an argument"], id="member-without-value"),
    pytest.param(["local", "create", "x", "--from", "{files}/digit-recognizer.zip", "--solution",
                  "{files}/digit-recognizer-solution.csv", "--spec", "digit-recognizer", "--daily-limit", "0"], 2,
                 ["'--daily-limit'", "greater than or equal to 1"], id="daily-limit-zero"),
    pytest.param(["submit", "digits", "{files}/wrong-header.csv"], 1,
                 ["wrong-header.csv: wrong header ['Id', 'Label']; expected ['ImageId', 'Label']"],
                 id="submission-wrong-header"),
    pytest.param(["submit", "cactus", "{files}/cactus-bad-answer.csv"], 1,
                 ["cactus-bad-answer.csv: row 3, column 'has_cactus': '1.5' is not a probability in [0, 1]"],
                 id="submission-probability-over-one"),
    pytest.param(["submit", "planet", "{files}/planet-bad-answer.csv"], 1,
                 ["planet-bad-answer.csv: row 3, column 'tags': tag 'fins' is not one of the tags ['animal', "
                  "'four_legs',"], id="submission-tag-not-in-training"),
    pytest.param(["spec", "empty-train", "--backend", "kaggle", "--write"], 1,
                 ["01_raw/kaggle/empty-train/train.csv: empty file; expected a CSV with a header row"], id="train-csv-empty"),
    pytest.param(["spec", "header-only-train", "--backend", "kaggle", "--write"], 1,
                 ["01_raw/kaggle/header-only-train/train.csv: no labelled rows under the header", "column 'label'"],
                 id="train-csv-header-only"),
]


def _files_and_times(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("arguments, exit_code, expected", COMMANDS)
def test_bad_command_line_is_one_clear_error(files, data_template, tmp_path, arguments, exit_code, expected):
    """Other commands than `local create`: run's options (checked before Prefect or any stage starts), submit, spec."""
    data_dir = tmp_path / "data"
    shutil.copytree(data_template, data_dir)
    before = _files_and_times(data_dir)
    result = CliRunner().invoke(app, [argument.format(files=files) for argument in arguments],
                                env={"HEADSTART_DATA": str(data_dir)})  # --data-dir's variable: no option to parse
    assert_one_error_line(result, exit_code, expected)
    assert _files_and_times(data_dir) == before  # nothing written, not even a log line or a spec.toml


@pytest.mark.parametrize("name", sorted(HOSTILE_MESSAGES))
def test_a_hostile_archive_is_refused_before_anything_is_unpacked(files, tmp_path, name):
    """Unpacking (a download, a dataset a kernel mounts) refuses the whole archive, naming the entry; it used to
    rewrite the entry inside the folder."""
    destination = tmp_path / "raw"
    with pytest.raises(CompetitionDataError) as caught:
        unpack_archive(files / f"{name}.zip", destination)
    assert all(part in str(caught.value) for part in [f"{name}.zip", *HOSTILE_MESSAGES[name]]), caught.value
    assert not destination.exists() or not list(destination.rglob("*"))
    assert not (tmp_path / "escaped.csv").exists()


def test_an_archive_over_the_size_limit_is_refused(files, tmp_path):
    with pytest.raises(CompetitionDataError, match=r"digit-recognizer.zip: unpacks to [\d,]+ bytes, over the limit"):
        unpack_archive(files / "digit-recognizer.zip", tmp_path / "raw", max_bytes=100_000)
    assert not (tmp_path / "raw").exists()


def test_an_archive_larger_than_the_free_disk_is_refused(prefect_server, digits_store, tmp_path, monkeypatch):
    """`headstart run` on a disk with 100,000 bytes free: the competition's zip is refused before anything is
    unpacked, in one error line that says how much it needs and where, and no stage after it runs."""
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    real_disk_usage = shutil.disk_usage

    def small_disk(path):
        usage = real_disk_usage(path)
        return usage._replace(free=100_000) if Path(path).resolve().is_relative_to(data_dir) else usage

    monkeypatch.setattr(shutil, "disk_usage", small_disk)  # the one that tasks/archives.py calls
    result = CliRunner().invoke(app, ["run", "digits", "--data-dir", str(data_dir), "--member", "softmax",
                                      "--no-submit"])
    with zipfile.ZipFile(data_dir / "local" / "digits" / "public" / "digits.zip") as zipped:
        needed = sum(member.file_size for member in zipped.infolist())
    assert_one_error_line(result, 1, [f"digits.zip: unpacks to {needed:,} bytes but {data_dir / '01_raw'}",
                                      "has only 100,000 free; free some space and run again"])
    assert not (data_dir / "01_raw" / "local" / "digits").exists()  # nothing unpacked, not even its folder
    assert not (data_dir / "02_index").exists()


def test_a_link_in_a_7z_archive_is_refused(tmp_path):
    import py7zr

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.png").write_bytes(b"png")
    (tmp_path / "images" / "2.png").symlink_to("/etc/passwd")
    with py7zr.SevenZipFile(tmp_path / "train.7z", "w") as archive:
        archive.writeall(tmp_path / "images", "train")
    with pytest.raises(CompetitionDataError, match=r"train.7z: entry 'train/2.png' is a symbolic link"):
        unpack_archive(tmp_path / "train.7z", tmp_path / "raw")
    assert not list((tmp_path / "raw").rglob("*"))


def _edit_csv(path: Path, edit) -> None:
    edit(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)


def _swap_columns(first: str, second: str):
    return lambda frame: frame.rename(columns={first: second, second: first})


DATA = {  # name: (layout, file, its edit, what the error must say)
    "pixel-columns-out-of-order": ("digits", "train.csv", _swap_columns("pixel5", "pixel7"),
                                   ["train.csv: pixel columns out of order", "position 6 is 'pixel7', expected "
                                                                             "'pixel5'"]),
    "pixel-column-missing": ("digits", "test.csv", lambda frame: frame.drop(columns=["pixel300"]),
                             ["test.csv: wrong pixel count", "found 783; column 'pixel300' is missing"]),
    "pixel-300": ("digits", "train.csv", lambda frame: frame.assign(pixel10=frame["pixel10"].where(
        frame.index != 2, "300")), ["train.csv: row 4, column 'pixel10': pixel 300 is not an integer in 0..255"]),
    "pixel-negative": ("digits", "test.csv", lambda frame: frame.assign(pixel0="-1"),
                       ["test.csv: row 2, column 'pixel0': pixel -1 is not"]),
    "id-outside-raw-folder": ("cifar", "trainLabels.csv", lambda frame: frame.assign(
        id=frame["id"].where(frame.index != 4, "../../outside")),
        ["trainLabels.csv: row 6: id '../../outside' names a file outside"]),
    "absolute-id": ("cifar", "trainLabels.csv", lambda frame: frame.assign(
        id=frame["id"].where(frame.index != 0, "/etc/passwd")), ["trainLabels.csv: row 2: id '/etc/passwd'"]),
    "test-id-outside-raw-folder": ("cifar", "sampleSubmission.csv", lambda frame: frame.assign(
        id=frame["id"].where(frame.index != 1, "../train/1")), ["sampleSubmission.csv: row 3: id '../train/1'"]),
}


@pytest.mark.parametrize("name", sorted(DATA))
def test_bad_competition_files_are_one_clear_error(tmp_path, name):
    """What indexing (the first step of `headstart run`) says about a competition's files."""
    from tasks.competitions import CIFAR_10, DIGIT_RECOGNIZER
    from tasks.layouts import load_competition
    from tests.factories import write_cifar, write_digit_recognizer

    layout, file_name, edit, expected = DATA[name]
    raw = tmp_path / "raw"
    (write_digit_recognizer if layout == "digits" else write_cifar)(raw, **({"num_train": 20} if layout == "cifar"
                                                                            else {}))
    (tmp_path / "outside.png").write_bytes((raw / "train" / "1.png").read_bytes()) if layout == "cifar" else None
    _edit_csv(raw / file_name, edit)
    with pytest.raises(CompetitionDataError) as caught:
        load_competition(DIGIT_RECOGNIZER if layout == "digits" else CIFAR_10, raw)
    assert all(part in str(caught.value) for part in expected), caught.value
    assert "np." not in str(caught.value)


@pytest.fixture(scope="module")
def practice(tmp_path_factory) -> dict:
    """Small practice competitions of four task types (tasks/backends/practice_layouts.py), zipped, and two layouts
    that can be read two ways."""
    from tasks.backends.practice_layouts import build_practice, digit_pairs, pattern_source

    root = tmp_path_factory.mktemp("bad-input-practice")
    sources = {"cifar": pattern_source(300, size=8), "mnist": pattern_source(200, size=8, channels=1,
                                                                             class_names=tuple("0123456789"))}
    sources["digit-pairs"] = digit_pairs(sources["mnist"], 200)
    built = {name: build_practice(name, sources[kind], root) for name, kind in (
        ("aerial-cactus-identification", "cifar"), ("planet-understanding-the-amazon-from-space", "cifar"),
        ("aptos2019-blindness-detection", "mnist"), ("humpback-whale-identification", "digit-pairs"),
        ("dogs-vs-cats-redux-kernels-edition", "cifar"))}
    for name, (_, solution) in built.items():
        for case, (practice_name, edit, _, _) in TASK_CASES.items():
            if practice_name == name and edit:
                edit(pd.read_csv(solution, dtype=str, keep_default_na=False)).to_csv(root / f"{case}.csv", index=False)
    cats, _ = built["dogs-vs-cats-redux-kernels-edition"]
    with zipfile.ZipFile(cats) as zipped, zipfile.ZipFile(io.BytesIO(zipped.read("train.zip"))) as train:
        image = train.read("train/cat.0.jpg")
        entries = {info.filename: train.read(info) for info in train.infolist()}
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as train:
        for name, data in {**entries, "train/extra/cat.jpg": image}.items():
            train.writestr(name, data)
    _replaced(cats, root / "layout-two-ways.zip", "train.zip", nested.getvalue())
    planet, _ = built["planet-understanding-the-amazon-from-space"]
    with zipfile.ZipFile(planet) as zipped:
        first = zipped.read("test-jpg/test_0.jpg")
    _with_member(planet, root / "test-folders-two-ways.zip", ("test-jpg-additional/test_0.jpg", first))
    return {**built, "root": root}


def _row(column: str, value: str):
    return lambda frame: frame.assign(**{column: [frame[column].iloc[0], value, *frame[column].iloc[2:]]})


TASK_CASES = {  # case: (practice competition, edit of its solution, options, what the one error line must say)
    "solution-tag-not-in-training": ("planet-understanding-the-amazon-from-space", _row("tags", "animal fins"), [],
                                     ["solution-tag-not-in-training.csv: row 3, column 'tags': tag 'fins' is not one "
                                      "of the tags ['animal', 'four_legs', 'has_wings',"]),
    "solution-five-grades": ("aptos2019-blindness-detection", _row("diagnosis", "1 2 3 4 0"), [],
                             ["solution-five-grades.csv: row 3, column 'diagnosis': '1 2 3 4 0' holds 5 labels; "
                              "expected one"]),
    "solution-grade-out-of-range": ("aptos2019-blindness-detection", _row("diagnosis", "7"), [],
                                    ["solution-grade-out-of-range.csv: row 3, column 'diagnosis': grade '7' is not one "
                                     "of the grades ['0', '1', '2', '3', '4']"]),
    "solution-five-whales": ("humpback-whale-identification", _row("Id", "new_whale new_whale new_whale new_whale "
                                                                   "new_whale"), [],
                             ["solution-five-whales.csv: row 3, column 'Id': ", "holds 5 labels; expected one"]),
    "metric-unknown": ("aerial-cactus-identification", None, ["--metric", "auc"],
                       ["--metric 'auc': known metrics are accuracy, log_loss, roc_auc, f1_micro, f1_macro, mean_f1, "
                        "mean_f2, map@1,", "quadratic_weighted_kappa"]),
    "metric-not-for-the-files": ("aerial-cactus-identification", None, ["--metric", "quadratic_weighted_kappa"],
                                 ["aerial-cactus-identification.zip", "metric quadratic_weighted_kappa scores ordinal "
                                  "competitions, but the files read as a binary one (submission form probability)",
                                  "set metric and task in a spec.toml and pass it with --spec"]),
    "layout-two-ways": ("layout-two-ways", None, [],
                        ["layout-two-ways.zip", "train/ holds 1 folders and", "files, and no CSV names the training "
                         "labels; set layout in a spec.toml"]),
    "test-folders-two-ways": ("test-folders-two-ways", None, [],
                              ["test-folders-two-ways.zip", "could not tell the folder of test images (found test-jpg, "
                               "test-jpg-additional; 2 hold the sample's first id 'test_0'); set test_images"]),
}


@pytest.mark.parametrize("case", sorted(TASK_CASES))
def test_bad_task_input_is_one_clear_error(practice, tmp_path, case):
    """`local create` with no --spec: a solution in the wrong form for its task, a metric not in the list or not
    for the files, a layout that can be read two ways."""
    name, edit, options, expected = TASK_CASES[case]
    archive = practice[name][0] if name in practice else practice["root"] / f"{name}.zip"
    solution = practice["root"] / f"{case}.csv" if edit else practice.get(name, (None, practice[
        "dogs-vs-cats-redux-kernels-edition"][1] if name == "layout-two-ways" else practice[
        "planet-understanding-the-amazon-from-space"][1]))[1]
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(app, ["local", "create", "x", "--from", str(archive), "--solution", str(solution),
                                      *options, "--data-dir", str(data_dir)])
    assert_one_error_line(result, 1, expected)
    assert not data_dir.exists() or not list(data_dir.rglob("*.*")), list(data_dir.rglob("*"))
