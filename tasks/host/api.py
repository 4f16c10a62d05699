"""The competition RPCs a hosted local competition answers; kernels and datasets live in tasks/host/kernels.py.

Each handler takes (host, user, request) — the request parsed into its kagglesdk type — and returns
an object of the RPC's kagglesdk response type, a Redirect to a file URL, or raw bytes (a file
download); a HostError becomes Kaggle's {"code", "message"}.
"""

from __future__ import annotations

import io
import secrets
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from kagglesdk.competitions.types.competition_api_service import (
    ApiCompetition,
    ApiCreateCodeSubmissionResponse,
    ApiCreateSubmissionResponse,
    ApiDataFile,
    ApiGetLeaderboardResponse,
    ApiLeaderboardSubmission,
    ApiListCompetitionsResponse,
    ApiListDataFilesResponse,
    ApiListSubmissionsResponse,
    ApiStartSubmissionUploadResponse,
    ApiSubmission,
    ApiSubmissionLimits,
)
from kagglesdk.competitions.types.submission_status import SubmissionStatus
from kagglesdk.security.types.oauth_service import IntrospectTokenResponse

from tasks.backends.local import QuotaError
from tasks.host.common import HostError, Redirect, number
from tasks.host.datasets import DATASET_ROUTES
from tasks.host.kernels import KERNEL_ROUTES
from tasks.host.rpc import make, naive_utc
from tasks.host.state import CompetitionHost

COMPETITIONS = "competitions.CompetitionApiService/"
NEVER = datetime(2099, 12, 31, 23, 59, 59)  # the deadline of a competition without one: it never ends


def competition_object(host: CompetitionHost, user: str) -> ApiCompetition:
    backend = host.backend
    url = f"{host.base_url}/competitions/{backend.name}"
    return make(ApiCompetition, id=1, ref=url, url=url, title=backend.name, category="Playground",
                reward="Knowledge", deadline=host.settings.deadline or NEVER,
                enabled_date=naive_utc(backend.settings.get("created")), max_daily_submissions=backend.daily_limit,
                evaluation_metric=backend.spec.metric,
                is_kernels_submissions_only=host.settings.code_competition, user_has_entered=host.has_entered(user),
                team_count=len({record["team"] for record in backend.submissions()}))


def list_competitions(host: CompetitionHost, user: str, request) -> ApiListCompetitionsResponse:
    found = (request.search or "").lower() in host.backend.name.lower()
    return make(ApiListCompetitionsResponse, competitions=[competition_object(host, user)] if found else [])


def get_competition(host: CompetitionHost, user: str, request) -> ApiCompetition:
    host.competition(request.competition_name)
    return competition_object(host, user)


def list_data_files(host: CompetitionHost, user: str, request) -> ApiListDataFilesResponse:
    backend = host.competition(request.competition_name)
    with zipfile.ZipFile(backend.public_zip) as zipped:
        members = [info for info in zipped.infolist() if not info.is_dir()]
    return make(ApiListDataFilesResponse, files=[
        make(ApiDataFile, name=info.filename, ref=info.filename, total_bytes=info.file_size,
             creation_date=datetime(*info.date_time)) for info in members])


def download_data_files(host: CompetitionHost, user: str, request) -> Redirect:
    backend = host.competition(request.competition_name)
    host.require_rules(user)
    return Redirect(host.file_url(user, f"files/{backend.name}/{backend.name}.zip"))


def download_data_file(host: CompetitionHost, user: str, request) -> Redirect:
    backend = host.competition(request.competition_name)
    host.require_rules(user)
    with zipfile.ZipFile(backend.public_zip) as zipped:
        if request.file_name not in zipped.namelist():
            raise HostError(404, f"File {request.file_name!r} not found in {backend.name}")
    return Redirect(host.file_url(user, f"files/{backend.name}/member/{request.file_name}"))


def _refuse_file_submissions(host: CompetitionHost) -> None:
    if host.settings.code_competition:
        raise HostError(400, f"{host.backend.name} is a code competition: submit a notebook's output instead")


def start_submission_upload(host: CompetitionHost, user: str, request) -> ApiStartSubmissionUploadResponse:
    host.competition(request.competition_name)
    host.require_rules(user)
    _refuse_file_submissions(host)
    token, url = host.new_upload(user, request.file_name or "submission.csv")
    return make(ApiStartSubmissionUploadResponse, token=token, create_url=url)


def _submit(host: CompetitionHost, user: str, path: Path, description: str) -> int:
    total_cap = host.settings.total_limit
    with host.submit_lock:  # the count and the submission it allows, as one step (parallel submits raced past it)
        if total_cap is not None and len(host.backend.submissions(user)) >= total_cap:
            raise HostError(400, f"Submission not allowed: the competition's limit of {total_cap} submissions in "
                                 "all is reached")
        try:
            return host.backend.submit(path, description, team=user)["ref"]
        except QuotaError as error:
            raise HostError(400, f"Submission not allowed: {error}") from None


def create_submission(host: CompetitionHost, user: str, request) -> ApiCreateSubmissionResponse:
    host.competition(request.competition_name)
    host.require_rules(user)
    _refuse_file_submissions(host)
    ref = _submit(host, user, host.upload(request.blob_file_tokens, user), request.submission_description)
    return make(ApiCreateSubmissionResponse, message=f"Successfully submitted to {host.backend.name}", ref=ref)


def create_code_submission(host: CompetitionHost, user: str, request) -> ApiCreateCodeSubmissionResponse:
    host.competition(request.competition_name)
    host.require_rules(user)
    if request.kernel_owner != user:
        raise HostError(403, "You can only submit your own notebooks")
    path = host.kernels.output_file(user, request.kernel_slug, request.kernel_version or None,
                                    request.file_name or "submission.csv")
    ref = _submit(host, user, path, request.submission_description)
    return make(ApiCreateCodeSubmissionResponse, message=f"Successfully submitted to {host.backend.name}", ref=ref)


def _score_text(score) -> str:
    return "" if score is None else repr(float(score))


def _scoring(host: CompetitionHost, record: dict) -> bool:
    """Whether a code submission is still being scored: Kaggle re-runs the notebook on the hidden test set."""
    delay = host.settings.code_scoring_seconds if host.settings.code_competition else 0.0
    submitted = datetime.fromisoformat(record["date"]).timestamp()
    return record["status"] == "complete" and time.time() - submitted < delay


def _ended(host: CompetitionHost) -> bool:
    """Whether the competition is over: until then, as on Kaggle, nobody sees a private score."""
    return datetime.now(timezone.utc).replace(tzinfo=None) >= (host.settings.deadline or NEVER)


def submission_object(host: CompetitionHost, record: dict) -> ApiSubmission:
    pending = _scoring(host, record)
    return make(ApiSubmission, ref=record["ref"], date=naive_utc(record["date"]),
                description=record.get("description") or "", error_description=record.get("error") or "",
                file_name=record.get("file_name", ""),
                public_score="" if pending else _score_text(record.get("public_score")),
                private_score=_score_text(record.get("private_score")) if _ended(host) and not pending else "",
                status=SubmissionStatus.PENDING if pending else SubmissionStatus[record["status"].upper()],
                submitted_by=record["team"], team_name=record["team"])


def _page(items: list, request) -> tuple[list, str]:
    """One page of a list, as Kaggle pages them: `page_size` (default 20) and an opaque `next_page_token`."""
    size = max(1, min(request.page_size or 20, 200))
    start = number(request.page_token or "0")
    if start is None:
        raise HostError(400, f"Invalid page token {request.page_token[:20]!r}")
    following = start + size
    return items[start:following], str(following) if following < len(items) else ""


def list_submissions(host: CompetitionHost, user: str, request) -> ApiListSubmissionsResponse:
    backend = host.competition(request.competition_name)
    page, token = _page([submission_object(host, record) for record in reversed(backend.submissions(user))], request)
    return make(ApiListSubmissionsResponse, submissions=page, next_page_token=token)


def get_submission(host: CompetitionHost, user: str, request) -> ApiSubmission:
    for record in host.backend.submissions(user):
        if record["ref"] == request.ref:
            return submission_object(host, record)
    raise HostError(404, f"Submission {request.ref} not found")


def get_submission_limits(host: CompetitionHost, user: str, request) -> ApiSubmissionLimits:
    """Today's use and what is left. All zero for a user not on a team yet, as Kaggle answers them."""
    backend = host.competition(request.competition_name)
    if not host.has_entered(user):
        return make(ApiSubmissionLimits)
    limits, total = backend.limits(user), len(backend.submissions(user))
    cap = host.settings.total_limit
    capped = cap is not None and total >= cap
    return make(ApiSubmissionLimits, num_today=limits["used"], num_total=total,
                num_allowed_now=0 if capped else limits["remaining"], limited_by_total=capped)


def _leaderboard(host: CompetitionHost) -> list[dict]:
    scoring = {record["ref"] for record in host.backend.submissions() if _scoring(host, record)}
    return [row for row in host.backend.leaderboard() if row["ref"] not in scoring]


def get_leaderboard(host: CompetitionHost, user: str, request) -> ApiGetLeaderboardResponse:
    host.competition(request.competition_name)
    rows = [make(ApiLeaderboardSubmission, team_id=row["rank"], team_name=row["team"],
                 submission_date=naive_utc(row["date"]), score=_score_text(row["score"]))
            for row in _leaderboard(host)]
    page, token = _page(rows, request)
    return make(ApiGetLeaderboardResponse, submissions=page, next_page_token=token)


def download_leaderboard(host: CompetitionHost, user: str, request) -> bytes:
    backend = host.competition(request.competition_name)
    lines = ["Rank,TeamId,TeamName,LastSubmissionDate,Score"]
    lines += [f"{row['rank']},{row['rank']},{row['team']},{row['date']},{row['score']}" for row in _leaderboard(host)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr(f"{backend.name}-publicleaderboard.csv", "\n".join(lines) + "\n")
    return buffer.getvalue()


def introspect_token(host: CompetitionHost, user: str, request) -> IntrospectTokenResponse:
    """Whether a token is the caller's own (the client sends it as its Bearer token): never whose another is."""
    users = dict(host.settings.users)
    own = secrets.compare_digest(users[user], request.token or "") if users else bool(request.token)
    return make(IntrospectTokenResponse, active=own, username=user if own else "")


COMPETITION_ROUTES = {
    "ListCompetitions": list_competitions, "GetCompetition": get_competition, "ListDataFiles": list_data_files,
    "DownloadDataFiles": download_data_files, "DownloadDataFile": download_data_file,
    "StartSubmissionUpload": start_submission_upload, "CreateSubmission": create_submission,
    "CreateCodeSubmission": create_code_submission, "ListSubmissions": list_submissions,
    "GetSubmission": get_submission, "GetSubmissionLimits": get_submission_limits,
    "GetLeaderboard": get_leaderboard, "DownloadLeaderboard": download_leaderboard}
ROUTES = {**{COMPETITIONS + name: handler for name, handler in COMPETITION_ROUTES.items()},
          **KERNEL_ROUTES, **DATASET_ROUTES, "security.OAuthService/IntrospectToken": introspect_token}


def dispatch(host: CompetitionHost, rpc: str, caller, request):
    """Answer one RPC for the caller (`caller()` authenticates them: a 401 if unknown)."""
    handler = ROUTES.get(rpc)
    if handler is None:
        raise HostError(404, f"{rpc} is not supported by headstart host")
    return handler(host, caller(), request)


def _inside(root: Path, relative: str) -> Path | None:
    path = (root / relative).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def resolve_file(host: CompetitionHost, path: str) -> Path | None:
    """The file behind a signed file URL: the public zip, one of its members, or a kernel's output."""
    parts = path.strip("/").split("/")
    backend = host.backend
    if parts[:2] == ["files", backend.name] and parts[2:] == [f"{backend.name}.zip"]:
        return backend.public_zip
    if parts[:3] == ["files", backend.name, "member"] and len(parts) > 3:
        return _zip_member(host, "/".join(parts[3:]))
    if parts[0] == "kernel-output" and len(parts) > 4 and number(parts[3]) is not None:
        try:
            return _inside(host.kernels.output_dir(parts[1], parts[2], number(parts[3])), "/".join(parts[4:]))
        except HostError:
            return None
    return None


def _zip_member(host: CompetitionHost, name: str) -> Path | None:
    cache = host.store / "members"
    with zipfile.ZipFile(host.backend.public_zip) as zipped:
        if name not in zipped.namelist():
            return None
        target = _inside(cache, name)
        if target is not None and not target.is_file():
            zipped.extract(name, cache)
    return target

