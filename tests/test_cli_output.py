"""What a user sees, whole: output that reads at 80 columns and in a log, `--json` that is JSON alone, no noise,
and the commands after a run finding what the run was given (issue 19, item 10)."""

import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.options import RUN_OPTIONS
from tests.factories import HEADSTART, USER_ENVIRONMENT
from tests.hosting import USER, perfect_submission

NARROW = {**USER_ENVIRONMENT, "COLUMNS": "80", "TERM": "dumb"}


def headstart(*arguments, env=NARROW, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([HEADSTART, *map(str, arguments)], env=env, capture_output=True, text=True, timeout=timeout)


def test_backbones_at_80_columns_name_every_backbone_whole():
    from tasks.backbones import BACKBONES

    shown = headstart("backbones")
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert all(len(line) <= 80 for line in shown.stdout.splitlines())
    assert "…" not in shown.stdout and all(f" {name} " in shown.stdout for name in BACKBONES)


@pytest.mark.parametrize("command", [["run"], ["watch"], ["serve"], ["host"], ["kernel", "push"], ["tutorial"],
                                     ["local", "create"]])
def test_help_at_80_columns_shows_every_option_whole(command):
    import typer.main

    shown = headstart(*command, "--help")
    assert shown.returncode == 0, shown.stderr
    assert all(len(line) <= 80 for line in shown.stdout.splitlines()), shown.stdout
    assert "…" not in shown.stdout
    click_command = typer.main.get_command(app)
    for name in command:
        click_command = click_command.commands[name]
    for parameter in click_command.params:
        for option in getattr(parameter, "opts", []):
            if option.startswith("--"):
                assert re.search(rf"(^|[\s,]){re.escape(option)}([\s,=]|$)", shown.stdout, re.M), option


def test_member_help_gives_the_name_syntax():
    shown = headstart("run", "--help").stdout
    assert "--member KIND[@BACKBONE][#SEED]" in shown and "cnn#1" in shown
    assert next(option for option in RUN_OPTIONS if option.name == "spec").metavar == "FILE"


@pytest.mark.slow  # 40 s: a whole `headstart run --json` in a process of its own
def test_a_json_run_prints_json_alone_and_no_noise(digits_store, tmp_path):
    """`run --json` on stdout parses as one JSON document; stderr holds no TensorFlow start-up lines, no Prefect
    docs hint, no traceback; a softmax-only run looks for no backbone (offline: no download attempt)."""
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    environment = {**NARROW, "HOME": str(tmp_path / "home"), "KERAS_HOME": str(tmp_path / "keras"),
                   "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1"}
    done = headstart("run", "--json", "--member", "softmax", "--folds", "2", "--epochs", "1", "--data-dir", data_dir,
                     env=environment, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)  # the whole of stdout
    assert record["members"].keys() == {"softmax"} and record["run_json"].endswith("run.json")
    for noise in ("absl::InitializeLog", "cudart_stub", "prefect.io/docs", "Traceback", "Downloading data from"):
        assert noise not in done.stderr, (noise, done.stderr[-2000:])
    # No backbone was looked up, let alone downloaded: nothing in KERAS_HOME but the keras.json Keras writes on import.
    assert [path.name for path in (tmp_path / "keras").rglob("*")] in ([], ["keras.json"])
    assert "softmax fold 2/2: " in done.stderr  # not a terminal: one plain line per finished fold
    assert all(len(line) <= 200 for line in done.stderr.splitlines())


def _submit_as_three_teams(backend, folder, us: str = "you") -> dict:
    """carol sends the solution (1.0); we (team `us`), a file with a sixth of its labels wrong, then one that is no
    submission (an error); bob, the same label everywhere. What the backend answered for each, by team."""
    solution = backend.solution()[[backend.spec.submission_id_column, backend.spec.submission_label_column]]
    label = backend.spec.submission_label_column
    folder.mkdir(exist_ok=True)
    solution.to_csv(folder / "perfect.csv", index=False)
    some_wrong = solution.copy()
    some_wrong.loc[::6, label] = ((some_wrong.loc[::6, label].astype(int) + 1) % 10).astype(str)
    some_wrong.to_csv(folder / "some-wrong.csv", index=False)
    (folder / "not-a-submission.csv").write_text("id,answer\n1,2\n")
    sample = backend.sample_submission()
    sample[label] = "1"
    sample.to_csv(folder / "ones.csv", index=False)
    sent = {"carol": [backend.submit(folder / "perfect.csv", "the solution", team="carol")]}
    sent[us] = [backend.submit(folder / name, name, team=us) for name in ("some-wrong.csv", "not-a-submission.csv")]
    sent["bob"] = [backend.submit(folder / "ones.csv", "all ones", team="bob")]
    assert 1.0 == sent["carol"][0]["public_score"] > sent[us][0]["public_score"] > sent["bob"][0]["public_score"]
    assert sent[us][1]["status"] == "error"
    return sent


def test_leaderboard_and_submissions_json_is_one_document_of_the_rows(digits_store, tmp_path):
    """`leaderboard --json` and `submissions --json` (local): stdout parses as one JSON document, the rows the
    competition scored: each team's best, best first; every submission, newest first, errors included."""
    from tasks.backends import open_local_backend
    from tasks.paths import DataPaths

    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    sent = _submit_as_three_teams(open_local_backend("digits", DataPaths(data_dir)), tmp_path / "files")
    board = headstart("leaderboard", "digits", "--json", "--data-dir", data_dir)
    assert board.returncode == 0 and board.stderr == "", board.stderr
    best = [sent["carol"][0], sent["you"][0], sent["bob"][0]]
    assert json.loads(board.stdout) == [
        {"rank": rank, "team": record["team"], "score": record["public_score"], "date": record["date"],
         "ref": record["ref"]} for rank, record in enumerate(best, start=1)]
    listed = headstart("submissions", "digits", "--json", "--data-dir", data_dir)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert json.loads(listed.stdout) == [sent["bob"][0], *reversed(sent["you"]), sent["carol"][0]]


def test_leaderboard_and_submissions_json_from_the_kaggle_stand_in(hosted, tmp_path):
    """The same through the Kaggle backend against `headstart host`: the public board of every team, and our
    (alice's) submissions only, newest first."""
    sent = _submit_as_three_teams(hosted.backend, tmp_path / "files", us=USER)
    arguments = ["digits", "--json", "--backend", "kaggle", "--spec", hosted.spec_file, "--data-dir", hosted.data_dir]
    environment = {**NARROW, **hosted.env}
    board = headstart("leaderboard", *arguments, env=environment)
    assert board.returncode == 0 and board.stderr == "", board.stderr
    rows = json.loads(board.stdout)
    assert [(row["rank"], row["team"], row["score"]) for row in rows] == [
        (1, "carol", 1.0), (2, USER, sent[USER][0]["public_score"]), (3, "bob", sent["bob"][0]["public_score"])]
    listed = headstart("submissions", *arguments, env=environment)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    rows, ours = json.loads(listed.stdout), list(reversed(sent[USER]))
    fields = ("ref", "file_name", "description", "status", "public_score", "error", "team")
    assert [[row[field] for field in fields] for row in rows] == [[record[field] for field in fields] for record in ours]
    assert all(row["private_score"] is None for row in rows)  # hidden until the deadline, as on Kaggle
    # Kaggle's dates are to the millisecond.
    assert all(abs(datetime.fromisoformat(row["date"]) - datetime.fromisoformat(record["date"])) < timedelta(
        milliseconds=1) for row, record in zip(rows, ours))


def test_scores_are_shown_as_people_read_them():
    from flows.cli.common import score_text

    assert score_text(0.7483333333333333) == "0.7483" and score_text(None) == "none" and score_text(1) == "1"


def test_local_practice_and_kaggle_keep_their_own_files(hosted, tmp_path):
    """A local competition named like a Kaggle one shares no submission log: a file sent to the local one is not
    refused on Kaggle as sent before."""
    runner = CliRunner()
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    data_dir = str(hosted.data_dir)
    local = runner.invoke(app, ["submit", "digits", str(path), "--data-dir", data_dir])
    assert local.exit_code == 0, local.output
    on_kaggle = runner.invoke(app, ["submit", "digits", str(path), "--backend", "kaggle", "--spec", hosted.spec_file,
                                    "--data-dir", data_dir])
    assert on_kaggle.exit_code == 0 and "status complete" in on_kaggle.output, on_kaggle.output
    logs = sorted(str(log.relative_to(hosted.data_dir)) for log in hosted.data_dir.glob("06_submissions/*/*/log.jsonl"))
    assert logs == ["06_submissions/kaggle/digits/log.jsonl", "06_submissions/local/digits/log.jsonl"]
    # The host serves its own board: this machine's practice run ("you") is not on the hosted leaderboard.
    assert [row["team"] for row in hosted.backend.leaderboard()] == ["alice"]
    from tasks.backends.local import LocalBackend

    assert [row["team"] for row in LocalBackend(hosted.backend.root).leaderboard()] == ["you"]


def test_the_leaderboard_after_a_run_given_a_spec_needs_none(hosted, tmp_path):
    """`headstart leaderboard digits --backend kaggle` right after `run --backend kaggle --spec ...` finds the
    spec the run was given."""
    from tasks.backends import backend_for, fetch_competition
    from tasks.config import Config

    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file)
    fetch_competition(config, backend_for(config))
    result = CliRunner().invoke(app, ["leaderboard", "digits", "--backend", "kaggle", "--data-dir",
                                      str(hosted.data_dir)])
    assert result.exit_code == 0 and "digits leaderboard (accuracy)" in result.output, result.output


def test_a_long_member_name_never_squeezes_the_scores_out_of_the_cv_table(monkeypatch):
    """A member named by a backbone's path (`finetune@file:../shared/models/...keras`) is wider than a log's 80
    columns with its scores: the name folds onto a second line, the scores and weights stay whole."""
    from rich.console import Console

    from flows.cli import common

    logged = Console(width=80, record=True, file=open(__import__("os").devnull, "w"))
    monkeypatch.setattr(common, "console", logged)
    member = "finetune@file:../shared/models/efficientnet_lite0_imagenet_features.keras"
    common.print_table("cifar10-5k: CV accuracy", [{"member": member, "cv": "0.8690", "weight": "0.68"},
                                                   {"member": "blend (caruana)", "cv": "0.8750"}],
                       ["member", "cv", "weight"])
    text = logged.export_text()
    assert "0.8690" in text and "0.68" in text and "0.8750" in text and "weight" in text
    assert "".join(line.split("│")[1].strip() for line in text.splitlines()[3:6] if "│" in line).startswith(member)
    assert max(len(line) for line in text.splitlines()) <= 80
