"""Practice competitions in the layouts of eight real Kaggle competitions: built small, created with no --spec,
the inferred spec and the printed choice checked, the files indexed, and a submission in the competition's own
form scored."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.backends.local import LocalBackend
from tasks.backends.practice_layouts import PRACTICE, build_practice, digit_pairs, pattern_source
from tasks.index import ensure_index, read_index

SOURCES = {"cifar": lambda: pattern_source(500, size=8),
           "mnist": lambda: pattern_source(200, size=28, channels=1, class_names=tuple("0123456789")),
           "digit-pairs": lambda: digit_pairs(pattern_source(100, size=8, channels=1), 300)}
EXPECTED = {  # competition: (layout, task, metric, other keys of the inferred spec)
    "aerial-cactus-identification": ("image_folder", "binary", "roc_auc", {
        "class_names": ("0", "1"), "submission_form": "probability", "image_extension": "", "train_archive":
        "train.zip", "submission_label_column": "has_cactus"}),
    "plant-seedlings-classification": ("class_folders", "multiclass", "accuracy", {
        "train_csv": None, "image_extension": "", "submission_id_column": "file", "class_names": (
            "Black-grass", "Charlock", "Cleavers", "Common Chickweed", "Common wheat", "Fat Hen", "Loose Silky-bent",
            "Maize", "Scentless Mayweed", "Sugar beet")}),
    "planet-understanding-the-amazon-from-space": ("image_csv", "multilabel", "mean_f2", {
        "train_images": "train-jpg", "test_images": "test-jpg", "extra_test_images": ("test-jpg-additional",),
        "image_extension": ".jpg", "submission_form": "tags", "class_names": (
            "animal", "four_legs", "has_wings", "on_road", "on_water", "pet", "vehicle")}),
    "humpback-whale-identification": ("image_folder", "ranking", "map@5", {
        "submission_form": "ranked", "image_extension": "", "submission_id_column": "Image"}),
    "dogs-vs-cats-redux-kernels-edition": ("filename_labels", "binary", "roc_auc", {
        "class_names": ("cat", "dog"), "image_extension": ".jpg", "test_archive": "test.zip"}),
    "dog-breed-identification": ("image_folder", "multiclass", "log_loss", {
        "train_csv": "labels.csv", "label_column": "breed", "submission_form": "probabilities"}),
    "aptos2019-blindness-detection": ("image_csv", "ordinal", "quadratic_weighted_kappa", {
        "train_images": "train_images", "test_images": "test_images", "class_names": ("0", "1", "2", "3", "4")}),
    "Kannada-MNIST": ("pixels_csv", "multiclass", "accuracy", {
        "test_id_column": "id", "image_shape": (28, 28, 1), "extra_train_csvs": ()}),
}
WHY = {"binary": "one probability column", "multilabel": "space-separated tags", "ranking": "several "
       "space-separated labels", "ordinal": "labels of grades"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("practice-layouts")
    sources = {name: make() for name, make in SOURCES.items()}
    return {name: build_practice(name, sources[kind], root / name) for name, (_, kind) in PRACTICE.items()}


def _perfect(backend: LocalBackend) -> pd.DataFrame:
    """A submission in the competition's form that answers every test id right (or 1.0 for the truth)."""
    spec, solution = backend.spec, backend.solution().drop(columns="Usage")
    truth = solution[spec.submission_label_column]
    if spec.submission_form == "probabilities":
        return pd.concat([solution[[spec.submission_id_column]], pd.DataFrame(
            {name: (truth == name).astype(float) for name in spec.class_names})], axis=1)
    if spec.submission_form == "probability":
        positive = truth.isin([spec.class_names[1], "1"]).astype(float)
        return solution.assign(**{spec.submission_label_column: positive})
    if spec.submission_form == "ranked":
        others = [name for name in spec.class_names[:6]]
        return solution.assign(**{spec.submission_label_column: [
            " ".join([label] + [other for other in others if other != label][:4]) for label in truth]})
    return solution


@pytest.mark.parametrize("name", sorted(PRACTICE))
def test_a_practice_competition_is_created_from_its_files_alone(built, tmp_path, name):
    archive, solution = built[name]
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(app, ["local", "create", "practice", "--from", str(archive), "--solution",
                                      str(solution), "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    layout, task, metric, keys = EXPECTED[name]
    backend = LocalBackend(data_dir / "local" / "practice")
    spec = backend.spec
    assert (spec.layout, spec.task, spec.metric) == (layout, task, metric)
    assert {key: getattr(spec, key) for key in keys} == keys
    lines = result.output.splitlines()
    lines = lines[next(number for number, line in enumerate(lines) if line.startswith("spec of")):]  # after a bar
    assert lines[0].startswith(f"spec of 'practice': {layout} from ") and f", {task}, " in lines[0]
    why = WHY.get(task, "one column per class" if spec.submission_form == "probabilities" else "labels")
    assert lines[0].endswith(f"; metric {metric} (the obvious metric for {why}; --metric NAME to choose another)")
    assert lines[-1] == (f"created local competition 'practice' ({layout}, {task}, {spec.num_classes} classes, "
                         f"metric {metric}) at {data_dir / 'local' / 'practice'}")
    assert len(lines) == (3 if name == "Kannada-MNIST" else 2), result.output
    if name == "Kannada-MNIST":
        assert lines[1] == ('Dig-MNIST.csv also holds labelled images: set extra_train_csvs = ["Dig-MNIST.csv"] '
                            "in the spec to train on them too")

    raw = tmp_path / "raw"
    backend.download(raw)
    index = read_index(ensure_index(spec, raw, tmp_path / "index", folds=2, seed=0))
    assert index.metadata["num_test"] == len(pd.read_csv(solution)) and index.targets().shape[0] > 30
    path = tmp_path / "perfect.csv"
    _perfect(backend).to_csv(path, index=False)
    record = backend.submit(path)
    assert record["status"] == "complete", record["error"]
    best = 0.0 if metric == "log_loss" else 1.0
    assert record["public_score"] == pytest.approx(best, abs=1e-6)


def test_a_metric_can_be_chosen(built, tmp_path):
    archive, solution = built["dogs-vs-cats-redux-kernels-edition"]
    result = CliRunner().invoke(app, ["local", "create", "dvc", "--from", str(archive), "--solution", str(solution),
                                      "--metric", "log_loss", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith("; metric log_loss (--metric)")
    assert json.loads((tmp_path / "data" / "local" / "dvc" / "competition.json").read_text())["spec"]["metric"] == \
        "log_loss"


def test_extra_labelled_csvs_train_when_asked(built, tmp_path):
    archive, solution = built["Kannada-MNIST"]
    (tmp_path / "partial.toml").write_text('extra_train_csvs = ["Dig-MNIST.csv"]\n')
    result = CliRunner().invoke(app, ["local", "create", "kannada", "--from", str(archive), "--solution",
                                      str(solution), "--spec", str(tmp_path / "partial.toml"), "--data-dir",
                                      str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    backend = LocalBackend(tmp_path / "data" / "local" / "kannada")
    raw = tmp_path / "raw"
    backend.download(raw)
    index = read_index(ensure_index(backend.spec, raw, tmp_path / "index", folds=2, seed=0))
    dig = len(pd.read_csv(raw / "Dig-MNIST.csv", usecols=["label"]))
    assert len(index.split("train")) == len(pd.read_csv(raw / "train.csv", usecols=["label"])) + dig
    assert index.split("train")["id"].iloc[-1] == f"Dig-MNIST.csv:{dig}"
    assert np.array_equal(index.targets()[-dig:], pd.read_csv(raw / "Dig-MNIST.csv", usecols=["label"])["label"])
