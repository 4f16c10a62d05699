"""Bad input through the real command line, whole output read: exit 1, one `error:` line naming the file, row,
field or option, no traceback (Prefect's failure logging included), nothing half-written. Bugs keep theirs."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.factories import HEADSTART, USER_ENVIRONMENT, kaggle_zip, write_digit_recognizer, zip_folder

FAILURE_LOGGING = ("Traceback", 'File "', "Task run failed", "Encountered exception", "Finished in state Failed")


def headstart(*arguments, cwd: Path, **environment) -> subprocess.CompletedProcess:
    return subprocess.run([HEADSTART, *map(str, arguments)], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**USER_ENVIRONMENT, **environment})


def assert_one_clear_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert all(part in errors[0] for part in expected), errors[0]
    assert not [marker for marker in FAILURE_LOGGING if marker in output], output


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A good digit-recognizer zip and solution, a solution with a bad label, and a zip whose train.csv has one."""
    root = tmp_path_factory.mktemp("bad-input")
    archive, solution = kaggle_zip(root, "digit-recognizer")
    frame = pd.read_csv(solution, dtype=str)
    frame.loc[3, "Label"] = "eleven"
    frame.to_csv(root / "bad-solution.csv", index=False)
    folder = root / "bad-train"
    write_digit_recognizer(folder)
    train = pd.read_csv(folder / "train.csv")
    train.loc[2, "label"] = 11
    train.to_csv(folder / "train.csv", index=False)
    zip_folder(folder, root / "bad-train.zip")
    return root


@pytest.mark.parametrize("arguments, expected", [
    (["leaderboard", "nope"], ["no local competition 'nope'", "headstart local create nope"]),
    (["submissions", "nope", "--backend", "cloud"], ["backend 'cloud' is not available"]),
    (["host", "nope"], ["no local competition 'nope'"]),
    (["local", "create", "x"], ["give either --tfds DATASET"]),
    (["local", "create", "x", "--from", "missing.zip", "--solution", "{files}/digit-recognizer-solution.csv",
      "--spec", "digit-recognizer"], ["missing.zip: not found or not a zip file"]),
    (["local", "create", "x", "--from", "{files}/digit-recognizer.zip", "--solution",
      "{files}/digit-recognizer-solution.csv", "--spec", "mnist"], ["unknown competition spec 'mnist'"]),
    (["local", "create", "x", "--from", "{files}/digit-recognizer.zip", "--solution", "{files}/bad-solution.csv",
      "--spec", "digit-recognizer"], ["bad-solution.csv: row 5, column 'Label'", "'eleven'"]),
    (["local", "create", "x", "--from", "{files}/digit-recognizer.zip", "--solution",
      "{files}/digit-recognizer-solution.csv", "--spec", "{files}/missing.toml"], ["missing.toml: spec file not found"]),
    (["submit", "digits", "missing.csv"], ["missing.csv: submission file not found"]),
    (["kernel", "push", "digit-recognizer", "--type", "rmarkdown"], ["kernel type must be one of", "'rmarkdown'"]),
    (["watch", "digits", "--rank-drop", "-2"], ["--rank-drop must be 1 or more, got -2"]),
    (["serve", "digits"], ["`headstart serve` needs a Prefect server", "prefect server start"]),
])
def test_bad_input_before_any_work(files, tmp_path, arguments, expected):
    data_dir = tmp_path / "data"
    result = headstart(*[argument.format(files=files) for argument in arguments], "--data-dir", data_dir, cwd=tmp_path)
    assert_one_clear_error(result, *expected)
    assert not (data_dir / "local" / "x").exists()  # nothing half-created


@pytest.fixture(scope="module")
def api_url(prefect_server) -> str:
    """The session's temporary Prefect server, for the CLI in a subprocess (so each case needs no new one)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.mark.slow  # each a whole `headstart run` in a process of its own: ~20 s each
@pytest.mark.parametrize("name, arguments, expected", [
    ("bad-train", ["--member", "softmax"], ["01_raw/local/bad-train/train.csv: row 4, column 'label'", "label '11'"]),
    ("digits", ["--member", "forest"], ["unknown member kind 'forest'"]),
    ("digits", ["--member", "logistic@resnet51"], ["unknown backbone 'resnet51'"]),
    ("no-such-competition", ["--backend", "kaggle", "--spec", "missing.toml"], ["missing.toml: spec file not found"]),
])
def test_bad_input_inside_the_flow(files, tmp_path, api_url, name, arguments, expected):
    """The error is raised inside a Prefect task or the flow: Prefect's failure logging must not show it."""
    data_dir = tmp_path / "data"
    if name == "bad-train":
        created = headstart("local", "create", name, "--from", files / "bad-train.zip", "--solution",
                            files / "digit-recognizer-solution.csv", "--spec", "digit-recognizer", "--data-dir",
                            data_dir, cwd=tmp_path)
        assert created.returncode == 0, created.stdout + created.stderr
    result = headstart("run", name, *arguments, "--data-dir", data_dir, cwd=tmp_path, PREFECT_API_URL=api_url,
                       KAGGLE_USERNAME="nobody", KAGGLE_KEY="not-a-key")
    assert_one_clear_error(result, *expected)
    if name == "bad-train":
        assert not (data_dir / "02_index" / "local" / name).exists()  # a bad file leaves no index, not even part of one
    assert not list(data_dir.glob("06_submissions/*/*/*.csv"))


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    """Only expected errors become one line; anything else is a bug and must stay visible."""
    from flows.cli import app

    def broken(*arguments, **options):
        raise KeyError("a bug")

    monkeypatch.setattr("tasks.backends.open_backend", broken)
    result = CliRunner().invoke(app, ["leaderboard", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)
    assert "error:" not in result.output
