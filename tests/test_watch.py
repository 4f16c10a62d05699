"""The watcher: snapshots, the rules that say the leaderboard moved, and retrains through `headstart host`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tasks.record import RunRecord
from tasks.watch import WatchHistory, WatchRules, decide, number, take_snapshot
from tests.factories import HEADSTART, USER_ENVIRONMENT, wait_until
from tests.hosting import USER, assert_no_secret, labelled_submission, perfect_submission

RETRAIN = ("--member", "softmax", "--epochs", "2", "--folds", "2")


def board(*rows) -> list[dict]:
    return [{"rank": rank, "team": team, "score": score, "date": "2026-11-26T00:00:00+00:00"}
            for rank, (team, score) in enumerate(rows, start=1)]


def snapshot(rows, ours=(0.9,), files=(("train.csv", 10),), metric="accuracy") -> dict:
    return take_snapshot(board(*rows), [{"public_score": score} for score in ours],
                         [{"name": name, "size": size} for name, size in files], "us", metric)


def test_the_first_snapshot_is_only_a_baseline():
    decision = decide(None, snapshot([("us", 0.9)]))
    assert not decision.moved and "first snapshot" in decision.line()


def test_each_rule_says_why():
    before = snapshot([("us", 0.90), ("them", 0.85)])
    assert not decide(before, snapshot([("us", 0.90), ("them", 0.85)])).moved
    passed = decide(before, snapshot([("them", 0.95), ("us", 0.90)]))
    assert passed.moved and passed.numbers["rank_before"] == 1 and passed.numbers["rank_now"] == 2
    assert "the other teams' best score went 0.85 → 0.95" in passed.reasons
    assert "our rank fell 1 → 2" in passed.reasons and "them passed our best score 0.9" in passed.reasons
    data = decide(before, snapshot([("us", 0.90), ("them", 0.85)], files=(("train.csv", 11),)))
    assert data.moved and data.reasons == ("the data files changed (train.csv)",)
    small = decide(before, snapshot([("us", 0.90), ("them", 0.86)]), WatchRules(top_delta=0.05))
    assert not small.moved
    only_data = WatchRules(top_delta=None, rank_drop=None, beaten=False)
    assert not decide(before, snapshot([("them", 0.95), ("us", 0.90)]), only_data).moved


def test_our_own_submissions_are_not_a_move():
    before = snapshot([("them", 0.95), ("us", 0.90)])
    assert not decide(before, snapshot([("us", 0.97), ("them", 0.95)], ours=(0.9, 0.97))).moved


def test_lower_is_better_for_log_loss():
    before = snapshot([("us", 0.30), ("them", 0.40)], ours=(0.30,), metric="log_loss")
    now = snapshot([("them", 0.20), ("us", 0.30)], ours=(0.30,), metric="log_loss")
    assert "them passed our best score 0.3" in decide(before, now).reasons


def test_snapshots_are_never_overwritten_and_the_baseline_is_the_last_handled(tmp_path):
    history = WatchHistory(tmp_path)
    first = snapshot([("us", 0.9)])
    paths = [history.save_snapshot(first) for _ in range(3)]
    assert len(set(paths)) == 3 and len(list((tmp_path / "snapshots").glob("*.json"))) == 3
    history.record(paths[0], decide(None, first), "none", handled=True)
    history.record(paths[1], decide(first, first), "postponed", handled=False)
    assert history.baseline()[1] == paths[0].name
    with history.exclusive() as alone, history.exclusive() as second:
        assert alone and not second


def _config(hosted, **fields):
    from tasks.config import Config, FeatureConfig, TrainConfig

    return Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file,
                  members=("softmax",), folds=2, train=TrainConfig(epochs=2), features=FeatureConfig(), **fields)


def _sent(hosted) -> int:
    return [rpc.split("/")[-1] for rpc in hosted.host.rpcs()].count("CreateSubmission")


HOLD_THE_LOCK = """
import sys
from pathlib import Path
from tasks.watch import WatchHistory

with WatchHistory(Path(sys.argv[1])).exclusive() as alone:
    print("held" if alone else "not held", flush=True)
    sys.stdin.read()  # until the test closes it
"""


def test_only_one_watch_of_a_competition_at_a_time(prefect_server, digits_store, tmp_path):
    """While another process holds the competition's watch lock, `headstart watch` says so, does nothing and exits
    0; once the lock is released, the watch runs."""
    from typer.testing import CliRunner

    from flows.cli import app

    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    folder = data_dir / "08_watch" / "local" / "digits"
    arguments = ["watch", "digits", "--data-dir", str(data_dir), "--no-retrain"]
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        refused = CliRunner().invoke(app, arguments)
        assert refused.exit_code == 0, refused.output
        assert refused.output == "another watch of digits is running; nothing done\n"
        assert not (folder / "snapshots").exists() and not WatchHistory(folder).decisions.read()
    finally:
        holder.stdin.close()
        holder.wait(30)
    watched = CliRunner().invoke(app, arguments)
    assert watched.exit_code == 0, watched.output
    assert watched.output == "digits: no move: first snapshot: nothing to compare with yet → nothing to do\n"
    assert len(list((folder / "snapshots").glob("*.json"))) == 1 and len(WatchHistory(folder).decisions.read()) == 1


def _other_team_submits(hosted, tmp_path, label: str, team: str = "bob") -> None:
    hosted.backend.submit(labelled_submission(hosted, tmp_path / f"{team}-{label}.csv", label), "theirs", team=team)


def test_a_move_retrains_once_and_nothing_twice(prefect_server, hosted, tmp_path):
    """Through `headstart host` with the Kaggle backend: another team passes us → exactly one retrain and one
    submission; the same change seen again, or our own new score, does nothing."""
    from flows.watch import run_watch

    config = _config(hosted)
    assert not run_watch(config)["moved"]  # the first snapshot: a baseline
    hosted.backend.submit(perfect_submission(hosted, tmp_path / "perfect.csv"), "a perfect one", team="carol")
    moved = run_watch(config)
    assert moved["moved"] and "the other teams' best score went None → 1 " in moved["line"]
    assert re.match(r"retrained at rung 0 \(the same recipe\): CV [0-9.]+ beats nothing submitted before → "
                    r"submitted \(public score [0-9.]+\)", moved["action"]), moved["action"]
    assert _sent(hosted) == 1 and moved["submission_status"] == "complete" and moved["submitted"]
    again = run_watch(config)
    assert not again["moved"] and _sent(hosted) == 1  # our own new row is not a move
    decisions = WatchHistory(config.paths.watch("digits")).decisions.read()
    assert [record["action"].split(" ")[0] for record in decisions] == ["none", "retrained", "none"]
    assert decisions[1]["rung"] == 0 and decisions[1]["cv"] == moved["cv"]
    assert len(list(config.paths.watch("digits").joinpath("snapshots").glob("*.json"))) == 3


def test_each_move_climbs_a_rung_and_submits_only_what_beats_the_best_cv(prefect_server, hosted, tmp_path,
                                                                         monkeypatch):
    """The second move retrains one rung up (another seed), not the same recipe again; it is submitted only if
    its CV beats the best submitted: here it is made to score lower, so it is not sent, and the decision says
    why."""
    from flows import climb as climbing
    from flows.watch import run_watch

    config = _config(hosted)
    run_watch(config)
    _other_team_submits(hosted, tmp_path, "1")
    first = run_watch(config)
    assert first["rung"] == 0 and first["submitted"] and _sent(hosted) == 1
    real = climbing.RunRecord.read

    def worse(path):  # the rung-1 run, as if it had scored lower than the one submitted
        record = real(path)
        return climbing.dataclasses.replace(record, blend_nested_cv_score=first["cv"] - 0.01)

    monkeypatch.setattr(climbing.RunRecord, "read", staticmethod(worse))
    _other_team_submits(hosted, tmp_path, "2")
    second = run_watch(config)
    assert second["rung"] == 1 and second["rung_name"] == "another seed" and not second["submitted"]
    assert second["action"] == (f"retrained at rung 1 (another seed): CV {number(first['cv'] - 0.01)} does not beat "
                                f"the best submitted {number(first['cv'])}; not submitted")
    assert _sent(hosted) == 1
    assert RunRecord.read(Path(second["run"])).config["seed"] == config.seed + 1


def test_a_used_quota_postpones_the_retrain_with_its_reason(prefect_server, hosted, tmp_path):
    from flows.watch import run_watch

    config = _config(hosted)
    run_watch(config)
    hosted.set_daily_limit(1)
    hosted.backend.submit(labelled_submission(hosted, tmp_path / "mine.csv", "3"), "ours by hand", team=USER)
    _other_team_submits(hosted, tmp_path, "1")
    postponed = run_watch(config)
    assert postponed["moved"] and "postponed: quota used (1/1 today)" in postponed["action"] and _sent(hosted) == 0
    hosted.set_daily_limit(5)  # a new day
    acted = run_watch(config)  # the same move, not handled yet, is acted on now
    assert acted["moved"] and "→ submitted" in acted["action"] and _sent(hosted) == 1


def test_new_data_triggers_a_download_and_a_retrain(prefect_server, hosted, tmp_path):
    from flows.watch import run_watch

    config = _config(hosted, submit=False)
    run_watch(config)
    with zipfile.ZipFile(hosted.backend.public_zip, "a") as zipped:  # a new data version
        zipped.writestr("extra_notes.txt", "more data")
    moved = run_watch(config)
    assert moved["moved"] and "the data files changed (extra_notes.txt)" in moved["reasons"]
    assert moved["action"].startswith("retrained") and (config.paths.raw("digits") / "extra_notes.txt").is_file()


@pytest.mark.slow  # two fresh processes importing TensorFlow and Prefect: the default suite stays under ten minutes
def test_the_watch_command_prints_one_line(prefect_server, hosted, tmp_path):
    """The real command, in a subprocess (against the session's Prefect server): one line, exit 0."""
    from prefect.settings import PREFECT_API_URL

    environment = {**USER_ENVIRONMENT, **hosted.env, "PREFECT_API_URL": PREFECT_API_URL.value()}
    arguments = [HEADSTART, "watch", "digits", "--backend", "kaggle", "--spec", hosted.spec_file, "--data-dir",
                 str(hosted.data_dir), "--no-submit", *RETRAIN]
    first = subprocess.run(arguments, env=environment, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and first.stdout.strip().splitlines() == [
        "digits: no move: first snapshot: nothing to compare with yet → nothing to do"], first.stdout + first.stderr
    _other_team_submits(hosted, tmp_path, "2")
    second = subprocess.run([*arguments, "--json"], env=environment, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    result = json.loads(second.stdout)
    assert result["moved"] and re.fullmatch(r"retrained at rung 0 \(the same recipe\): CV [0-9.]+; not submitted "
                                            r"\(--no-submit\)", result["action"]), result["action"]
    assert "Traceback" not in second.stderr
    assert_no_secret(first.stdout, first.stderr, second.stdout, second.stderr)



def test_a_watch_and_its_retrain_leave_artifacts(prefect_server, hosted, tmp_path):
    """Read back through Prefect's client: the watcher's decision and diff, the CV table, the submission with
    its leaderboard position, links to the pictures, and the progress of training."""
    from datetime import datetime, timezone

    from prefect.client.orchestration import get_client

    from flows.watch import run_watch

    started = datetime.now(timezone.utc)
    config = _config(hosted)
    run_watch(config)
    _other_team_submits(hosted, tmp_path, "4")
    assert run_watch(config)["moved"]
    with get_client(sync_client=True) as client:
        artifacts = sorted((artifact for artifact in client.read_artifacts() if artifact.created >= started),
                           key=lambda artifact: artifact.created)  # the latest of each key wins below
    by_key = {artifact.key: artifact for artifact in artifacts if artifact.key}
    assert "moved: the other teams' best score went None" in by_key["watch-digits"].data
    diff = json.loads(by_key["watch-digits-diff"].data)
    assert diff == [{"team": "bob", "rank_before": None, "rank_now": 1, "score_before": None,
                     "score_now": diff[0]["score_now"], "us": False}]  # as it was when the watch decided
    assert [row["member"] for row in json.loads(by_key["cv-scores"].data)] == [
        "softmax", "blend (caruana)", "blend (caruana), nested"]
    assert re.search(r"public score [0-9.]+ \(status complete\), leaderboard position [12],", by_key["submission"].data)
    links = [artifact.data for artifact in artifacts if artifact.type == "markdown" and "](file://" in artifact.data]
    assert any("confusion_matrix.png)" in link for link in links) and any("blend: " in link for link in links)
    progress = [artifact for artifact in artifacts if artifact.type == "progress"]
    assert progress and max(float(artifact.data) for artifact in progress) == 100.0


@pytest.mark.slow
def test_serve_retrains_on_the_watchers_event(hosted, tmp_path):
    """`headstart serve` against a real `prefect server start`: the watch deployment sees the leaderboard move and
    emits its event, the compete deployment's trigger starts a retrain, which completes and submits."""
    import os
    import signal
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    prefect_env = {**USER_ENVIRONMENT, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api,
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_RUNNER_POLL_FREQUENCY": "2",
                   "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    prefect = str(Path(HEADSTART).with_name("prefect"))
    server = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env={**prefect_env, "HTTP_PROXY": "", "http_proxy": ""}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    serving = None
    try:
        wait_until(lambda: _answers(f"{api}/health"), 180, "the prefect server", server, interval=1)
        environment = {**hosted.env, **prefect_env}
        serving = subprocess.Popen(
            [HEADSTART, "serve", "digits", "--backend", "kaggle", "--spec", hosted.spec_file, "--data-dir",
             str(hosted.data_dir), "--watch-every", "10", "--cron", "0 0 1 1 *", *RETRAIN],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        decisions = WatchHistory(hosted.data_dir / "08_watch" / "kaggle" / "digits").decisions
        wait_until(lambda: len(decisions.read()) >= 1, 240, "the first watch: a baseline", serving, 1)
        _other_team_submits(hosted, tmp_path, "5")
        wait_until(lambda: any(record["moved"] for record in decisions.read()), 120, "a move seen", serving, 1)
        moved = next(record for record in decisions.read() if record["moved"])
        assert moved["action"].startswith("event headstart.leaderboard.moved emitted")
        wait_until(lambda: _sent(hosted) >= 1, 300, "the triggered compete run to submit", serving, 1)
        wait_until(lambda: any(run["state_type"] == "COMPLETED" for run in _flow_runs(api)
                               if run["name_of_flow"] == "compete"), 120, "the compete run to complete", serving, 1)
        retrains = [run for run in _flow_runs(api) if run["name_of_flow"] == "compete" and run["state_type"] != "SCHEDULED"]
        assert [(run["created_by"], run["state_type"]) for run in retrains] == [("AUTOMATION", "COMPLETED")]
        assert _sent(hosted) == 1
        # A retrain in flight when serve gets SIGTERM (itself only, as `kill` sends it) is cancelled, not left to
        # crash with the process, and both deployments' schedules are paused.
        compete = next(item for item in _post(api, "/deployments/filter", {}) if item["name"] == "compete-digits")
        in_flight = _post(api, f"/deployments/{compete['id']}/create_flow_run", {})["id"]
        wait_until(lambda: _flow_run(api, in_flight)["state_type"] == "RUNNING", 120, "a run in flight", serving, 1)
        serving.send_signal(signal.SIGTERM)
        serving.wait(120)
        assert _flow_run(api, in_flight)["state_type"] == "CANCELLED", _flow_run(api, in_flight)["state"]
        served = [item for item in _post(api, "/deployments/filter", {}) if item["name"].endswith("-digits")]
        assert len(served) == 2 and all(item["paused"] for item in served), served
        # prefect.yaml deploys the same two onto a process work pool.
        root = Path(__file__).resolve().parents[1]
        for command in (["work-pool", "create", "headstart", "--type", "process"], ["--no-prompt", "deploy", "--all"]):
            deployed = subprocess.run([prefect, *command], env=prefect_env, cwd=root, capture_output=True, text=True,
                                      timeout=180)
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        names = {deployment["name"] for deployment in _post(api, "/deployments/filter", {})}
        assert {"compete-digits", "watch-digits"} <= names
    finally:
        for process in (serving, server):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False


def _post(api: str, path: str, body: dict) -> list:
    import urllib.request

    request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _flow_run(api: str, flow_run_id: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"{api}/flow_runs/{flow_run_id}", timeout=10) as response:
        return json.loads(response.read())


def _flow_runs(api: str) -> list[dict]:
    """Every flow run on the server, with its flow's name, state and who created it."""
    flows = {flow["id"]: flow["name"] for flow in _post(api, "/flows/filter", {})}
    return [{"name_of_flow": flows.get(run["flow_id"]), "state_type": run["state_type"],
             "created_by": (run.get("created_by") or {}).get("type")} for run in _post(api, "/flow_runs/filter", {})]


def test_the_metric_of_a_kaggle_competition_without_a_spec_yet():
    """Before its first download a Kaggle competition has no spec (asking for it raises): the direction comes
    from the name Kaggle gives its metric."""
    from flows.watch import metric_of

    class NotDownloaded:  # a Kaggle backend before the first download: no spec known yet
        known_spec = None

        @property
        def spec(self):
            raise AssertionError("the spec of a competition not downloaded yet was asked for")

        def evaluation_metric(self):
            return "Multi Class Log Loss"

    assert metric_of(NotDownloaded()) == "log_loss"


def test_a_served_retrain_climbs_its_rung_and_records_it(prefect_server, hosted, tmp_path):
    """The compete deployment a watcher's event triggers (rung in its parameters): one rung up, submitted when it
    beats the best submitted, the outcome in the watch's history where the next move reads it."""
    from flows.compete import compete

    config = _config(hosted)
    run_json = compete(config, rung=0)
    record = RunRecord.read(Path(run_json))
    assert record.config["seed"] == config.seed and _sent(hosted) == 1
    history = WatchHistory(config.paths.watch("digits")).decisions.read()
    assert history[-1]["rung"] == 0 and history[-1]["submitted"] and history[-1]["cv"] is not None
    compete(config, rung=1)
    history = WatchHistory(config.paths.watch("digits")).decisions.read()
    assert history[-1]["rung"] == 1 and history[-1]["run"] != history[-2]["run"]
    assert _sent(hosted) == (2 if history[-1]["submitted"] else 1)


def test_a_served_watch_loads_no_tensorflow():
    """A served watch runs every few minutes in a process of its own: it imports neither TensorFlow nor Keras (seconds
    and a gigabyte each time, which starved the runner's other runs under load); only a retrain does."""
    import subprocess
    import sys

    probe = "import sys, flows.watch; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
