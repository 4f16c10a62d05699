import sys

import numpy as np
import pandas as pd
import pytest

from tasks.competitions import (
    BUILTIN_SPECS,
    CIFAR_10,
    DIGIT_RECOGNIZER,
    load_spec_file,
    resolve_spec,
    unpack_archive,
)
from tasks.errors import CompetitionDataError, SpecError
from tasks.layouts import load_competition, unpack_image_archives
from tests.factories import write_cifar, write_digit_recognizer


@pytest.fixture
def digit_files(tmp_path):
    write_digit_recognizer(tmp_path)
    return tmp_path


@pytest.fixture
def cifar_files(tmp_path):
    write_cifar(tmp_path)
    return tmp_path


def test_builtin_specs_are_registered():
    assert BUILTIN_SPECS["digit-recognizer"].submission_id_column == "ImageId"
    assert CIFAR_10.num_classes == 10 and CIFAR_10.train_archive == "train.7z"


def test_loads_digit_recognizer(digit_files):
    data = load_competition(DIGIT_RECOGNIZER, digit_files)
    assert data.train_pixels.shape == (60, 28, 28, 1) and data.train_pixels.dtype == np.uint8
    assert data.test_pixels.shape == (20, 28, 28, 1)
    assert list(data.test_ids[:3]) == ["1", "2", "3"]
    assert list(data.train_labels[:3]) == [0, 1, 2]


def test_loads_cifar_folders(cifar_files):
    data = load_competition(CIFAR_10, cifar_files)
    assert len(data.train_images) == 30 and data.train_images[0].endswith("train/1.png")
    assert data.train_labels[1] == CIFAR_10.class_names.index("automobile")


def test_loads_cifar_7z_archives(tmp_path):
    write_cifar(tmp_path, archives=True)
    assert not (tmp_path / "train").exists()
    unpack_image_archives(CIFAR_10, tmp_path)
    data = load_competition(CIFAR_10, tmp_path)
    assert len(data.train_images) == 30 and len(data.test_images) == 10


FAKE_7Z = """#!{python}
# A stand-in for p7zip's `7z` with its command line (x -y -o<dir> <archive>), as Kaggle's image has it.
import sys, py7zr
open({log!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
command, yes, output, archive = sys.argv[1:]
assert (command, yes) == ("x", "-y") and output.startswith("-o")
py7zr.SevenZipFile(archive).extractall(output[2:])
"""


def test_7z_archives_without_py7zr_use_the_7z_command(tmp_path, monkeypatch):
    """Kaggle's notebook image ships the 7z command, not py7zr."""
    write_cifar(tmp_path / "raw", archives=True)
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "7z").write_text(FAKE_7Z.format(python=sys.executable, log=str(tmp_path / "7z.log")))
    (tools / "7z").chmod(0o755)
    monkeypatch.setitem(sys.modules, "py7zr", None)  # `import py7zr` raises ImportError
    monkeypatch.setenv("PATH", str(tools))
    unpack_image_archives(CIFAR_10, tmp_path / "raw")
    assert len(load_competition(CIFAR_10, tmp_path / "raw").train_images) == 30
    assert [line.split()[0] for line in (tmp_path / "7z.log").read_text().splitlines()] == ["x", "x"]
    (tools / "7z").unlink()
    write_cifar(tmp_path / "again", archives=False)
    with pytest.raises(CompetitionDataError, match="needs py7zr .* or the 7z command"):
        unpack_archive(tmp_path / "raw" / "train.7z", tmp_path / "again")


def _rewrite(path, edit):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(path, index=False)


@pytest.mark.parametrize("edit, expected", [
    (lambda f: f.drop(columns="label", inplace=True), r"train\.csv: wrong header: missing column\(s\) \['label'\]"),
    (lambda f: f.__setitem__("pixel5", ["x"] + list(f["pixel5"][1:])), r"train\.csv: row 2, column 'pixel5': pixel 'x'"),
    (lambda f: f.__setitem__("pixel7", list(f["pixel7"][:3]) + ["300"] + list(f["pixel7"][4:])),
     r"train\.csv: row 5, column 'pixel7': pixel .*300.* is not an integer in 0\.\.255"),
    (lambda f: f.drop(columns="pixel783", inplace=True), r"train\.csv: wrong pixel count: expected 784 .* found 783"),
    (lambda f: f.__setitem__("label", ["11"] + list(f["label"][1:])), r"train\.csv: row 2, column 'label': label '11'"),
])
def test_bad_train_csv_is_named(digit_files, edit, expected):
    _rewrite(digit_files / "train.csv", edit)
    with pytest.raises(CompetitionDataError, match=expected):
        load_competition(DIGIT_RECOGNIZER, digit_files)


def test_missing_file_is_named(digit_files):
    (digit_files / "test.csv").unlink()
    with pytest.raises(CompetitionDataError, match=r"test\.csv: file not found"):
        load_competition(DIGIT_RECOGNIZER, digit_files)


def test_empty_test_set(digit_files):
    pd.DataFrame({"ImageId": [], "Label": []}).to_csv(digit_files / "sample_submission.csv", index=False)
    with pytest.raises(CompetitionDataError, match=r"sample_submission\.csv: empty test set"):
        load_competition(DIGIT_RECOGNIZER, digit_files)


def test_test_rows_must_match_sample(digit_files):
    _rewrite(digit_files / "test.csv", lambda f: f.drop(index=0, inplace=True))
    with pytest.raises(CompetitionDataError, match=r"test\.csv: 19 rows, but sample_submission\.csv has 20 ids"):
        load_competition(DIGIT_RECOGNIZER, digit_files)


def test_duplicate_id(cifar_files):
    _rewrite(cifar_files / "trainLabels.csv", lambda f: f.__setitem__("id", ["1", "1"] + list(f["id"][2:])))
    with pytest.raises(CompetitionDataError, match=r"trainLabels\.csv: row 3, column 'id': duplicate id '1'"):
        load_competition(CIFAR_10, cifar_files)


def test_missing_image(cifar_files):
    (cifar_files / "test" / "7.png").unlink()
    with pytest.raises(CompetitionDataError, match=r"test/7\.png: missing image for id '7'"):
        load_competition(CIFAR_10, cifar_files)


def test_undecodable_image(cifar_files):
    path = cifar_files / "train" / "4.png"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(CompetitionDataError, match=r"train/4\.png: undecodable image for id '4'"):
        load_competition(CIFAR_10, cifar_files)


def test_label_outside_class_set_in_image_csv(cifar_files):
    _rewrite(cifar_files / "trainLabels.csv", lambda f: f.__setitem__("label", ["unicorn"] + list(f["label"][1:])))
    with pytest.raises(CompetitionDataError, match=r"row 2, column 'label': label 'unicorn' is not one of"):
        load_competition(CIFAR_10, cifar_files)


def test_spec_from_toml(tmp_path):
    path = tmp_path / "pets.toml"
    path.write_text('slug = "pets"\nlayout = "image_csv"\nclass_names = ["cat", "dog"]\nid_column = "id"\n'
                    'train_images = "train"\ntest_images = "test"\nsample_submission = "sample.csv"\n'
                    'submission_id_column = "id"\nsubmission_form = "probabilities"\nmetric = "log_loss"\n')
    spec = resolve_spec(str(path))
    assert spec.class_names == ("cat", "dog") and spec.submission_form == "probabilities"


@pytest.mark.parametrize("text, expected", [
    ('slug = "x"\nlayout = "pixels_csv"\nclass_names = ["a", "b"]\nsample_submission = "s.csv"\n'
     'submission_id_column = "id"\ntest_csv = "t.csv"\ncolour = "red"\n', r"unknown keys \['colour'\]"),
    ('slug = "x"\nlayout = "spiral"\nclass_names = ["a", "b"]\nsample_submission = "s.csv"\n'
     'submission_id_column = "id"\n', r"layout must be one of"),
    ('slug = "x"\nlayout = "pixels_csv"\nclass_names = ["a", "b"]\nsample_submission = "s.csv"\n'
     'submission_id_column = "id"\ntest_csv = "t.csv"\nmetric = "log_loss"\n', r"log_loss needs submission_form"),
    ('slug = \n', r"not valid TOML"),
])
def test_bad_spec_files(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=expected):
        load_spec_file(path)


def test_unknown_spec_name():
    with pytest.raises(SpecError, match=r"unknown competition spec 'mnist'.*cifar-10"):
        resolve_spec("mnist")


def test_a_large_archive_unpacks_under_a_progress_bar(tmp_path, monkeypatch):
    """Image competitions ship tens of thousands of files: unpacking reports progress (to the terminal on stderr,
    and to whatever listens: the flows' Prefect progress artifact)."""
    import zipfile as zip_module

    from tasks import progress
    from tasks.archives import MANY_FILES, unpack_archive

    archive = tmp_path / "many.zip"
    with zip_module.ZipFile(archive, "w") as zipped:
        for number in range(MANY_FILES):
            zipped.writestr(f"train/{number}.txt", str(number))
    heard = []
    monkeypatch.setattr(progress, "LISTENERS", [lambda *event: heard.append(event)])
    unpack_archive(archive, tmp_path / "out")
    assert len(list((tmp_path / "out" / "train").iterdir())) == MANY_FILES
    assert heard[0] == ("unpacking many.zip", 0, MANY_FILES) and heard[-1] == ("unpacking many.zip", MANY_FILES, MANY_FILES)
    assert len(heard) <= 22  # every 5 %, not every file


def _folder_spec(layout, **changes):
    from tasks.competitions import spec_from_dict

    values = {"slug": "x", "layout": layout, "class_names": ["cat", "dog"], "sample_submission": "sample.csv",
              "submission_id_column": "id", "train_images": "train", "test_images": "test", "train_csv": None,
              "image_extension": ".png", **changes}
    return spec_from_dict(values)


def _image(path, value=100):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 6), (value, value, value)).save(path)


def test_class_folders_and_labels_in_file_names(tmp_path):
    for name in ("cat/a.png", "cat/b.png", "dog/c.png"):
        _image(tmp_path / "folders" / "train" / name)
    for name in ("cat.0.png", "cat.1.png", "dog.0.png"):
        _image(tmp_path / "names" / "train" / name)
    for root in ("folders", "names"):
        _image(tmp_path / root / "test" / "1.png")
        pd.DataFrame({"id": ["1"], "label": ["cat"]}).to_csv(tmp_path / root / "sample.csv", index=False)
    folders = load_competition(_folder_spec("class_folders"), tmp_path / "folders")
    assert folders.train_ids.tolist() == ["a", "b", "c"] and folders.train_labels.tolist() == [0, 0, 1]
    names = load_competition(_folder_spec("filename_labels"), tmp_path / "names")
    assert names.train_ids.tolist() == ["cat.0", "cat.1", "dog.0"] and names.train_labels.tolist() == [0, 0, 1]
    assert names.test_images[0].endswith("test/1.png")
    _image(tmp_path / "folders" / "train" / "bird" / "d.png")
    with pytest.raises(CompetitionDataError, match=r"train/bird/d.png: label 'bird' \(from its folder's name\) is not one "
                                                   r"of the classes \['cat', 'dog'\]"):
        load_competition(_folder_spec("class_folders"), tmp_path / "folders")
    _image(tmp_path / "names" / "train" / "stray.png")
    (tmp_path / "names" / "train" / "stray.png").rename(tmp_path / "folders" / "train" / "stray.png")
    with pytest.raises(CompetitionDataError, match=r"train/stray.png: a file beside the class folders"):
        load_competition(_folder_spec("class_folders"), tmp_path / "folders")


def test_test_images_in_several_folders(tmp_path):
    for name in ("cat.0.png", "dog.0.png"):
        _image(tmp_path / "train" / name)
    _image(tmp_path / "test" / "1.png")
    _image(tmp_path / "more" / "2.png")
    pd.DataFrame({"id": ["1", "2"], "label": ["cat", "cat"]}).to_csv(tmp_path / "sample.csv", index=False)
    spec = _folder_spec("filename_labels", extra_test_images=["more"])
    assert [path.split("/")[-2] for path in load_competition(spec, tmp_path).test_images] == ["test", "more"]
    _image(tmp_path / "more" / "1.png")
    with pytest.raises(CompetitionDataError, match=r"sample.csv: row 2: id '1' has an image in both test/ and more/"):
        load_competition(spec, tmp_path)
    (tmp_path / "more" / "2.png").unlink()
    (tmp_path / "more" / "1.png").unlink()
    with pytest.raises(CompetitionDataError, match=r"2.png: missing image for id '2' \(looked in test/, more/\)"):
        load_competition(spec, tmp_path)


def test_a_pixel_test_csv_is_matched_by_its_id_column(digit_files):
    import dataclasses

    spec = dataclasses.replace(DIGIT_RECOGNIZER, test_id_column="ImageId")
    test = pd.read_csv(digit_files / "test.csv")
    test = pd.concat([pd.DataFrame({"ImageId": range(1, len(test) + 1)}), test], axis=1)
    test.iloc[::-1].to_csv(digit_files / "test.csv", index=False)  # rows in another order than the sample's
    data = load_competition(spec, digit_files)
    assert np.array_equal(data.test_pixels[0].reshape(-1), test.iloc[0, 1:].to_numpy())
    test.assign(ImageId=test["ImageId"].replace(3, 300)).to_csv(digit_files / "test.csv", index=False)
    with pytest.raises(CompetitionDataError, match=r"test.csv: row 4, column 'ImageId': id '300' is not in "
                                                   r"sample_submission.csv"):
        load_competition(spec, digit_files)


@pytest.mark.parametrize("changes, message", [
    ({"task": "binary", "metric": "accuracy"}, "metric accuracy does not fit task binary"),
    ({"task": "binary", "submission_form": "probability", "metric": "roc_auc"},
     "a binary competition has two classes (negative, positive), got 10"),
    ({"task": "multilabel", "submission_form": "label", "metric": "mean_f2"},
     "a multilabel competition's submission_form is one of ('tags',)"),
    ({"metric": "map@11"}, "metric must be one of accuracy, log_loss"),
])
def test_a_spec_checks_its_task(changes, message):
    from tasks.competitions import spec_from_dict

    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spec_from_dict({**DIGIT_RECOGNIZER.to_dict(), **changes})
