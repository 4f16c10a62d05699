"""Kaggle through its official client: download, submit and poll, submissions, leaderboard, quota.

Only this module (and tasks/backends/kernels.py, which uses its helpers) touches the network. `import kaggle`
authenticates at import time, so the client is imported inside functions, never at module level.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from tasks.backends.base import Capabilities
from tasks.backends.kaggle_client import authenticated_api, call_kaggle
from tasks.competitions import (
    BUILTIN_SPECS,
    CompetitionSpec,
    resolve_spec,
    spec_from_dict,
    unpack_archive,
)
from tasks.errors import (
    BackendError,
    NotFoundError,
    SpecError,
    UploadError,
)
from tasks.files import atomic_write_json, poll, sha256_file
from tasks.layouts import unpack_image_archives
from tasks.spec_inference import infer_and_save_spec, saved_spec

DOWNLOAD_MARKER = ".headstart-download.json"
logger = logging.getLogger("headstart")


GIVEN_SPEC = ".headstart-given-spec.json"  # the spec a run was given with --spec, for the commands after it


def known_kaggle_spec(name: str, spec: str | None = None, raw_dir: Path | None = None) -> CompetitionSpec | None:
    """A Kaggle competition's spec: from `spec` (built-in name, .toml path, or a local competition's
    competition.json, as for one served by `headstart host`), else built in by slug, else the one saved in
    <raw_dir>/spec.toml (inferred at download, maybe edited), else the one the last run was given (--spec); None
    when there is none yet."""
    if spec and spec.endswith(".json") and Path(spec).is_file():
        values = json.loads(Path(spec).read_text())
        if "spec" in values:
            return spec_from_dict(values["spec"], source=spec).with_slug(name)
    if spec:
        return resolve_spec(spec).with_slug(name)
    if name in BUILTIN_SPECS:
        return BUILTIN_SPECS[name]
    if raw_dir is None:
        return None
    given = Path(raw_dir) / GIVEN_SPEC
    return saved_spec(name, Path(raw_dir)) or (spec_from_dict(json.loads(given.read_text()), source=str(given))
                                               if given.is_file() else None)


def remember_given_spec(spec: CompetitionSpec, raw_dir: Path) -> None:
    """Keep the spec a run was given beside the competition's files: `headstart leaderboard`, `submit` and
    `watch` without --spec find it there."""
    atomic_write_json(Path(raw_dir) / GIVEN_SPEC, spec.to_dict())


def kaggle_spec(name: str, spec: str | None = None, raw_dir: Path | None = None) -> CompetitionSpec:
    """The spec of `known_kaggle_spec`, or a SpecError that says how to get one."""
    found = known_kaggle_spec(name, spec, raw_dir)
    if found is None:
        raise SpecError(f"no spec for the Kaggle competition {name!r} yet: built-in specs are {sorted(BUILTIN_SPECS)}; "
                        f"a run infers one from its files, as `headstart spec {name} --backend kaggle --write` does, "
                        "or describe it in a .toml file and pass it with --spec")
    return found


def _score(value) -> float | None:
    with contextlib.suppress(TypeError, ValueError):
        return float(value) if value not in (None, "") else None
    return None


def utc_text(moment: datetime | None) -> str | None:
    """kagglesdk's datetimes come back naive (UTC with the `Z` stripped): stamp them as UTC."""
    if moment is None:
        return None
    return (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment).isoformat()


def submission_record(submission) -> dict:
    """An ApiSubmission as the backends' plain record."""
    status = getattr(submission.status, "name", str(submission.status)).lower()
    date = utc_text(getattr(submission, "date", None))
    return {"ref": submission.ref, "date": date, "file_name": submission.file_name,
            "description": submission.description, "status": status,
            "public_score": _score(submission.public_score), "private_score": _score(submission.private_score),
            "error": submission.error_description or None, "team": getattr(submission, "team_name", None) or None}


def _present(destination: Path, listing: list[dict]) -> bool:
    """Whether every listed file is in `destination` (a zip member may have become a folder of its name)."""
    return all((destination / item["name"]).exists() or (destination / Path(item["name"]).stem).exists()
               for item in listing)


class KaggleBackend:
    """One Kaggle competition through the official client (tasks/backends/base.py's Backend). Opened once per run:
    it authenticates when it is made."""

    capabilities = Capabilities(submits=True, scores_later=True, lists_submissions=True, daily_limit=None)

    def __init__(self, spec: CompetitionSpec | None, api=None, poll_interval: float = 5.0, poll_timeout: float = 3600.0,
                 slug: str | None = None):
        # Without a spec (a competition with no built-in one, not downloaded yet) the download infers it.
        self.known_spec, self.name = spec, spec.slug if spec else slug
        self.api = api if api is not None else authenticated_api()
        self.poll_interval, self.poll_timeout = poll_interval, poll_timeout

    @property
    def spec(self) -> CompetitionSpec:
        return kaggle_spec(self.name) if self.known_spec is None else self.known_spec

    def _call(self, action: str, function, *args, **kwargs):
        return call_kaggle(self.api, self.name, action, function, *args, **kwargs)

    def download(self, destination: Path) -> CompetitionSpec:
        """Download and unpack the competition's files into `destination`; without a spec, infer one from
        them and save it there as spec.toml. Returns the spec."""
        destination = self.download_files(destination)
        if self.known_spec is None:
            self.known_spec = infer_and_save_spec(self.name, destination, self.evaluation_metric())
        unpack_image_archives(self.spec, destination)
        return self.spec

    def download_files(self, destination: Path) -> Path:
        """Download the competition's zip (resumable) and unpack it into `destination`; not at all when the files
        Kaggle lists (names, sizes, dates) are those unpacked there last time. Kaggle rate-limits DownloadDataFiles
        for 30 minutes and more (kaggle-cli issue 931); ListDataFiles is a page of 20 names."""
        destination = Path(destination)
        marker, listing = destination / DOWNLOAD_MARKER, self.data_files()
        if self._unpacked(destination, listing):
            logger.info("%s: the competition's %d files are unchanged since they were downloaded to %s; not "
                        "downloaded again", self.name, len(listing), destination)
            return destination
        archive = destination.parent / f".{destination.name}.download" / f"{self.name}.zip"
        self._fetch_archive(archive)
        digest = sha256_file(archive)
        if not (marker.is_file() and json.loads(marker.read_text()).get("sha256") == digest
                and _present(destination, listing)):
            unpack_archive(archive, destination)
        atomic_write_json(marker, {"sha256": digest, "source": f"kaggle:{self.name}", "files": listing})
        return destination

    @staticmethod
    def _unpacked(destination: Path, listing: list[dict]) -> bool:
        """Whether `destination` holds this listing's files, unpacked from it."""
        marker = destination / DOWNLOAD_MARKER
        return bool(listing and marker.is_file() and json.loads(marker.read_text()).get("files") == listing
                    and _present(destination, listing))

    def _fetch_archive(self, archive: Path) -> None:
        """Download the competition's zip to `archive` unless the copy there is current (the client's test: the
        server's size, not newer). The bytes go to `<archive>.partial`, which the client resumes after a kill (its
        `.kaggle-partial` marker proves they are of the same file), and are renamed once whole: a run killed
        mid-download never leaves half a zip under the name the next run unpacks."""
        from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

        request = ApiDownloadDataFilesRequest()
        request.competition_name = self.name
        partial, quiet = archive.with_name(archive.name + ".partial"), not sys.stderr.isatty()
        # The client's own progress bar in a terminal, on stderr with its messages (stdout is for results).
        with self.api.build_kaggle_client() as kaggle, contextlib.redirect_stdout(sys.stderr):
            response = self._call("download the competition files",
                                  kaggle.competitions.competition_api_client.download_data_files, request)
            if archive.is_file() and not self.api.download_needed(response, str(archive), quiet):
                return
            self._call("download the competition files", self.api.download_file, response, str(partial),
                       kaggle.http_client(), quiet=quiet, resume=True)
        os.replace(partial, archive)

    def download_file(self, file_name: str, destination: Path) -> Path:
        """One competition file (e.g. the sample submission) into `destination`."""
        self._call(f"download {file_name}", self.api.competition_download_file, self.name, file_name,
                   path=str(destination), quiet=True, unzip=True)
        return Path(destination) / file_name

    def send(self, path: Path, description: str = "") -> dict:
        """The three-step upload; returns the pending submission. A failed upload raises (nothing was sent)."""
        # Not tried again within the call: one Kaggle accepted before the error would be two submissions (the
        # submit step runs again only through the guard, which looks at the submissions first).
        response = self._call("submit", self.api.competition_submit, str(path), description, self.name, quiet=True,
                              retry=False)
        if not getattr(response, "ref", 0):
            raise UploadError(f"{self.name}: uploading {Path(path).name} failed "
                                        f"({response.message or 'no submission was created'}); nothing was submitted")
        return {"ref": response.ref, "status": "pending", "file_name": Path(path).name, "description": description,
                "public_score": None, "private_score": None, "error": None}

    def send_code(self, kernel: str, version: int, file_name: str, description: str = "") -> dict:
        """Submit a kernel version's output file to a code competition; returns the pending submission."""
        response = self._call("submit the notebook output", self.api.competition_submit_code, file_name,
                              description, self.name, kernel=kernel, kernel_version=version, quiet=True,
                              retry=False)  # as a file's: never twice within the call
        if not getattr(response, "ref", 0):
            raise BackendError(f"{self.name}: code submission of {kernel} v{version} was not created "
                               f"({response.message or 'no reason given'})")
        return {"ref": response.ref, "status": "pending", "file_name": file_name, "description": description,
                "public_score": None, "private_score": None, "error": None}

    def wait(self, ref: int) -> dict:
        """Poll a submission until it is scored (or errors). Still pending after `poll_timeout` seconds (a code
        competition re-runs the notebook on the hidden test set, which can take hours), it is returned as
        pending: it was made, and `headstart submissions` shows its score later."""
        def scored() -> dict | None:
            try:
                record = submission_record(self._call("check the submission", self.api.get_submission, ref))
            except NotFoundError:  # as the kaggle CLI does: a new submission may not be visible yet
                return None
            return None if record["status"] == "pending" else record

        try:
            return poll(scored, self.poll_interval, self.poll_timeout, TimeoutError)
        except TimeoutError:
            logger.warning("%s: submission %s is still being scored after %.0f s; see `headstart submissions %s "
                           "--backend kaggle` for its score", self.name, ref, self.poll_timeout, self.name)
            return {"ref": ref, "status": "pending"}

    def submit(self, path: Path, description: str = "") -> dict:
        """Upload a submission file and wait for its score."""
        return self.wait(self.send(path, description)["ref"])

    def _all_pages(self, action: str, method: str, request, limit: int | None = None) -> list:
        """Every item of a paged list call (Kaggle answers 20 at a time with a next-page token), or only the pages
        that hold the first `limit` items."""
        items, seen = [], set()
        while True:
            with self.api.build_kaggle_client() as kaggle:
                call = getattr(kaggle.competitions.competition_api_client, method)
                response = self._call(action, call, request)
            items += response.submissions or []
            token = response.next_page_token
            if not token or token in seen or (limit is not None and len(items) >= limit):
                return items[:limit]
            seen.add(token)
            request.page_token = token

    def submissions(self, team: str | None = None) -> list[dict]:
        """Your team's submissions, newest first, every page (`team` is for parity with LocalBackend: Kaggle
        answers only yours)."""
        from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest
        from kagglesdk.competitions.types.competition_enums import SubmissionGroup, SubmissionSortBy

        request = ApiListSubmissionsRequest()
        request.competition_name, request.page_size = self.name, 20
        request.group, request.sort_by = SubmissionGroup.SUBMISSION_GROUP_ALL, SubmissionSortBy.SUBMISSION_SORT_BY_DATE
        return [submission_record(item) for item in self._all_pages("list submissions", "list_submissions", request)]

    def leaderboard(self, limit: int | None = None) -> list[dict]:
        """The public leaderboard, best first: every page (a 5,000-team board is 250 requests), or only the pages
        that hold its first `limit` rows."""
        from kagglesdk.competitions.types.competition_api_service import ApiGetLeaderboardRequest

        request = ApiGetLeaderboardRequest()
        request.competition_name, request.page_size = self.name, 20
        rows = self._all_pages("show the leaderboard", "get_leaderboard", request, limit)
        return [{"rank": rank, "team": row.team_name, "score": _score(row.score), "date": utc_text(row.submission_date)}
                for rank, row in enumerate(rows, start=1)]

    def data_files(self) -> list[dict]:
        """The competition's files (name, size, date), every page: a new data version changes them."""
        files, token, seen = [], None, set()
        while True:
            response = self._call("list the competition files", self.api.competition_list_files, self.name,
                                  page_token=token)
            files += [{"name": item.name, "size": item.total_bytes, "date": utc_text(item.creation_date)}
                      for item in response.files or []]
            token = response.next_page_token
            if not token or token in seen:
                return files
            seen.add(token)

    @property
    def team(self) -> str:
        """Our team's name on the leaderboard: as our submissions name it, else the user name."""
        named = next((record["team"] for record in self.submissions() if record.get("team")), None)
        return named or str(self.api.config_values.get("username") or "")

    def limits(self) -> dict | None:
        """Today's submissions and what is left, as the server counts them; None when it does not say."""
        limits = self._call("read the submission limits", self.api.competition_get_submission_limits, self.name)
        if not (limits.num_today or limits.num_total or limits.num_allowed_now or limits.limited_by_total):
            return None  # all zero: what Kaggle answers for a user not on a team yet; the server decides
        return {"daily_limit": limits.num_today + limits.num_allowed_now, "used": limits.num_today,
                "remaining": limits.num_allowed_now, "limited_by_total": bool(limits.limited_by_total)}

    def _competition(self):
        """The competition's own record (GetCompetition): search results leave ended ones out and stop at 20."""
        from kagglesdk.competitions.types.competition_api_service import ApiGetCompetitionRequest

        request = ApiGetCompetitionRequest()
        request.competition_name = self.name
        with self.api.build_kaggle_client() as kaggle:
            return self._call("look up the competition", kaggle.competitions.competition_api_client.get_competition,
                              request)

    def rank(self) -> int | None:
        """Our place on the public leaderboard, in one request however large the board: the competition's own
        userRank (ApiCompetition; kaggle-cli issues 1090 and 1094 show it in `competitions list`); None before our
        first scored submission."""
        return self._competition().user_rank or None

    def is_code_competition(self) -> bool:
        """Whether submissions must come from a notebook (Kaggle's `isKernelsSubmissionsOnly`)."""
        return bool(self._competition().is_kernels_submissions_only)

    def evaluation_metric(self) -> str | None:
        """The metric Kaggle names for the competition ("Categorization Accuracy"...), if it can be had: a hint
        for an inferred spec, nothing more."""
        try:
            return self._competition().evaluation_metric or None
        except BackendError as error:
            logger.warning("%s: could not read the competition's metric (%s); inferring it from the files",
                           self.name, error)
            return None
