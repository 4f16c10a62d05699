"""The submission guard: validate first, respect the day's quota, never send a file twice, log everything.

Every submission, whatever the backend, passes here; its record (with the file's sha256 and its
score) is appended to data/06_submissions/<competition>/log.jsonl.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tasks.backends.local import DEFAULT_DAILY_LIMIT
from tasks.competitions import CompetitionSpec
from tasks.errors import (
    AccessDeniedError,
    AuthenticationError,
    BackendError,
    ConfigError,
    DuplicateSubmissionError,
    QuotaError,
    SubmissionError,
)
from tasks.files import JsonLines, sha256_file
from tasks.submission import read_submission, validate_submission

LOG_NAME = "log.jsonl"


def latest_records(records: list[dict]) -> list[dict]:
    """The last state of each submission (a pending record is followed by its scored one)."""
    latest: dict = {}
    for record in records:
        latest[record.get("ref") or f"unsent-{len(latest)}"] = record
    return list(latest.values())


def utc(text: str) -> datetime:
    """A logged ISO date as an aware UTC datetime (a naive one is UTC, as kagglesdk's are)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def sent_today(records: list[dict], now: datetime) -> int:
    today = now.astimezone(timezone.utc).date()
    return sum(utc(record["date"]).date() == today for record in latest_records(records))


def check_file(path: Path, sample_path: Path, spec: CompetitionSpec) -> None:
    """Validate a submission against the competition's sample submission; raises SubmissionError."""
    path, sample_path = Path(path), Path(sample_path)
    if not path.is_file():
        raise SubmissionError(f"{path}: submission file not found")
    if not sample_path.is_file():
        raise SubmissionError(f"{sample_path}: no sample submission to check {path.name} against; "
                              "download the competition first (`headstart run`)")
    validate_submission(read_submission(path), read_submission(sample_path), spec, source=path.name)


def check_quota(limits: dict | None, records: list[dict], now: datetime, daily_limit: int) -> None:
    """Refuse when the quota is used: the server's count when known, else this log's."""
    used, allowed = (limits["used"], limits["used"] + limits["remaining"]) if limits else \
        (sent_today(records, now), daily_limit)
    if used < allowed:
        return
    if limits and limits.get("limited_by_total"):
        raise QuotaError("the competition's lifetime submission cap is reached for your team (the server allows "
                         "no more, today or later); nothing was sent")
    source = "the server's count" if limits else "the local log"
    raise QuotaError(f"daily submission quota used ({used}/{allowed} today by {source}); "
                     "nothing was sent; try again after midnight UTC")


def server_limits(backend) -> dict | None:
    """The backend's own quota count, or None when it cannot be read (then the local log decides)."""
    try:
        return backend.limits()
    except (AuthenticationError, AccessDeniedError):
        raise
    except BackendError:
        return None


def newest_submission(directory: Path) -> Path:
    """The newest CSV written to data/06_submissions/<competition>/."""
    files = sorted(Path(directory).glob("*.csv"), key=lambda path: (path.stat().st_mtime, path.name))
    if not files:
        raise ConfigError(f"{directory}: no submission files here; write one with `headstart run --no-submit`")
    return files[-1]


def _refuse_duplicate(path: Path, previous: dict) -> None:
    raise DuplicateSubmissionError(
        f"{path.name}: this exact file (sha256 {previous['sha256'][:12]}) was submitted already as ref "
        f"{previous.get('ref')} on {previous.get('date')} (status {previous.get('status')}, public score "
        f"{previous.get('public_score')}); nothing was sent; use --force to send it again")


def guarded_submit(backend, path: Path, sample_path: Path, log_path: Path, description: str = "",
                   force: bool = False, send: Callable | None = None, now: datetime | None = None,
                   if_duplicate: str = "raise") -> dict:
    """Validate, check for duplicates and the quota, send with `send(path, description)`, wait, log.

    A file sent before is refused (DuplicateSubmissionError), or with `if_duplicate="previous"` its
    earlier record is returned marked `duplicate: True`; `force` sends it again.
    """
    path, now = Path(path), now or datetime.now(timezone.utc)
    check_file(path, sample_path, backend.spec)
    log = JsonLines(log_path)
    # One step for every process on this machine: the check, the send and the record, under the log's lock
    # (six processes sending one file at once otherwise all passed the check and sent it five times).
    with log.locked():
        return _submit_once(backend, path, log, description, force, send, now, if_duplicate)


def _submit_once(backend, path: Path, log: JsonLines, description: str, force: bool, send: Callable | None,
                 now: datetime, if_duplicate: str) -> dict:
    digest, records = sha256_file(path), log.read()
    previous = next((r for r in reversed(latest_records(records)) if r.get("sha256") == digest), None)
    if previous and not force:
        if previous.get("status") == "pending" and hasattr(backend, "wait"):
            # A retry after the file was sent: wait for that submission rather than send it again.
            return log.append({**previous, **backend.wait(previous["ref"])})
        if if_duplicate == "previous":
            return {**previous, "duplicate": True}
        _refuse_duplicate(path, previous)
    check_quota(server_limits(backend), records, now, getattr(backend, "daily_limit", DEFAULT_DAILY_LIMIT))
    base = {"date": now.isoformat(), "competition": backend.name, "backend": type(backend).__name__,
            "file": str(path), "sha256": digest, "forced": bool(previous and force)}
    if send is None and not hasattr(backend, "send"):
        return log.append({**base, **backend.submit(path, description)})
    pending = log.append({**base, **(send or backend.send)(path, description)})
    return log.append({**pending, **backend.wait(pending["ref"])})
