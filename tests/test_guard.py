"""The submission guard: validate before any request, the day's quota, one send per file, the log."""

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.backends.base import Capabilities
from tasks.backends.guard import (
    check_quota,
    guarded_submit,
    latest_records,
    newest_submission,
    sent_today,
)
from tasks.backends.kaggle import KaggleBackend, kaggle_spec
from tasks.errors import ConfigError, DuplicateSubmissionError, QuotaError, SubmissionError, TransientBackendError
from tasks.files import JsonLines, sha256_file
from tests.hosting import labelled_submission, perfect_submission

NOW = datetime(2026, 1, 2, 12, tzinfo=timezone.utc)


def kaggle_backend(hosted) -> KaggleBackend:
    return KaggleBackend(kaggle_spec("digits", hosted.spec_file), poll_interval=0.05)


def sample_path(hosted, tmp_path) -> Path:
    path = tmp_path / "sample_submission.csv"
    hosted.backend.sample_submission().to_csv(path, index=False)
    return path


def rpc_names(hosted) -> list[str]:
    return [rpc.split("/")[-1] for rpc in hosted.host.rpcs()]


def test_invalid_file_is_refused_before_any_request(hosted, tmp_path):
    bad = tmp_path / "bad.csv"
    hosted.backend.sample_submission().assign(Label="eleven").to_csv(bad, index=False)
    backend = kaggle_backend(hosted)
    with pytest.raises(SubmissionError, match=r"bad.csv: row 2, column 'Label': label 'eleven' is not one of"):
        guarded_submit(backend, bad, sample_path(hosted, tmp_path), tmp_path / "log.jsonl")
    assert hosted.host.requests == [] and not (tmp_path / "log.jsonl").exists()


def test_missing_sample_says_to_download_first(hosted, tmp_path):
    with pytest.raises(SubmissionError, match="no sample submission.*download the competition first"):
        guarded_submit(kaggle_backend(hosted), perfect_submission(hosted, tmp_path / "p.csv"),
                       tmp_path / "missing.csv", tmp_path / "log.jsonl")


def test_same_file_is_sent_once_unless_forced(hosted, tmp_path):
    backend, sample, log = kaggle_backend(hosted), sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    first = guarded_submit(backend, path, sample, log, "first")
    assert first["status"] == "complete" and first["public_score"] == 1.0
    copy = Path(shutil.copyfile(path, tmp_path / "renamed.csv"))
    with pytest.raises(DuplicateSubmissionError, match="renamed.csv: this exact file .* submitted already as ref 1"
                                                       ".*nothing was sent; use --force"):
        guarded_submit(backend, copy, sample, log)
    assert rpc_names(hosted).count("CreateSubmission") == 1
    assert guarded_submit(backend, copy, sample, log, if_duplicate="previous")["duplicate"] is True
    forced = guarded_submit(backend, copy, sample, log, force=True)
    assert forced["ref"] == 2 and forced["forced"] is True
    assert [record["ref"] for record in latest_records(JsonLines(log).read())] == [1, 2]
    assert all(record["sha256"] == JsonLines(log).read()[0]["sha256"] for record in JsonLines(log).read())


def test_quota_from_the_server_refuses_without_uploading(hosted, tmp_path):
    hosted.set_daily_limit(1)
    backend, sample, log = kaggle_backend(hosted), sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    guarded_submit(backend, labelled_submission(hosted, tmp_path / "a.csv", "1"), sample, log)
    with pytest.raises(QuotaError, match=r"quota used \(1/1 today by the server's count\); nothing was sent"):
        guarded_submit(backend, labelled_submission(hosted, tmp_path / "b.csv", "2"), sample, log)
    assert rpc_names(hosted).count("StartSubmissionUpload") == 1


def test_quota_falls_back_to_the_local_log(hosted, tmp_path):
    """The server cannot say (500): the log's count of today's submissions decides."""
    backend, sample, log = kaggle_backend(hosted), sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"ref": ref, "date": NOW.isoformat(), "sha256": str(ref), "status": "complete"})
                           + "\n" for ref in range(1, 6)))
    hosted.host.fail_next(500, count=5, path_contains="GetSubmissionLimits")  # every one of the call's tries
    with pytest.raises(QuotaError, match=r"\(5/5 today by the local log\)"):
        guarded_submit(backend, labelled_submission(hosted, tmp_path / "c.csv", "3"), sample, log, now=NOW)
    assert "StartSubmissionUpload" not in rpc_names(hosted)


def test_check_quota_counts_today_only():
    yesterday = (NOW - timedelta(days=1)).isoformat()
    records = [{"ref": 1, "date": yesterday}, {"ref": 2, "date": NOW.isoformat()},
               {"ref": 2, "date": NOW.isoformat(), "status": "complete"}]
    check_quota(None, records, NOW, daily_limit=2)  # one today: allowed
    with pytest.raises(QuotaError):
        check_quota(None, records, NOW, daily_limit=1)
    check_quota({"used": 4, "remaining": 1}, records, NOW, daily_limit=1)  # the server's word wins


class PendingBackend:
    """Was sent, is still being scored: a retry must wait for it, not send it again."""

    capabilities = Capabilities(submits=True, scores_later=True, lists_submissions=False)

    def __init__(self, spec):
        self.spec, self.name, self.sent, self.waited = spec, spec.slug, 0, []

    def send(self, path, description):
        self.sent += 1
        return {"ref": 7, "status": "pending"}

    def wait(self, ref):
        self.waited.append(ref)
        return {"ref": ref, "status": "complete", "public_score": 0.5}

    def limits(self):
        return {"used": 0, "remaining": 5}


def test_a_pending_submission_is_awaited_not_resent(hosted, tmp_path):
    backend, sample, log = PendingBackend(hosted.backend.spec), sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    guarded_submit(backend, path, sample, log)
    log.write_text(log.read_text().splitlines()[0] + "\n")  # as if the process died while polling
    assert guarded_submit(backend, path, sample, log)["public_score"] == 0.5
    assert backend.sent == 1 and backend.waited == [7, 7]


def test_newest_submission(tmp_path):
    with pytest.raises(ConfigError, match="no submission files"):
        newest_submission(tmp_path)
    older, newer = tmp_path / "a.csv", tmp_path / "b.csv"
    older.write_text("x")
    newer.write_text("y")
    os.utime(older, (1, 1))
    assert newest_submission(tmp_path) == newer


def test_local_backend_goes_through_the_guard_and_the_cli(prefect_server, digits_store, tmp_path):
    """`headstart submit digits`: the newest file, validated, logged with its hash; never twice."""
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    from tasks.backends import open_local_backend
    from tasks.paths import DataPaths

    paths = DataPaths(data_dir)
    backend = open_local_backend("digits", paths)
    backend.download(paths.raw("digits"))
    submissions = paths.submissions("digits")
    submissions.mkdir(parents=True)
    backend.solution()[["ImageId", "Label"]].to_csv(submissions / "20260101T000000Z-perfect.csv", index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["submit", "digits", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "status complete, public score 1.0" in result.output
    log = latest_records(JsonLines(submissions / "log.jsonl").read())
    assert len(log) == 1 and log[0]["backend"] == "LocalBackend" and len(log[0]["sha256"]) == 64
    assert log[0]["public_score"] == 1.0 and log[0]["attempt"] in backend.submissions()[0]["description"]
    again = runner.invoke(app, ["submit", "digits", "--data-dir", str(data_dir)])
    assert again.exit_code == 1 and "submitted already as ref 1" in again.output
    bad = submissions / "bad.csv"
    bad.write_text("ImageId,Label\n1,3\n")
    refused = runner.invoke(app, ["submit", "digits", str(bad), "--data-dir", str(data_dir)])
    assert refused.exit_code == 1 and "bad.csv: 1 rows; expected 540" in refused.output
    assert len(backend.submissions()) == 1


def test_naive_kaggle_dates_are_utc(monkeypatch):
    """kagglesdk strips the `Z`: a naive date is UTC, whatever the machine's time zone."""
    import time
    from types import SimpleNamespace

    from tasks.backends.kaggle import submission_record

    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: local and UTC dates differ most of the day
    time.tzset()
    try:
        submission = SimpleNamespace(ref=7, date=datetime(2026, 11, 26, 5, 0), file_name="a.csv", description="",
                                     status=SimpleNamespace(name="COMPLETE"), public_score="0.9",
                                     private_score="", error_description="")
        record = submission_record(submission)
        assert record["date"] == "2026-11-26T05:00:00+00:00"
        now = datetime(2026, 11, 26, 23, 0, tzinfo=timezone.utc)
        assert sent_today([record], now) == 1
        assert sent_today([{**record, "date": "2026-11-26T05:00:00"}], now) == 1  # older logs held naive dates
    finally:
        monkeypatch.undo()
        time.tzset()


def _limits(**values):
    from types import SimpleNamespace

    from tasks.backends.kaggle import KaggleBackend, kaggle_spec

    limits = SimpleNamespace(**{"num_today": 0, "num_total": 0, "num_allowed_now": 0, "limited_by_total": False,
                                **values})
    api = SimpleNamespace(config_values={}, competition_get_submission_limits=lambda name: limits)
    return KaggleBackend(kaggle_spec("digit-recognizer"), api=api).limits()


def test_all_zero_limits_are_unknown_not_a_used_quota():
    """Kaggle answers all zeros for a user who is not on a team yet: not '0/0 used'."""
    assert _limits() is None
    check_quota(_limits(), [], datetime.now(timezone.utc), daily_limit=5)  # nothing refused
    assert _limits(num_today=2, num_total=9, num_allowed_now=3)["remaining"] == 3


def test_a_lifetime_cap_is_not_explained_as_a_daily_one():
    limits = _limits(num_today=1, num_total=50, num_allowed_now=0, limited_by_total=True)
    with pytest.raises(QuotaError, match="lifetime submission cap") as error:
        check_quota(limits, [], datetime.now(timezone.utc), daily_limit=5)
    assert "midnight" not in str(error.value)
    with pytest.raises(QuotaError, match="after midnight UTC"):
        check_quota(_limits(num_today=5, num_total=9), [], datetime.now(timezone.utc), daily_limit=5)


def test_a_submission_still_being_scored_is_recorded_as_pending(hosted, tmp_path):
    """A code competition scores for hours: after the poll's timeout the submission is returned and logged as
    pending (it was made), not raised as a failure."""
    backend = KaggleBackend(kaggle_spec("digits", hosted.spec_file), poll_interval=0.05, poll_timeout=0.5)
    sample, log = sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    hosted.host.fail_next(404, count=10_000, path_contains="GetSubmission")  # not scored yet, as Kaggle says
    record = guarded_submit(backend, perfect_submission(hosted, tmp_path / "p.csv"), sample, log)
    assert record["status"] == "pending" and record["ref"] == 1
    assert [entry["status"] for entry in JsonLines(log).read()] == ["sending", "pending", "pending"]
    hosted.host.take_fault = lambda path: None  # scoring done
    assert backend.submissions()[0]["status"] == "complete"


# A process killed at one point of a send, for real: a child runs the guard and os._exit()s there. "upload": after
# the file is uploaded, before the submission is created (the kaggle client's two calls); "create": after it is
# created, before the guard logs it.
KILLED_AT = """
import os, sys
from pathlib import Path
from kaggle.api.kaggle_api_extended import KaggleApi
from tasks.backends.guard import guarded_submit
from tasks.backends.kaggle import KaggleBackend, kaggle_spec

point, spec_file, path, sample, log = sys.argv[1:]
owner, name = (KaggleApi, "upload_complete") if point == "upload" else (KaggleBackend, "send")
original = getattr(owner, name)


def then_die(self, *args, **kwargs):
    original(self, *args, **kwargs)
    os._exit(9)


setattr(owner, name, then_die)
guarded_submit(KaggleBackend(kaggle_spec("digits", spec_file)), Path(path), Path(sample), Path(log))
"""


def submit_killed_at(point: str, hosted, path: Path, sample: Path, log: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLED_AT, point, hosted.spec_file, str(path), str(sample),
                             str(log)], env=hosted.env, cwd=Path(__file__).parent.parent, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == 9, killed.stderr[-3000:]


@pytest.mark.slow
def test_a_kill_between_upload_and_create_sends_the_file_once(hosted, tmp_path):
    sample, log = sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    submit_killed_at("upload", hosted, path, sample, log)
    assert "StartSubmissionUpload" in rpc_names(hosted) and "CreateSubmission" not in rpc_names(hosted)
    assert [request["status"] for request in hosted.host.requests if request["method"] == "PUT"] == [200]  # uploaded
    assert hosted.backend.submissions() == [] and latest_records(JsonLines(log).read()) == []
    # The next run: the server has no submission of that attempt, so the file is sent, once, and only once after.
    assert guarded_submit(kaggle_backend(hosted), path, sample, log)["public_score"] == 1.0
    assert [record["status"] for record in JsonLines(log).read()][:3] == ["sending", "unsent", "sending"]
    assert guarded_submit(kaggle_backend(hosted), path, sample, log, if_duplicate="previous")["duplicate"] is True
    assert rpc_names(hosted).count("CreateSubmission") == 1 and len(hosted.backend.submissions()) == 1


@pytest.mark.slow
def test_a_kill_between_create_and_log_sends_no_duplicate(hosted, tmp_path):
    """The server made the submission, the process died before logging it: the next run finds the attempt among
    the server's submissions (by the id in its description), logs it as sent and does not send the file again."""
    sample, log = sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    submit_killed_at("create", hosted, path, sample, log)
    assert len(hosted.backend.submissions()) == 1 and latest_records(JsonLines(log).read()) == []
    again = guarded_submit(kaggle_backend(hosted), path, sample, log, if_duplicate="previous")
    assert rpc_names(hosted).count("CreateSubmission") == 1 and len(hosted.backend.submissions()) == 1
    assert again["duplicate"] is True and again["ref"] == 1 and again["public_score"] == 1.0
    records = JsonLines(log).read()
    assert [record["status"] for record in records] == ["sending", "complete"]
    assert records[0]["attempt"] == records[1]["attempt"] in hosted.backend.submissions()[0]["description"]
    assert sent_today(records, datetime.now(timezone.utc)) == 1


class ListingBackend(PendingBackend):
    """PendingBackend that can list its submissions: what the server holds, or a failure to list them."""

    capabilities = Capabilities(submits=True, scores_later=True, lists_submissions=True)

    def __init__(self, spec, on_server: list[dict] | Exception):
        super().__init__(spec)
        self.on_server = on_server

    def submissions(self):
        if isinstance(self.on_server, Exception):
            raise self.on_server
        return self.on_server


def _cut_off_send(log: Path, path: Path, attempt: str = "0123456789abcdef") -> None:
    """The log a process leaves when killed after the server made the submission, before the answer was logged."""
    JsonLines(log).append({"date": NOW.isoformat(), "competition": "digits", "backend": "KaggleBackend",
                           "file": str(path), "sha256": sha256_file(path), "forced": False, "attempt": attempt,
                           "status": "sending"})


def test_a_cut_off_send_found_on_the_server_is_logged_not_resent(hosted, tmp_path):
    sample, log = sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    _cut_off_send(log, path)
    assert latest_records(JsonLines(log).read()) == [] and sent_today(JsonLines(log).read(), NOW) == 0
    made = {"ref": 7, "status": "pending", "description": "headstart (attempt 0123456789abcdef)",
            "date": NOW.isoformat()}
    backend = ListingBackend(hosted.backend.spec, [{"ref": 6, "description": "other", "status": "complete"}, made])
    record = guarded_submit(backend, path, sample, log)
    assert backend.sent == 0 and backend.waited == [7] and record["public_score"] == 0.5  # awaited, not resent
    assert [entry["status"] for entry in JsonLines(log).read()] == ["sending", "pending", "complete"]
    assert sent_today(JsonLines(log).read(), NOW) == 1


def test_a_cut_off_send_not_on_the_server_is_sent(hosted, tmp_path):
    sample, log = sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    _cut_off_send(log, path)
    backend = ListingBackend(hosted.backend.spec, [{"ref": 6, "description": "headstart (attempt 99)"}])
    assert guarded_submit(backend, path, sample, log, "mine")["public_score"] == 0.5 and backend.sent == 1
    records = JsonLines(log).read()
    assert [entry["status"] for entry in records] == ["sending", "unsent", "sending", "pending", "complete"]
    assert records[2]["attempt"] != records[0]["attempt"] and [r["ref"] for r in latest_records(records)] == [7]


def test_a_cut_off_send_that_cannot_be_checked_sends_nothing(hosted, tmp_path):
    sample, log = sample_path(hosted, tmp_path), tmp_path / "log.jsonl"
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    _cut_off_send(log, path)
    backend = ListingBackend(hosted.backend.spec, TransientBackendError("Kaggle could not list submissions (503)"))
    with pytest.raises(TransientBackendError) as caught:
        guarded_submit(backend, path, sample, log)
    assert str(caught.value).startswith("perfect.csv: an earlier send was cut off before its answer was logged")
    assert "(Kaggle could not list submissions (503)); nothing was sent; try again" in str(caught.value)
    assert backend.sent == 0 and [entry["status"] for entry in JsonLines(log).read()] == ["sending"]
