"""Local competitions: what Kaggle would ship, a hidden solution, scoring, quota and a leaderboard."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.archives import check_zip
from tasks.backends.base import Capabilities
from tasks.competitions import (
    BUILTIN_SPECS,
    CompetitionSpec,
    load_spec_file,
    read_csv,
    resolve_spec,
    spec_from_dict,
    unpack_archive,
)
from tasks.errors import CompetitionDataError, ConfigError, NotFoundError, QuotaError, SpecError
from tasks.files import JsonLines, atomic_write_json, sha256_file
from tasks.layouts import unpack_image_archives
from tasks.metrics import get_metric, higher_is_better
from tasks.scoring import USAGE_COLUMN, checked_sample, checked_solution, score_submission, solution_targets
from tasks.spec_inference import REQUIRED_KEYS, describe_spec, infer_spec, read_spec_file_values
from tasks.submission import read_submission, validate_submission

__all__ = ["LocalBackend", "create_local_competition", "score_submission", "spec_for_zip", "split_public_private"]
DEFAULT_DAILY_LIMIT = 5


BOARDS = ("practice", "hosted")


class LocalBackend:
    """A directory holding one competition: public zip, hidden solution, submissions and leaderboard.

    Its submissions go to one of two boards: `practice` (this machine's own runs, as "you") and `hosted` (what
    `headstart host` serves to its users): a local run never shows on the hosted leaderboard, nor a hosted user's
    submission in the practice quota."""

    def __init__(self, root: Path, board: str = "practice"):
        if board not in BOARDS:
            raise ConfigError(f"board must be one of {BOARDS}, got {board!r}")
        self.root, self.board = Path(root), board
        settings_path = self.root / "competition.json"
        if not settings_path.is_file():
            raise NotFoundError(f"{self.root}: no local competition here (missing competition.json); "
                                "create one with `headstart local create`")
        self.settings = json.loads(settings_path.read_text())
        self.spec = spec_from_dict(self.settings["spec"], source=str(settings_path))
        self.name = self.settings["name"]

    @property
    def public_zip(self) -> Path:
        return self.root / "public" / f"{self.name}.zip"

    @property
    def daily_limit(self) -> int:
        return int(self.settings.get("daily_limit", DEFAULT_DAILY_LIMIT))

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(submits=True, scores_later=False, lists_submissions=True, daily_limit=self.daily_limit)

    @property
    def known_spec(self) -> CompetitionSpec:
        return self.spec

    def evaluation_metric(self) -> str | None:
        return self.spec.metric

    def solution(self) -> pd.DataFrame:
        return read_csv(self.root / "solution.csv",
                        [self.spec.submission_id_column, self.spec.submission_label_column, USAGE_COLUMN])

    def download(self, destination: Path) -> CompetitionSpec:
        """Unpack the public files into `destination` (skipped when that exact zip is unpacked there); the spec."""
        marker = destination / ".headstart-download.json"
        digest = sha256_file(self.public_zip)
        if marker.is_file() and json.loads(marker.read_text()).get("sha256") == digest:
            return self.spec
        unpack_archive(self.public_zip, destination)
        unpack_image_archives(self.spec, destination)
        atomic_write_json(marker, {"sha256": digest, "source": str(self.public_zip)})
        return self.spec

    def sample_submission(self) -> pd.DataFrame:
        with zipfile.ZipFile(self.public_zip) as zipped, zipped.open(self.spec.sample_submission) as stream:
            return pd.read_csv(stream, dtype=str, keep_default_na=False)

    @property
    def board_dir(self) -> Path:
        """Where this board's submissions live (the practice board at the competition's top, as it always was)."""
        return self.root if self.board == "practice" else self.root / self.board

    @property
    def log(self) -> JsonLines:
        return JsonLines(self.board_dir / "submissions.jsonl")

    def submit(self, path: Path, description: str = "", team: str = "you", now: datetime | None = None) -> dict:
        """Score a submission file and log it; an invalid file is logged with status 'error', as on Kaggle."""
        path, now = Path(path), now or datetime.now(timezone.utc)
        # Submissions may arrive from several processes (a hosted competition): one writer at a time.
        with self.log.locked():
            record = self._new_record(path.name, description, team, now, sha256_file(path))
            record = self._scored(record, path)
            self.log.append(record)
        return record

    def add_pending(self, file_name: str, description: str = "", team: str = "you", now: datetime | None = None
                    ) -> dict:
        """A submission counted now and scored later (`score_pending`): a code competition's, whose file comes from
        the notebook's scoring run."""
        with self.log.locked():
            record = {**self._new_record(file_name, description, team, now or datetime.now(timezone.utc), None),
                      "status": "pending"}
            self.log.append(record)
        return record

    def score_pending(self, ref: int, path: Path | None, error: str = "") -> dict:
        """Score a pending submission from `path`; without a file, an error with `error` as its description."""
        with self.log.locked():
            record = next(record for record in self.submissions() if record["ref"] == ref)
            if path is None:
                record = {**record, "status": "error", "error": error}
            else:
                record = self._scored({**record, "sha256": sha256_file(path)}, Path(path))
            self.log.append(record)
        return record

    def _new_record(self, file_name: str, description: str, team: str, now: datetime, digest: str | None) -> dict:
        """A new submission's record (under the log's lock): its ref, or a QuotaError past the day's limit."""
        used = self.limits(team, now)["used"]
        if used >= self.daily_limit:
            raise QuotaError(f"{self.name}: daily submission limit reached ({used}/{self.daily_limit} "
                             "today, UTC); try again after midnight UTC")
        return {"ref": (max((r["ref"] for r in self.submissions()), default=0) + 1), "date": now.isoformat(),
                "team": team, "file_name": file_name, "sha256": digest, "description": description,
                "public_score": None, "private_score": None, "error": None}

    def _scored(self, record: dict, path: Path) -> dict:
        """The record scored from the file at `path` (kept beside the log)."""
        try:
            submission = read_submission(path)
            validate_submission(submission, self.sample_submission(), self.spec, source=path.name)
            scores = score_submission(submission, self.solution(), self.spec)
            record = {**record, "status": "complete", "public_score": scores["public"],
                      "private_score": scores["private"]}
        except CompetitionDataError as error:  # a bad file (SubmissionError is one) is scored as an error
            record = {**record, "status": "error", "error": str(error)}
        stored = self.stored_file(record)
        stored.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, stored)
        return record

    def stored_file(self, record: dict) -> Path:
        """Where the file of a submission is kept (what DownloadSubmission serves)."""
        return self.board_dir / "submissions" / f"{record['ref']}-{Path(record['file_name']).name}"

    team = "you"  # the team this machine submits as (`headstart host` serves other users under their names)

    def data_files(self) -> list[dict]:
        """The public files (name, size, date): a new version of the competition's zip changes them."""
        with zipfile.ZipFile(self.public_zip) as zipped:
            return [{"name": info.filename, "size": info.file_size, "date": "%04d-%02d-%02dT%02d:%02d:%02d" % info.date_time}
                    for info in zipped.infolist() if not info.is_dir()]

    def submissions(self, team: str | None = None) -> list[dict]:
        """Each submission's latest record (a pending one is followed by its score), in the order they were made."""
        latest: dict[int, dict] = {}
        for record in self.log.read():
            latest[record["ref"]] = record
        return [record for record in latest.values() if team is None or record["team"] == team]

    def limits(self, team: str = "you", now: datetime | None = None) -> dict:
        today = (now or datetime.now(timezone.utc)).date()
        used = sum(datetime.fromisoformat(r["date"]).astimezone(timezone.utc).date() == today
                   for r in self.submissions(team))
        return {"daily_limit": self.daily_limit, "used": used, "remaining": max(self.daily_limit - used, 0)}

    def rank(self, team: str | None = None) -> int | None:
        """A team's place on the public leaderboard (ours by default); None before its first scored submission."""
        team = team or self.team
        return next((row["rank"] for row in self.leaderboard() if row["team"] == team), None)

    def leaderboard(self, limit: int | None = None) -> list[dict]:
        """Each team's best public score, best first (the first `limit` rows)."""
        best: dict[str, dict] = {}
        sign = 1 if higher_is_better(self.spec.metric) else -1
        for record in self.submissions():
            if record["status"] != "complete":
                continue
            current = best.get(record["team"])
            if current is None or sign * record["public_score"] > sign * current["public_score"]:
                best[record["team"]] = record
        ranked = sorted(best.values(), key=lambda r: (-sign * r["public_score"], r["date"]))
        return [{"rank": rank, "team": r["team"], "score": r["public_score"], "date": r["date"], "ref": r["ref"]}
                for rank, r in enumerate(ranked, start=1)][:limit]


def split_public_private(ids: np.ndarray, public_fraction: float, seed: int,
                         strata: np.ndarray | None = None) -> np.ndarray:
    """The Usage column: a random `public_fraction` of the test ids are Public, the rest Private; with `strata`
    (a binary competition's truth: ROC AUC needs both classes on each board), that fraction of each stratum."""
    usage = np.full(len(ids), "Private", dtype=object)
    rng = np.random.default_rng(seed)
    if strata is None:
        usage[rng.permutation(len(ids))[: max(1, round(public_fraction * len(ids)))]] = "Public"
        return usage
    for stratum in np.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == stratum))
        usage[rows[: min(max(1, round(public_fraction * len(rows))), len(rows) - 1) if len(rows) > 1 else 0]] = \
            "Public"
    return usage


def create_local_competition(root: Path, name: str, spec: CompetitionSpec, public_zip: Path,
                             solution_csv: Path, daily_limit: int = DEFAULT_DAILY_LIMIT,
                             public_fraction: float = 0.3, seed: int = 0) -> LocalBackend:
    """Make a local competition from a Kaggle-layout zip and its solution (id, label[, Usage])."""
    if (root / "competition.json").exists():
        raise ConfigError(f"{root}: a local competition named {name!r} exists already")
    if daily_limit < 1:
        raise ConfigError(f"daily_limit must be at least 1, got {daily_limit}")
    public_zip, solution_csv = Path(public_zip), Path(solution_csv)
    if not public_zip.is_file() or not zipfile.is_zipfile(public_zip):
        raise CompetitionDataError(f"{public_zip}: not found or not a zip file")
    check_zip(public_zip)
    with zipfile.ZipFile(public_zip) as zipped:
        if spec.sample_submission not in zipped.namelist():
            raise CompetitionDataError(f"{public_zip}: has no {spec.sample_submission} (the spec's sample submission)")
        with zipped.open(spec.sample_submission) as stream:
            sample = pd.read_csv(stream, dtype=str, keep_default_na=False)
        source = f"{public_zip}: {spec.sample_submission}"
        sample = checked_sample(sample, spec, source)
        test_count = _test_count(zipped, spec)
    solution = checked_solution(solution_csv, sample, spec, source, test_count)
    solution = _with_usage(solution_csv, solution, spec, public_fraction, seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.creating-"))  # one per process
    (staging / "public").mkdir()
    shutil.copyfile(public_zip, staging / "public" / f"{name}.zip")
    solution.to_csv(staging / "solution.csv", index=False)
    atomic_write_json(staging / "competition.json", {
        "name": name, "spec": spec.with_slug(name).to_dict(), "daily_limit": daily_limit,
        "created": datetime.now(timezone.utc).isoformat()})
    try:
        staging.replace(root)
    except OSError:  # another process created it meanwhile (a non-empty folder is never replaced)
        shutil.rmtree(staging, ignore_errors=True)
        raise ConfigError(f"{root}: a local competition named {name!r} exists already") from None
    return LocalBackend(root)


def _with_usage(path: Path, solution: pd.DataFrame, spec: CompetitionSpec, public_fraction: float, seed: int
                ) -> pd.DataFrame:
    id_column, label_column = spec.submission_id_column, spec.submission_label_column
    if USAGE_COLUMN not in solution.columns:
        strata = solution_targets(solution[label_column], spec, str(path)) if spec.task == "binary" else None
        solution[USAGE_COLUMN] = split_public_private(solution[id_column].to_numpy(), public_fraction, seed, strata)
    elif not solution[USAGE_COLUMN].isin(["Public", "Private"]).all():
        raise CompetitionDataError(f"{path}: column {USAGE_COLUMN!r} must hold 'Public' or 'Private'")
    return solution[[id_column, label_column, USAGE_COLUMN]]


def _test_count(zipped: zipfile.ZipFile, spec: CompetitionSpec) -> int | None:
    """How many test examples the public zip holds (rows of the test CSV, or files in the test folders, also
    inside a nested <folder>.zip); None where it cannot tell cheaply."""
    names = set(zipped.namelist())
    if spec.layout == "pixels_csv":
        if spec.test_csv not in names:
            return None
        with zipped.open(spec.test_csv) as stream:
            return sum(1 for line in stream if line.strip()) - 1
    count = 0
    for folder in (spec.test_images, *spec.extra_test_images):
        inside = [name for name in names if name.startswith(f"{folder}/") and not name.endswith("/")]
        if not inside and f"{folder}.zip" in names:
            with zipped.open(f"{folder}.zip") as stream, zipfile.ZipFile(stream) as nested:
                inside = [name for name in nested.namelist() if not name.endswith("/")]
        if not inside:
            return None
        count += len(inside)
    return count


DEFAULT_WHY = {"label": "labels", "probabilities": "one column per class", "probability": "one probability column",
               "tags": "space-separated tags", "ranked": "several space-separated labels"}


def spec_for_zip(name: str, public_zip: Path, spec: CompetitionSpec | dict | None = None,
                 metric: str | None = None) -> tuple[CompetitionSpec, list[str]]:
    """The spec of a Kaggle-layout zip: `spec` as given (with `metric` if given), or inferred from the zip's files
    (the keys in a partial `spec` dict taken as given); and the lines that say what was chosen and why."""
    if metric is not None:
        try:
            get_metric(metric)
        except SpecError as error:
            raise ConfigError(f"--metric {metric!r}: {str(error).split('; ', 1)[1]}") from None
    if isinstance(spec, CompetitionSpec):
        return (spec if metric is None else dataclasses.replace(spec, metric=metric)), []
    given = {**(spec or {}), **({"metric": metric} if metric else {})}
    public_zip = Path(public_zip)
    if not public_zip.is_file() or not zipfile.is_zipfile(public_zip):
        raise CompetitionDataError(f"{public_zip}: not found or not a zip file")
    check_zip(public_zip)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="headstart-infer-") as scratch:
        unpack_archive(public_zip, Path(scratch))
        inferred = infer_spec(name, Path(scratch), given=given, source=str(public_zip), notes=notes,
                              where="in a spec.toml and pass it with --spec (the keys it leaves out are inferred)")
    form = DEFAULT_WHY[inferred.submission_form] + (" of grades" if inferred.task == "ordinal" else "")
    why = ("--metric" if metric else "the spec's" if "metric" in given else
           f"the obvious metric for {form}; --metric NAME to choose another")
    return inferred, [describe_spec(inferred, why=why), *notes]


def spec_option(value: str | None) -> CompetitionSpec | dict | None:
    """--spec: a built-in spec, a whole spec file, or a .toml of only some keys (the rest inferred)."""
    if value is None or value in BUILTIN_SPECS or not value.endswith(".toml"):
        return None if value is None else resolve_spec(value)
    values = read_spec_file_values(Path(value))
    return values if any(key not in values for key in REQUIRED_KEYS) else load_spec_file(Path(value))
