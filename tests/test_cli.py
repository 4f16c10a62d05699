"""End to end through the command line: `headstart run` on the built-in competition, and local create."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.factories import kaggle_zip, shapes_competition_args, tiny_backbone_file

runner = CliRunner()


def invoke(*arguments):
    result = runner.invoke(app, [str(argument) for argument in arguments])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.mark.slow  # two minutes: the default suite stays under ten
def test_run_on_builtin_digits_scores_well_above_chance(prefect_server, digits_store, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    output = invoke("run", "--data-dir", data_dir, "--member", "softmax", "--member", "cnn", "--epochs", "8",
                    "--folds", "3")
    run_json = Path(output.strip().splitlines()[-1])
    record = json.loads(run_json.read_text())
    assert record["blend_cv_score"] > 0.85 and record["members"]["softmax"] > 0.85 and record["members"]["cnn"] > 0.5
    nested = record["blend_nested_cv_score"]  # weights fitted on the other folds: no better than in-sample
    assert 0.8 < nested <= record["blend_cv_score_by_method"]["caruana"] + 0.01
    assert f"(nested, the blend's weights fitted on the other folds: {nested:.4f})" in output
    assert record["backend_result"]["status"] == "complete"
    assert record["backend_result"]["public_score"] > 0.85  # chance is 0.1
    assert "public leaderboard score" in output
    submission = pd.read_csv(record["submission"])
    assert list(submission.columns) == ["ImageId", "Label"] and len(submission) == 540
    run_dir = run_json.parent
    assert (run_dir / "blend" / "ensemble.json").is_file()
    assert all((Path(directory) / "oof.npy").is_file() for directory in record["member_dirs"])
    assert (data_dir / "04_models" / "local" / "digits" / run_dir.name / "blend" / "confusion_matrix.png").is_file()
    board = invoke("leaderboard", "--data-dir", data_dir)
    assert "you" in board
    assert "complete" in invoke("submissions", "--data-dir", data_dir)


def test_run_without_submitting(prefect_server, digits_store, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    output = invoke("run", "digits", "--data-dir", data_dir, "--member", "softmax", "--epochs", "2", "--folds", "2",
                    "--no-submit")
    record = json.loads(Path(output.strip().splitlines()[-1]).read_text())
    assert record["backend_result"] is None and Path(record["submission"]).is_file()
    assert "complete" not in invoke("submissions", "--data-dir", data_dir)  # nothing was sent
    member_json = Path(record["member_dirs"][0]) / "member.json"
    stamp = member_json.stat().st_mtime_ns
    again = invoke("run", "digits", "--data-dir", data_dir, "--member", "softmax", "--epochs", "2", "--folds", "2",
                   "--no-submit")
    second = json.loads(Path(again.strip().splitlines()[-1]).read_text())
    assert second["member_dirs"] == record["member_dirs"] and member_json.stat().st_mtime_ns == stamp  # cached
    assert second["run_id"] != record["run_id"]


def test_run_a_feature_head_on_a_file_backbone_with_two_views(prefect_server, tmp_path):
    """A head on cached features of a bring-your-own backbone, extracted for the identity and a mirror view,
    on three classes that a small random convolution tells apart."""
    invoke(*shapes_competition_args(tmp_path))
    data_dir = tmp_path / "data"
    member = f"logistic@file:{tiny_backbone_file(tmp_path / 'tiny.keras')}"
    output = invoke("run", "shapes", "--data-dir", data_dir, "--member", member, "--view", "identity",
                    "--view", "flip", "--folds", "3", "--no-submit")
    record = json.loads(Path(output.strip().splitlines()[-1]).read_text())
    assert list(record["members"]) == [member] and record["members"][member] > 0.8  # chance is 1/3
    assert record["config"]["features"]["views"] == ["identity", "flip"]
    feature_sets = sorted((data_dir / "03_features" / "local" / "shapes").iterdir())
    assert [path.name.split("-")[1] for path in feature_sets] == ["flip", "identity"]
    for path in feature_sets:
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["complete"] and manifest["view"] in path.name and manifest["feature_width"] == 12
    assert pd.read_csv(record["submission"]).shape == (12, 2)


@pytest.mark.parametrize("layout, spec, options", [
    ("digit-recognizer", "digit-recognizer", {}),
    ("cifar-10", "cifar-10", {}),
    ("cifar-10", "cifar-10", {"archives": True}),
])
def test_local_create_from_kaggle_zip(tmp_path, layout, spec, options):
    archive, solution = kaggle_zip(tmp_path, layout, **options)
    output = invoke("local", "create", "practice", "--from", archive, "--solution", solution, "--spec", spec,
                    "--data-dir", tmp_path / "data")
    assert "created local competition 'practice'" in output
    assert (tmp_path / "data" / "local" / "practice" / "competition.json").is_file()
    assert "practice leaderboard" in invoke("leaderboard", "practice", "--data-dir", tmp_path / "data")


def test_errors_are_one_clear_line(tmp_path):
    result = runner.invoke(app, ["leaderboard", "nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no local competition 'nope'" in result.output
    result = runner.invoke(app, ["local", "create", "x", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "give either --tfds" in result.output


@pytest.mark.parametrize("option, value, message", [
    ("--recipe", "fast", "Invalid value for '--recipe': 'fast' is not one of ['default', 'full']"),
    ("--xla", "yes", "Invalid value for '--xla': 'yes' is not one of ['auto', 'on', 'off']"),
    ("--blend", "median", "Invalid value for '--blend': 'median' is not one of ['mean', 'weights', 'caruana']"),
    ("--backend", "cloud", "Invalid value for '--backend': 'cloud' is not one of ['local', 'kaggle']"),
])
def test_a_bad_setting_is_one_error_line_before_anything_runs(tmp_path, option, value, message):
    """A value not among an option's choices is a usage error, as an out-of-range number is: exit code 2."""
    result = runner.invoke(app, ["run", "--data-dir", str(tmp_path / "data"), option, value])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {message} (see `"), result.output
    assert "Traceback" not in result.output and not (tmp_path / "data").exists()
