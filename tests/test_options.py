"""The run options defined once (flows/options.py): the same names on the command line of run, watch, serve,
kernel push and tutorial, in a --config file, and in a recorded run.json that runs again as it was."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.options import RUN_OPTIONS, Runner, apply_options, options_of, read_options_file
from tasks.config import Config
from tasks.errors import ConfigError

runner = CliRunner()


def command_options(*path: str) -> set[str]:
    """The long option names a command takes, as click sees them."""
    import typer.main

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {option for parameter in command.params for option in getattr(parameter, "opts", [])}


@pytest.mark.parametrize("path", [("run",), ("watch",), ("serve",), ("kernel", "push"), ("tutorial",)])
def test_every_command_that_runs_the_pipeline_takes_every_run_option(path):
    assert {f"--{option.name}" for option in RUN_OPTIONS} | {"--config", "--data-dir"} <= command_options(*path)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_toml_file_of_options_by_their_long_names(tmp_path):
    config, runner_ = read_options_file(write(tmp_path / "run.toml", 'competition = "shapes"\nmember = ["softmax", '
                                              '"cnn"]\nfolds = 3\ntime-limit = 20\nno_submit = true\nxla = "off"\n'
                                              'task_runner = "dask"\nimage_size = 64\nview = "identity"\n'))
    assert (config.competition, config.members, config.folds, config.time_limit) == ("shapes", ("softmax", "cnn"), 3,
                                                                                    20.0)
    assert not config.submit and config.device.jit_compile == "off" and config.features.image_size == 64
    assert config.features.views == ("identity",) and runner_ == Runner(task_runner="dask")


@pytest.mark.parametrize("text, message", [
    ("folds = 1\n", "run.toml: key 'folds': expected a number >= 2, got 1"),
    ("members = [\"cnn\"]\n", "run.toml: unknown key 'members'; the keys are the run options' long names"),
    ("member = [1]\n", "run.toml: key 'member': expected a list of strings"),
    ("time_limit = \"soon\"\n", "run.toml: key 'time_limit': expected a number, got 'soon'"),
    ("blend = \"median\"\n", "run.toml: key 'blend': expected one of ['mean', 'weights', 'caruana'], got 'median'"),
    ("no_submit = \"yes\"\n", "run.toml: key 'no_submit': expected true or false"),
    ("folds = \n", "run.toml: not valid TOML"),
])
def test_a_bad_options_file_is_one_error_naming_the_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_options_file(write(tmp_path / "run.toml", text))


def test_the_command_line_overrides_the_file_and_the_file_the_defaults(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("flows.cli.common.check_run_choices", lambda config, runner: None)
    monkeypatch.setattr("flows.compete.run_compete", lambda config, runner, started: seen.update(
        config=config, runner=runner) or (_ for _ in ()).throw(SystemExit(0)))
    options = write(tmp_path / "run.toml", 'member = ["softmax"]\nfolds = 3\nepochs = 7\nseed = 4\n')
    result = runner.invoke(app, ["run", "--config", str(options), "--folds", "4", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.folds == 4 and config.train.epochs == 7 and config.seed == 4 and config.members == ("softmax",)
    assert config.competition == "digits" and config.data_dir == str(tmp_path / "d")


def test_options_round_trip_through_a_config(tmp_path):
    config, runner_ = apply_options(Config(), Runner(), {"member": ("cnn",), "epochs": 3, "no_submit": True,
                                                         "random_weights": True, "task_runner": "dask"})
    values = options_of(config, runner_)
    assert values == {"competition": "digits", "member": ["cnn"], "epochs": 3, "no_submit": True,
                      "random_weights": True, "task_runner": "dask"}
    text = "\n".join(f"{key} = {json.dumps(value)}" for key, value in values.items())
    assert read_options_file(write(tmp_path / "again.toml", text)) == (config, runner_)


def test_watch_and_serve_need_a_competition_from_the_line_or_the_file(tmp_path):
    for command in ("watch", "serve"):
        result = runner.invoke(app, [command, "--data-dir", str(tmp_path)])
        assert result.exit_code == 1 and result.output.strip().splitlines() == [
            f"error: `root {command}` needs a competition: name it, or give a --config file that names one"], result.output


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_recorded_run_runs_again_to_the_same_submission(prefect_server, digits_store, tmp_path):
    """`headstart run --config .../run.json` in a fresh data folder (nothing cached): the same recipe, seeds and
    settings, trained again, give the same submission bytes."""
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    for folder in (first_dir, second_dir):
        shutil.copytree(digits_store, folder)
    first = runner.invoke(app, ["run", "--data-dir", str(first_dir), "--member", "softmax", "--member", "svm",
                                "--folds", "3", "--epochs", "3", "--seed", "5", "--no-submit"])
    assert first.exit_code == 0, first.output
    run_json = Path(first.output.strip().splitlines()[-1])
    second = runner.invoke(app, ["run", "--config", str(run_json), "--data-dir", str(second_dir)])
    assert second.exit_code == 0, second.output
    one, other = (json.loads(Path(output.strip().splitlines()[-1]).read_text())
                  for output in (first.output, second.output))
    assert other["config"] == {**one["config"], "data_dir": str(second_dir)} and other["run_id"] != one["run_id"]
    assert not set(one["member_dirs"]) & set(other["member_dirs"])  # trained again, in the other folder
    assert sha256(one["submission"]) == sha256(other["submission"])
