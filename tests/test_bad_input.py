"""Bad input through the command line (issue 12), in-process: exit 1, one `error:` line naming the file and the
row or field, no traceback, nothing written."""

import stat
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.archives import unpack_archive
from tasks.errors import CompetitionDataError
from tests.factories import kaggle_zip

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
    "missing-key": (_spec('sample_submission = "sample_submission.csv"\n', ""),
                    ["missing keys ['sample_submission']"]),
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
    for name, (text, _) in SPECS.items():
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


def _create(files: Path, data_dir: Path, spec: str, archive: str = "digit-recognizer.zip") -> list[str]:
    return ["local", "create", "x", "--from", str(files / archive), "--solution",
            str(files / "digit-recognizer-solution.csv"), "--spec", spec, "--data-dir", str(data_dir)]


CASES = [pytest.param(f"{{files}}/{name}.toml", "digit-recognizer.zip", [f"{name}.toml", *expected], id=name)
         for name, (_, expected) in SPECS.items()]
CASES += [pytest.param("digit-recognizer", "crc-damaged.zip", ["crc-damaged.zip", "member 'train.csv' is damaged"],
                       id="crc-damaged-zip")]
CASES += [pytest.param("digit-recognizer", f"{name}.zip", [f"{name}.zip", *expected], id=name)
          for name, expected in HOSTILE_MESSAGES.items()]


@pytest.mark.parametrize("spec, archive, expected", CASES)
def test_bad_input_is_one_clear_error(files, tmp_path, spec, archive, expected):
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(app, _create(files, data_dir, spec.format(files=files), archive))
    output = result.output
    assert result.exit_code == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert all(part in errors[0] for part in expected), errors[0]
    assert "Traceback" not in output and 'File "' not in output
    assert not data_dir.exists() or not list(data_dir.rglob("*.*")), list(data_dir.rglob("*"))


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
