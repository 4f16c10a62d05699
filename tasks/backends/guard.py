"""The submission guard: validate first, respect the day's quota, never send a file twice, log everything.

Every submission, whatever the backend, passes here; its record (with the file's sha256 and its
score) is appended to data/06_submissions/<competition>/log.jsonl. Before a send, a "sending" record
names the attempt (an id also put in the description the server keeps): a process killed after the
server made the submission but before it logged the answer leaves that record alone, and the next
guard check finds the attempt among the server's submissions instead of sending the file again.
"""

from __future__ import annotations

import logging
import secrets
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
# Statuses of a send that is not a submission: under way (or cut off), or found never to have reached the server.
SENDING, UNSENT = "sending", "unsent"
logger = logging.getLogger("headstart")


def _latest_states(records: list[dict]) -> list[dict]:
    """The last record of each attempt (or, in logs older than attempt ids, of each ref)."""
    latest: dict = {}
    for record in records:
        latest[record.get("attempt") or record.get("ref") or f"unsent-{len(latest)}"] = record
    return list(latest.values())


def latest_records(records: list[dict]) -> list[dict]:
    """The last state of each submission (a pending record is followed by its scored one); a send not known
    to have reached the server (sending, unsent) is none."""
    return [record for record in _latest_states(records) if record.get("status") not in (SENDING, UNSENT)]


def interrupted_sends(records: list[dict]) -> list[dict]:
    """"sending" records with no outcome after them: the process died (or lost the connection) mid-send."""
    return [record for record in _latest_states(records) if record.get("status") == SENDING]


def tagged_description(description: str, attempt: str) -> str:
    """The description sent: the user's words, then the attempt id by which the send is found on the server."""
    return f"{description} (attempt {attempt})" if description else f"attempt {attempt}"


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


def _refuse_duplicate(path: Path, previous: dict, identity: str | None) -> None:
    what = f"this submission ({identity})" if identity else f"this exact file (sha256 {previous['sha256'][:12]})"
    raise DuplicateSubmissionError(
        f"{path.name}: {what} was submitted already as ref {previous.get('ref')} on {previous.get('date')} (status "
        f"{previous.get('status')}, public score {shown_score(previous.get('public_score'))}); nothing was sent; use "
        "--force to send it again")


def shown_score(score) -> str:
    """A score as a person reads it: 'none yet' for one Kaggle has not given (pending, or an error)."""
    return "none yet" if score is None else f"{score:.5g}" if isinstance(score, float) else str(score)


def guarded_submit(backend, path: Path, sample_path: Path, log_path: Path, description: str = "",
                   force: bool = False, send: Callable | None = None, now: datetime | None = None,
                   if_duplicate: str = "raise", identity: str | None = None) -> dict:
    """Validate, check for duplicates and the quota, send with `send(path, description)`, wait, log.

    A submission sent before is refused (DuplicateSubmissionError), or with `if_duplicate="previous"` its
    earlier record is returned marked `duplicate: True`; `force` sends it again. What makes it the same is its
    file's sha256, or `identity` when given: a code competition's submission is a kernel version (Kaggle re-runs
    it on the hidden test set and scores that run), so a new version is a new submission even when the file it
    left here is byte for byte the last one's.
    """
    path, now = Path(path), now or datetime.now(timezone.utc)
    check_file(path, sample_path, backend.spec)
    log = JsonLines(log_path)
    # One step for every process on this machine: the check, the send and the record, under the log's lock
    # (six processes sending one file at once otherwise all passed the check and sent it five times).
    with log.locked():
        return _submit_once(backend, path, log, description, force, send, now, if_duplicate, identity)


def settle_interrupted_sends(backend, log: JsonLines) -> list[dict]:
    """Log the outcome of each send cut off before its answer was logged, from the server's list of our
    submissions (every page): the submission whose description holds the attempt id, else "unsent" (nothing
    was made, so the file may be sent). Returns the log's records. Call under the log's lock."""
    records = log.read()
    interrupted = interrupted_sends(records)
    if not interrupted:
        return records
    try:
        on_server = backend.submissions()
    except BackendError as error:
        raise type(error)(f"{Path(interrupted[0]['file']).name}: an earlier send was cut off before its answer was "
                          f"logged, and the server's submissions could not be listed to see whether it arrived "
                          f"({error}); nothing was sent; try again") from None
    for sending in interrupted:
        found = next((submission for submission in on_server
                      if sending["attempt"] in (submission.get("description") or "")), None)
        if found is None:
            log.append({**sending, "status": UNSENT})
            continue
        logger.warning("%s: a send cut off by an earlier stop reached the server as submission %s (status %s); "
                       "logged it, not sent again", Path(sending["file"]).name, found.get("ref"), found.get("status"))
        log.append({**sending, **found, "attempt": sending["attempt"]})
    return log.read()


def _submit_once(backend, path: Path, log: JsonLines, description: str, force: bool, send: Callable | None,
                 now: datetime, if_duplicate: str, identity: str | None) -> dict:
    # A backend that lists our submissions can be asked later whether a cut-off send arrived; only then is the
    # intent logged (a notebook's mount cannot be asked, and cannot send).
    capabilities = backend.capabilities
    if not capabilities.submits:
        backend.submit(path, description)  # says why it cannot
    askable = capabilities.lists_submissions
    digest = sha256_file(path)
    records = settle_interrupted_sends(backend, log) if askable else log.read()
    same = (lambda r: r.get("identity") == identity) if identity else (lambda r: r.get("sha256") == digest
                                                                         and not r.get("identity"))
    previous = next((r for r in reversed(latest_records(records)) if same(r)), None)
    if previous and not force:
        if previous.get("status") == "pending" and capabilities.scores_later:
            # A retry after the file was sent: wait for that submission rather than send it again.
            return log.append({**previous, **backend.wait(previous["ref"])})
        if if_duplicate == "previous":
            return {**previous, "duplicate": True}
        _refuse_duplicate(path, previous, identity)
    check_quota(server_limits(backend), records, now, capabilities.daily_limit or DEFAULT_DAILY_LIMIT)
    base = {"date": now.isoformat(), "competition": backend.name, "backend": type(backend).__name__,
            "file": str(path), "sha256": digest, "forced": bool(previous and force),
            **({"identity": identity} if identity else {})}
    if askable:
        attempt = secrets.token_hex(8)
        base["attempt"], description = attempt, tagged_description(description, attempt)
        log.append({**base, "status": SENDING})
    if send is None and not capabilities.scores_later:
        return log.append({**base, **backend.submit(path, description)})
    pending = log.append({**base, **(send or backend.send)(path, description)})
    return log.append({**pending, **backend.wait(pending["ref"])})
