"""The competition RPCs a hosted local competition answers (kernels: tasks/host/kernel_api.py, datasets:
tasks/host/dataset_api.py, the routes of all of them: tasks/host/routes.py).

Each handler takes (host, user, request) — the request parsed into its kagglesdk type — and returns
an object of the RPC's kagglesdk response type, a Redirect to a file URL, or raw bytes (a file
download); a HostError becomes Kaggle's {"code", "message"}. In a code competition a submission names a kernel
version, and is scored from that version's second run (with KAGGLE_IS_COMPETITION_RERUN set), as Kaggle scores one
on its hidden test set, not from the file the first run left.
"""

from __future__ import annotations

import io
import time
import zipfile
from datetime import datetime, timezone

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
    ApiListTeamPublicSubmissionsResponse,
    ApiPublicSubmission,
    ApiStartSubmissionUploadResponse,
    ApiSubmission,
    ApiSubmissionLimits,
)
from kagglesdk.competitions.types.submission_status import SubmissionStatus

from tasks.backends.local import QuotaError
from tasks.host.common import HostError, Redirect, page_of
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
                team_count=len(team_ids(host)), user_rank=user_rank(host, user))


def team_ids(host: CompetitionHost) -> dict[str, int]:
    """Each team's number, in the order teams first submitted (stable, unlike its rank)."""
    ids: dict[str, int] = {}
    for record in host.backend.submissions():
        ids.setdefault(record["team"], len(ids) + 1)
    return ids


def user_rank(host: CompetitionHost, user: str) -> int | None:
    """The caller's place on the public leaderboard (ApiCompetition.userRank, which ListCompetitions and
    GetCompetition carry: kaggle-cli issues 1090 and 1094); None before their first scored submission."""
    return next((row["rank"] for row in _leaderboard(host) if row["team"] == user), None)


def list_competitions(host: CompetitionHost, user: str, request) -> ApiListCompetitionsResponse:
    found = (request.search or "").lower() in host.backend.name.lower()
    return make(ApiListCompetitionsResponse, competitions=[competition_object(host, user)] if found else [])


def get_competition(host: CompetitionHost, user: str, request) -> ApiCompetition:
    host.competition(request.competition_name)
    return competition_object(host, user)


def list_data_files(host: CompetitionHost, user: str, request) -> ApiListDataFilesResponse:
    """The competition's files (name, size, date), in pages of `pageSize` (the client asks for 20)."""
    backend = host.competition(request.competition_name)
    with zipfile.ZipFile(backend.public_zip) as zipped:
        members = [info for info in zipped.infolist() if not info.is_dir()]
    page, token = page_of(members, request)
    return make(ApiListDataFilesResponse, next_page_token=token, files=[
        make(ApiDataFile, name=info.filename, ref=info.filename, total_bytes=info.file_size,
             creation_date=datetime(*info.date_time)) for info in page])


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


def _submit(host: CompetitionHost, user: str, submit) -> dict:
    """`submit()` (the backend's submit or add_pending) under the host's count of submissions in all (parallel
    submits raced past it); the record."""
    total_cap = host.settings.total_limit
    with host.submit_lock:
        if total_cap is not None and len(host.backend.submissions(user)) >= total_cap:
            raise HostError(400, f"Submission not allowed: the competition's limit of {total_cap} submissions in "
                                 "all is reached")
        try:
            return submit()
        except QuotaError as error:
            raise HostError(400, f"Submission not allowed: {error}") from None


def create_submission(host: CompetitionHost, user: str, request) -> ApiCreateSubmissionResponse:
    host.competition(request.competition_name)
    host.require_rules(user)
    _refuse_file_submissions(host)
    path = host.upload(request.blob_file_tokens, user)
    record = _submit(host, user, lambda: host.backend.submit(path, request.submission_description, team=user))
    return make(ApiCreateSubmissionResponse, message=f"Successfully submitted to {host.backend.name}",
                ref=record["ref"])


def create_code_submission(host: CompetitionHost, user: str, request) -> ApiCreateCodeSubmissionResponse:
    """A kernel version's submission: counted now, scored from the version's scoring run (`score_code`). The
    version must exist and its run must have left the file, as Kaggle checks before it accepts one."""
    host.competition(request.competition_name)
    host.require_rules(user)
    if request.kernel_owner != user:
        raise HostError(403, "You can only submit your own notebooks")
    slug, file_name = request.kernel_slug, request.file_name or "submission.csv"
    version = int(host.kernels.directory(user, slug, request.kernel_version or None).name)
    host.kernels.output_file(user, slug, version, file_name)
    record = _submit(host, user, lambda: host.backend.add_pending(file_name, request.submission_description, user))
    host.kernels._start(score_code, host, record["ref"], user, slug, version, file_name)
    return make(ApiCreateCodeSubmissionResponse, message=f"Successfully submitted to {host.backend.name}",
                ref=record["ref"])


def score_code(host: CompetitionHost, ref: int, owner: str, slug: str, version: int, file_name: str) -> None:
    """Run the version again as Kaggle scores a code submission, and score the file that run writes. A run that
    fails, or writes no such file, is an error whose description is empty, as Kaggle's often is ("Notebook Threw
    Exception" is shown on its page, not in errorDescription); the run's log is kept in the version's reruns/."""
    try:
        failure, working = host.kernels.rerun(owner, slug, version, f"submission-{ref}")
        path = working / file_name
        scored = not failure and path.is_file() and not path.is_symlink()
        host.backend.score_pending(ref, path if scored else None, error="")
    except Exception:  # never a submission pending forever
        host.backend.score_pending(ref, None, error="")


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


def list_submissions(host: CompetitionHost, user: str, request) -> ApiListSubmissionsResponse:
    backend = host.competition(request.competition_name)
    page, token = page_of([submission_object(host, record) for record in reversed(backend.submissions(user))], request)
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
    ids = team_ids(host)
    rows = [make(ApiLeaderboardSubmission, team_id=ids[row["team"]], team_name=row["team"],
                 submission_date=naive_utc(row["date"]), score=_score_text(row["score"]))
            for row in _leaderboard(host)]
    page, token = page_of(rows, request)
    return make(ApiGetLeaderboardResponse, submissions=page, next_page_token=token)


def download_leaderboard(host: CompetitionHost, user: str, request) -> bytes:
    backend = host.competition(request.competition_name)
    lines = ["Rank,TeamId,TeamName,LastSubmissionDate,Score"]
    ids = team_ids(host)
    lines += [f"{row['rank']},{ids[row['team']]},{row['team']},{row['date']},{row['score']}" for row in _leaderboard(host)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr(f"{backend.name}-publicleaderboard.csv", "\n".join(lines) + "\n")
    return buffer.getvalue()


def download_submission(host: CompetitionHost, user: str, request) -> Redirect:
    """The file of one of the caller's submissions (a code submission's: what its scoring run wrote)."""
    record = next((record for record in host.backend.submissions(user) if record["ref"] == request.submission_id),
                  None)
    if record is None or not host.backend.stored_file(record).is_file():
        raise HostError(404, f"Submission {request.submission_id} not found")
    return Redirect(host.file_url(user, f"submissions/{record['ref']}/{host.backend.stored_file(record).name}"))


def list_team_public_submissions(host: CompetitionHost, user: str, request) -> ApiListTeamPublicSubmissionsResponse:
    """The submission a team has on the public leaderboard (a regular competition has one per team)."""
    team = next((name for name, number in team_ids(host).items() if number == request.team_id), None)
    if team is None:
        raise HostError(404, f"Team {request.team_id} not found")
    rows = [row for row in _leaderboard(host) if row["team"] == team]
    return make(ApiListTeamPublicSubmissionsResponse, submissions=[
        make(ApiPublicSubmission, id=row["ref"], date_submitted=naive_utc(row["date"]), public_score=_score_text(
            row["score"])) for row in rows])


COMPETITION_ROUTES = {COMPETITIONS + name: handler for name, handler in {
    "ListCompetitions": list_competitions, "GetCompetition": get_competition, "ListDataFiles": list_data_files,
    "DownloadDataFiles": download_data_files, "DownloadDataFile": download_data_file,
    "StartSubmissionUpload": start_submission_upload, "CreateSubmission": create_submission,
    "CreateCodeSubmission": create_code_submission, "ListSubmissions": list_submissions,
    "GetSubmission": get_submission, "GetSubmissionLimits": get_submission_limits,
    "GetLeaderboard": get_leaderboard, "DownloadLeaderboard": download_leaderboard,
    "DownloadSubmission": download_submission, "ListTeamPublicSubmissions": list_team_public_submissions}.items()}
