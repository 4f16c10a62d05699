"""A competition's spec inferred from its files: the kit's layouts, the sample submission's form, the metric's
name, one clear error per ambiguity, spec.toml written and read back, `headstart spec`, and a Kaggle run of a
competition with no built-in spec."""

import dataclasses
import json
import logging
import tomllib

import pandas as pd
import pytest

from tasks.competitions import CIFAR_10, DIGIT_RECOGNIZER, CompetitionSpec, load_spec_file, spec_from_dict
from tasks.errors import SpecError
from tasks.spec_inference import (
    SPEC_FILE,
    infer_and_save_spec,
    infer_spec,
    metric_from_hint,
    saved_spec,
    write_spec_toml,
)
from tests.factories import write_cifar, write_digit_recognizer
from tests.test_errors import assert_one_clear_error, headstart


def _rewrite(path, edit):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = edit(frame)
    frame.to_csv(path, index=False)


def test_digit_recognizer_layout_gives_the_builtin_spec(tmp_path):
    write_digit_recognizer(tmp_path)
    assert infer_spec("my-digits", tmp_path) == DIGIT_RECOGNIZER.with_slug("my-digits")


@pytest.mark.parametrize("archives", [False, True])
def test_cifar_layout_gives_the_builtin_spec(tmp_path, archives):
    write_cifar(tmp_path, archives=archives)
    expected = dataclasses.replace(CIFAR_10, slug="tiny-cifar", image_shape=(8, 8, 3))
    if not archives:
        expected = dataclasses.replace(expected, train_archive=None, test_archive=None)
    assert infer_spec("tiny-cifar", tmp_path) == expected
    assert (tmp_path / "train" / "1.png").is_file()  # archives are unpacked to find the images


def test_a_colour_pixel_csv_and_an_id_column(tmp_path):
    write_digit_recognizer(tmp_path)
    columns = [f"pixel{index}" for index in range(3 * 4 * 4)]

    def colour(frame):
        out = frame[[column for column in frame.columns if not column.startswith("pixel")]].copy()
        out.insert(0, "ImageId", range(1, len(frame) + 1))
        return pd.concat([out, frame[[f"pixel{index}" for index in range(48)]].set_axis(columns, axis=1)], axis=1)

    _rewrite(tmp_path / "train.csv", colour)
    _rewrite(tmp_path / "test.csv", colour)
    spec = infer_spec("colour", tmp_path)
    assert spec.image_shape == (4, 4, 3) and spec.id_column == "ImageId" and spec.label_column == "label"


def test_one_column_per_class_means_probabilities_and_log_loss(tmp_path):
    write_cifar(tmp_path)
    classes = ["cat", "dog", "bird"] + [name for name in CIFAR_10.class_names if name not in ("cat", "dog", "bird")]
    pd.DataFrame({"id": range(1, 11), **{name: 0.1 for name in classes}}).to_csv(tmp_path / "sampleSubmission.csv",
                                                                                  index=False)
    spec = infer_spec("pets", tmp_path)
    assert (spec.submission_form, spec.metric, spec.class_names) == ("probabilities", "log_loss", tuple(classes))
    assert infer_spec("pets", tmp_path, metric_hint="Categorization Accuracy").metric == "accuracy"


@pytest.mark.parametrize("hint, metric", [
    ("Categorization Accuracy", "accuracy"), ("accuracy", "accuracy"), ("CategorizationAccuracy", "accuracy"),
    ("Multi Class Log Loss", "log_loss"), ("Log Loss", "log_loss"), ("logloss", "log_loss"),
    ("MulticlassLoss", "log_loss"), ("Area Under Receiver Operating Characteristic Curve", "roc_auc"),
    ("AUC", "roc_auc"), ("roc_auc", "roc_auc"), ("Micro-averaged F1-Score", "f1_micro"), ("MacroFScore", "f1_macro"),
    ("MeanFScoreBeta", "mean_f2"), ("MeanFScore", "mean_f1"), ("Mean F1 Score", "mean_f1"), ("mean_f2", "mean_f2"),
    ("MAP@{K}", "map@5"), ("MAP@3", "map@3"), ("map@10", "map@10"), ("Mean Average Precision @ 5", "map@5"),
    ("Quadratic Weighted Kappa", "quadratic_weighted_kappa"), ("QuadraticWeightedKappa", "quadratic_weighted_kappa"),
    ("RMSE", None), ("MAP@12", None), ("Dice", None), (None, None), ("", None),
])
def test_kaggle_metric_names(hint, metric):
    assert metric_from_hint(hint) == metric


def test_map_at_k_takes_its_k_from_the_sample_when_kaggle_does_not_say():
    assert metric_from_hint("MAP@{K}", k=3) == "map@3" and metric_from_hint("MAP@7", k=3) == "map@7"


def test_log_loss_with_one_answer_column_names_the_keys(tmp_path):
    write_digit_recognizer(tmp_path)
    with pytest.raises(SpecError, match=r"metric log_loss scores probabilities, but the sample submission has one "
                                        r"answer column \(ImageId, Label\).*set metric and submission_form in"):
        infer_spec("x", tmp_path, metric_hint="Log Loss")


def _without(name):
    return lambda folder: (folder / name).unlink()


def _extra_label_column(folder):
    _rewrite(folder / "trainLabels.csv", lambda frame: frame.assign(colour="red").rename(columns={"label": "kind"}))


def _two_label_files(folder):
    (folder / "trainLabels.csv").rename(folder / "labels.csv")
    (folder / "labels_old.csv").write_text("id,label\n1,cat\n")


def _second_pixel_label(folder):
    _rewrite(folder / "train.csv", lambda frame: frame.rename(columns={"label": "digit"}).assign(size="1"))


@pytest.mark.parametrize("layout, damage, key, words", [
    ("digits", _without("sample_submission.csv"), "sample_submission", "could not tell the sample submission"),
    ("digits", lambda folder: (folder / "sampleSubmission.csv").write_text("ImageId,Label\n1,0\n"),
     "sample_submission", "found sampleSubmission.csv, sample_submission.csv"),
    ("digits", _second_pixel_label, "label_column", "the label column of train.csv (columns: digit, size)"),
    ("digits", lambda folder: [_rewrite(folder / name, lambda frame: frame.drop(columns="pixel783"))
                               for name in ("train.csv", "test.csv")], "image_shape", "783 pixel columns"),
    ("digits", _without("test.csv"), "test_csv", "could not tell the test CSV (found none)"),
    ("cifar", _extra_label_column, "label_column", "trainLabels.csv (columns: id, kind, colour)"),
    ("cifar", _two_label_files, "train_csv", "the CSV of training ids and labels (found labels.csv, labels_old.csv)"),
    ("cifar", lambda folder: (folder / "train").rename(folder / "images"), "train_images",
     "the folder of train images (found none)"),
    ("cifar", lambda folder: (folder / "train" / "1.png").unlink(), "image_extension", "first training id '1'"),
])
def test_ambiguous_files_name_the_key_to_set(tmp_path, layout, damage, key, words):
    (write_digit_recognizer if layout == "digits" else write_cifar)(tmp_path)
    damage(tmp_path)
    with pytest.raises(SpecError) as error:
        infer_spec("x", tmp_path)
    message = str(error.value)
    assert words in message and f"set {key} in {tmp_path / SPEC_FILE}" in message
    assert f"from {tmp_path} (files: " in message and "train" in message  # the files seen


def test_keys_set_in_spec_toml_are_taken_and_the_rest_inferred(tmp_path, caplog):
    write_cifar(tmp_path)
    _extra_label_column(tmp_path)
    (tmp_path / SPEC_FILE).write_text('label_column = "kind"\n')
    assert saved_spec("x", tmp_path) is None  # only some keys: not a whole spec yet
    with caplog.at_level(logging.WARNING, logger="headstart"):
        spec = infer_and_save_spec("x", tmp_path, metric_hint="Categorization Accuracy")
    assert spec.label_column == "kind" and spec.class_names == CIFAR_10.class_names
    assert saved_spec("x", tmp_path) == spec == load_spec_file(tmp_path / SPEC_FILE)
    assert [record.getMessage() for record in caplog.records] == [
        f"spec of 'x': image_folder from trainLabels.csv, multiclass, 10 classes (airplane, automobile, bird, cat, deer, ...); "
        f"submission sampleSubmission.csv: id + label; metric accuracy (Kaggle: Categorization Accuracy); "
        f"written to {tmp_path / SPEC_FILE}: edit it to change anything"]


ODD = CompetitionSpec(
    slug="odd", layout="image_csv", class_names=tuple(f'c"{index}\\é\t\x7f' for index in range(40)),
    sample_submission="sample submission.csv", submission_id_column="Id", submission_form="probabilities",
    metric="log_loss", id_column="name", train_images="train images", test_images="test", image_shape=(300, 200, 3),
    image_extension=".JPG")


@pytest.mark.parametrize("spec", [DIGIT_RECOGNIZER, CIFAR_10, ODD], ids=lambda spec: spec.slug)
def test_spec_toml_round_trip(tmp_path, spec):
    path = write_spec_toml(spec, tmp_path / "spec.toml", header="a header\nof two lines")
    assert load_spec_file(path) == spec
    assert path.read_text().startswith("# a header\n# of two lines\n")
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file


def test_headstart_spec_shows_writes_and_refuses(tmp_path):
    raw = tmp_path / "data" / "01_raw" / "kaggle" / "tiny"
    write_cifar(raw, archives=True)
    options = ["--backend", "kaggle", "--data-dir", tmp_path / "data"]
    shown = headstart("spec", "tiny", *options, cwd=tmp_path)
    assert shown.returncode == 0 and shown.stderr == "", shown.stdout + shown.stderr
    assert shown.stdout.startswith(f"# Spec of 'tiny', inferred from the files in {raw}.\n")
    expected = dataclasses.replace(CIFAR_10, slug="tiny", image_shape=(8, 8, 3))
    assert spec_from_dict(tomllib.loads(shown.stdout)) == expected
    assert not (raw / SPEC_FILE).exists()  # shown, not saved

    written = headstart("spec", "tiny", "--write", *options, cwd=tmp_path)
    assert (written.returncode, written.stderr) == (0, ""), written.stdout + written.stderr
    assert written.stdout == f"spec of 'tiny' (inferred from the files in {raw}) written to {raw / SPEC_FILE}\n"
    assert load_spec_file(raw / SPEC_FILE) == expected
    assert headstart("spec", "tiny", *options, cwd=tmp_path).stdout.startswith(
        f"# Spec of 'tiny', saved in {raw / SPEC_FILE}.\n")
    assert_one_clear_error(headstart("spec", "tiny", "--write", *options, cwd=tmp_path),
                           f"{raw / SPEC_FILE} exists; pass --force")
    assert_one_clear_error(headstart("spec", "cifar-10", "--write", *options, cwd=tmp_path),
                           "'cifar-10' has a built-in spec", "--spec my.toml")
    replaced = headstart("spec", "tiny", "--write", "--force", *options, cwd=tmp_path)
    assert replaced.returncode == 0 and replaced.stdout.endswith(f"written to {raw / SPEC_FILE}\n")


def test_headstart_spec_names_the_key_when_unsure(tmp_path):
    raw = tmp_path / "data" / "01_raw" / "kaggle" / "tiny"
    write_cifar(raw)
    _extra_label_column(raw)
    result = headstart("spec", "tiny", "--backend", "kaggle", "--data-dir", tmp_path / "data", cwd=tmp_path)
    assert_one_clear_error(result, "could not tell the label column of trainLabels.csv (columns: id, kind, colour)",
                           f"set label_column in {raw / SPEC_FILE}")


def test_a_kaggle_run_without_a_spec_infers_and_saves_one(hosted, tmp_path, caplog):
    """The hosted competition `digits` has no built-in Kaggle spec: the download infers it (the metric from
    GetCompetition), saves spec.toml, and the run goes on with it."""
    from tasks.config import Config
    from tasks.stages import compete

    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", members=("softmax",),
                    folds=2, submit=False)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1))
    with caplog.at_level(logging.WARNING, logger="headstart"):
        run_json = compete(config)
    saved = hosted.data_dir / "01_raw" / "kaggle" / "digits" / SPEC_FILE
    assert load_spec_file(saved) == DIGIT_RECOGNIZER.with_slug("digits")
    assert "GetCompetition" in [rpc.split("/")[-1] for rpc in hosted.host.rpcs()]
    assert [record.getMessage() for record in caplog.records if "spec of 'digits'" in record.getMessage()] == [
        f"spec of 'digits': pixels_csv from train.csv, multiclass, 10 classes (0, 1, 2, 3, 4, ...); submission "
        f"sample_submission.csv: ImageId + Label; metric accuracy (Kaggle: accuracy); written to {saved}: "
        "edit it to change anything"]
    submission = json.loads(run_json.read_text())["submission"]
    assert pd.read_csv(submission).columns.tolist() == ["ImageId", "Label"]


def test_a_notebook_mount_without_a_spec_infers_one(tmp_path):
    """Inside a Kaggle notebook (no internet for the metric) the mounted files decide."""
    from tasks.backends.mounted import MountedBackend

    write_digit_recognizer(tmp_path / "input")
    backend = MountedBackend(None, tmp_path / "input", slug="mounted")
    with pytest.raises(SpecError, match="no spec for the Kaggle competition 'mounted' yet"):
        backend.spec  # noqa: B018  (before the files are there, asking for the spec is a clear error)
    backend.download(tmp_path / "raw")
    assert backend.spec == DIGIT_RECOGNIZER.with_slug("mounted") == load_spec_file(tmp_path / "raw" / SPEC_FILE)
    assert not (tmp_path / "input" / SPEC_FILE).exists()  # the mount stays as it was


def _task(columns, answers, labels, given=None, metric=None, single=False):
    from tasks.task_inference import infer_task

    return infer_task(columns, None if answers is None else pd.Series(answers), pd.Series(labels), given or {},
                      metric, single)


@pytest.mark.parametrize("columns, answers, labels, expected", [
    (["id", "label"], ["0"], ["0", "1", "2", "9"], ("multiclass", "label", "accuracy")),  # digits: 10 classes
    (["id", "diagnosis"], ["0"], ["0", "1", "2", "3", "4"], ("ordinal", "label", "quadratic_weighted_kappa")),
    (["id", "has_cactus"], ["0.5"], ["0", "1"], ("binary", "probability", "roc_auc")),
    (["id", "label"], ["0"], ["0", "1"], ("multiclass", "label", "accuracy")),  # 0 could be a label: not a probability
    (["image_name", "tags"], ["primary clear"], ["haze primary", "clear"], ("multilabel", "tags", "mean_f2")),
    (["Image", "Id"], ["new_whale w_1 w_2"], ["w_1", "w_2", "new_whale"], ("ranking", "ranked", "map@3")),
    # in a CSV, labels with spaces read as tags (set task = "multiclass" if they are names): folder names never do
    (["file", "species"], ["Sugar beet"], ["Sugar beet", "Maize"], ("multilabel", "tags", "mean_f2")),
    (["id", "a", "b", "c"], None, ["a", "b"], ("multiclass", "probabilities", "log_loss")),
])
def test_the_task_from_the_sample_and_the_labels(columns, answers, labels, expected):
    task = _task(columns, answers, labels)
    assert (task["task"], task["submission_form"], task["metric"]) == expected


def test_folder_names_are_never_tags_and_a_class_name_may_hold_spaces():
    task = _task(["file", "species"], ["Sugar beet"], ["Sugar beet", "Maize", "Fat Hen"], single=True)
    assert (task["task"], task["class_names"]) == ("multiclass", ("Fat Hen", "Maize", "Sugar beet"))


def test_a_given_metric_picks_between_readings():
    assert _task(["id", "label"], ["0"], list("0123456789"), metric="quadratic_weighted_kappa")["task"] == "ordinal"
    assert _task(["id", "grade"], ["0"], list("01234"), metric="accuracy")["task"] == "ordinal"
    ranked = _task(["Image", "Id"], ["w_1"], ["w_1", "w_2", "w_3"], metric="map@3")
    assert (ranked["task"], ranked["submission_form"]) == ("ranking", "ranked")
    assert _task(["id", "label"], ["0"], list("01234"), given={"task": "multiclass"})["metric"] == "accuracy"


def test_kannada_mnist_layout(tmp_path, caplog):
    """A test CSV whose id column is the sample's (`id`), and a second labelled pixel CSV noted, not used."""
    write_digit_recognizer(tmp_path)
    for name in ("test.csv",):
        _rewrite(tmp_path / name, lambda frame: frame.assign(id=range(len(frame)))[["id", *frame.columns]])
    _rewrite(tmp_path / "sample_submission.csv", lambda frame: frame.rename(columns={"ImageId": "id", "Label":
                                                                                     "label"}))
    (tmp_path / "Dig-MNIST.csv").write_text((tmp_path / "train.csv").read_text())
    with caplog.at_level(logging.WARNING, logger="headstart"):
        spec = infer_spec("kannada", tmp_path)
    assert (spec.test_id_column, spec.id_column, spec.extra_train_csvs) == ("id", None, ())
    assert [record.getMessage() for record in caplog.records] == [
        'Dig-MNIST.csv also holds labelled images: set extra_train_csvs = ["Dig-MNIST.csv"] in the spec to train on '
        "them too"]
