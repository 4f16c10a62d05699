"""The Kaggle RPCs a hosted local competition answers: competitions here, kernels and datasets in host_kernels.

Each handler takes (host, user, request JSON) and returns response JSON (camelCase, as the client
reads it), a Redirect to a file URL, or raw bytes; a HostError becomes {"code", "message"}.
"""

from __future__ import annotations

import io
import secrets
import zipfile
from pathlib import Path

from tasks.backends.local import QuotaError
from tasks.host.common import HostError, Redirect
from tasks.host.kernels import DATASET_ROUTES, KERNEL_ROUTES
from tasks.host.state import CompetitionHost

COMPETITIONS = "competitions.CompetitionApiService/"


def competition_json(host: CompetitionHost) -> dict:
    backend = host.backend
    url = f"{host.base_url}/competitions/{backend.name}"
    return {"id": 1, "ref": url, "url": url, "title": backend.name, "category": "Playground", "reward": "Knowledge",
            "deadline": "2099-12-31T23:59:59Z", "enabledDate": backend.settings.get("created"),
            "maxDailySubmissions": backend.daily_limit, "evaluationMetric": backend.spec.metric,
            "isKernelsSubmissionsOnly": host.settings.code_competition, "userHasEntered": True,
            "teamCount": len({record["team"] for record in backend.submissions()})}


def list_competitions(host: CompetitionHost, user: str, request: dict) -> dict:
    search = (request.get("search") or "").lower()
    return {"competitions": [competition_json(host)] if search in host.backend.name.lower() else []}


def get_competition(host: CompetitionHost, user: str, request: dict) -> dict:
    host.competition(request.get("competitionName"))
    return competition_json(host)


def list_data_files(host: CompetitionHost, user: str, request: dict) -> dict:
    backend = host.competition(request.get("competitionName"))
    with zipfile.ZipFile(backend.public_zip) as zipped:
        members = [info for info in zipped.infolist() if not info.is_dir()]
    return {"files": [{"name": info.filename, "ref": info.filename, "totalBytes": info.file_size,
                       "creationDate": "%04d-%02d-%02dT%02d:%02d:%02dZ" % info.date_time} for info in members]}


def download_data_files(host: CompetitionHost, user: str, request: dict) -> Redirect:
    backend = host.competition(request.get("competitionName"))
    host.require_rules(user)
    return Redirect(host.file_url(f"files/{backend.name}/{backend.name}.zip"))


def download_data_file(host: CompetitionHost, user: str, request: dict) -> Redirect:
    backend = host.competition(request.get("competitionName"))
    host.require_rules(user)
    with zipfile.ZipFile(backend.public_zip) as zipped:
        if request.get("fileName") not in zipped.namelist():
            raise HostError(404, f"File {request.get('fileName')!r} not found in {backend.name}")
    return Redirect(host.file_url(f"files/{backend.name}/member/{request['fileName']}"))


def _refuse_file_submissions(host: CompetitionHost) -> None:
    if host.settings.code_competition:
        raise HostError(400, f"{host.backend.name} is a code competition: submit a notebook's output instead")


def start_submission_upload(host: CompetitionHost, user: str, request: dict) -> dict:
    host.competition(request.get("competitionName"))
    host.require_rules(user)
    _refuse_file_submissions(host)
    return host.new_upload(user, request.get("fileName") or "submission.csv")


def _submit(host: CompetitionHost, user: str, path: Path, description: str) -> dict:
    try:
        record = host.backend.submit(path, description, team=user)
    except QuotaError as error:
        raise HostError(400, f"Submission not allowed: {error}") from None
    return {"message": f"Successfully submitted to {host.backend.name}", "ref": record["ref"]}


def create_submission(host: CompetitionHost, user: str, request: dict) -> dict:
    host.competition(request.get("competitionName"))
    host.require_rules(user)
    _refuse_file_submissions(host)
    return _submit(host, user, host.upload(request.get("blobFileTokens", ""), user),
                   request.get("submissionDescription", ""))


def create_code_submission(host: CompetitionHost, user: str, request: dict) -> dict:
    host.competition(request.get("competitionName"))
    host.require_rules(user)
    if request.get("kernelOwner") != user:
        raise HostError(403, "You can only submit your own notebooks")
    path = host.kernels.output_file(user, request.get("kernelSlug", ""), request.get("kernelVersion"),
                                    request.get("fileName") or "submission.csv")
    return _submit(host, user, path, request.get("submissionDescription", ""))


def _score_text(score) -> str:
    return "" if score is None else repr(float(score))


def submission_json(record: dict) -> dict:
    return {"ref": record["ref"], "date": record["date"], "description": record.get("description") or "",
            "errorDescription": record.get("error") or "", "fileName": record.get("file_name", ""),
            "publicScore": _score_text(record.get("public_score")),
            "privateScore": _score_text(record.get("private_score")),
            "status": record["status"].upper(), "submittedBy": record["team"], "teamName": record["team"]}


def _page(items: list, request: dict) -> dict:
    """One page of a list, as Kaggle pages them: `pageSize` (default 20) and an opaque `nextPageToken`."""
    size = max(1, min(int(request.get("pageSize") or 20), 200))
    token = str(request.get("pageToken") or "")
    start = int(token) if token.isdigit() else 0
    following = start + size
    return {"submissions": items[start:following], "nextPageToken": str(following) if following < len(items) else ""}


def list_submissions(host: CompetitionHost, user: str, request: dict) -> dict:
    backend = host.competition(request.get("competitionName"))
    return _page([submission_json(record) for record in reversed(backend.submissions(user))], request)


def get_submission(host: CompetitionHost, user: str, request: dict) -> dict:
    for record in host.backend.submissions(user):
        if record["ref"] == int(request.get("ref") or 0):
            return submission_json(record)
    raise HostError(404, f"Submission {request.get('ref')} not found")


def get_submission_limits(host: CompetitionHost, user: str, request: dict) -> dict:
    backend = host.competition(request.get("competitionName"))
    limits = backend.limits(user)
    return {"numToday": limits["used"], "numTotal": len(backend.submissions(user)),
            "numAllowedNow": limits["remaining"], "limitedByTotal": False}


def get_leaderboard(host: CompetitionHost, user: str, request: dict) -> dict:
    backend = host.competition(request.get("competitionName"))
    return _page([{"teamId": row["rank"], "teamName": row["team"], "submissionDate": row["date"],
                   "score": _score_text(row["score"])} for row in backend.leaderboard()], request)


def download_leaderboard(host: CompetitionHost, user: str, request: dict) -> bytes:
    backend = host.competition(request.get("competitionName"))
    lines = ["Rank,TeamId,TeamName,LastSubmissionDate,Score"]
    lines += [f"{row['rank']},{row['rank']},{row['team']},{row['date']},{row['score']}" for row in backend.leaderboard()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr(f"{backend.name}-publicleaderboard.csv", "\n".join(lines) + "\n")
    return buffer.getvalue()


def introspect_token(host: CompetitionHost, authorization: str | None, request: dict) -> dict:
    token = request.get("token") or ""
    for name, key in host.settings.users:
        if secrets.compare_digest(key, token):
            return {"active": True, "username": name}
    return {"active": not host.settings.users and bool(token), "username": "you"}


def routes() -> dict:
    competition_routes = {
        "ListCompetitions": list_competitions, "GetCompetition": get_competition, "ListDataFiles": list_data_files,
        "DownloadDataFiles": download_data_files, "DownloadDataFile": download_data_file,
        "StartSubmissionUpload": start_submission_upload, "CreateSubmission": create_submission,
        "CreateCodeSubmission": create_code_submission, "ListSubmissions": list_submissions,
        "GetSubmission": get_submission, "GetSubmissionLimits": get_submission_limits,
        "GetLeaderboard": get_leaderboard, "DownloadLeaderboard": download_leaderboard}
    return {**{COMPETITIONS + name: handler for name, handler in competition_routes.items()},
            **KERNEL_ROUTES, **DATASET_ROUTES}


def dispatch(host: CompetitionHost, rpc: str, authorization: str | None, request: dict):
    """Answer one RPC for the authenticated caller."""
    if rpc == "security.OAuthService/IntrospectToken":
        return introspect_token(host, authorization, request)
    handler = routes().get(rpc)
    if handler is None:
        raise HostError(404, f"{rpc} is not supported by headstart host")
    return handler(host, host.authenticate(authorization), request)


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
    if parts[0] == "kernel-output" and len(parts) > 4:
        return _inside(host.kernels.output_dir(parts[1], parts[2], int(parts[3])), "/".join(parts[4:]))
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
