"""run.json, typed: what a run was asked, what it resolved, what it scored and sent. Written and read here only.

A recorded run can be run again as it was (`headstart run --config .../run.json`): its config and runner are
kept whole, and its plan says what they resolved to.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from tasks.config import Config, config_from_dict
from tasks.errors import ConfigError
from tasks.files import atomic_write_json


def run_json_path(config: Config, run_id: str) -> Path:
    """Where a run's run.json lives: beside its predictions."""
    return config.paths.predictions(config.competition, run_id) / "run.json"


def versions() -> dict:
    """The versions that made a run (a re-run with others may not give the same bytes)."""
    found = {}
    for package in ("headstart", "tensorflow", "keras", "scikit-learn", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


@dataclass(frozen=True)
class RunRecord:
    """One run, as run.json holds it."""

    run_id: str
    config: dict  # Config.to_dict(): what was asked
    metric: str
    member_dirs: list[str]
    members: dict[str, float]  # each member's CV score
    weights: dict[str, float]  # each member's blend weight
    blend: str
    blend_cv_score: float
    blend_cv_score_by_method: dict[str, float]
    blend_nested_cv_score: float | None
    blend_nested_cv_score_by_method: dict[str, float] | None
    blend_rows_scored: int | None
    blend_rows: int | None
    submission: str
    backend_result: dict | None
    time_limit: dict | None = None  # what the time limit cut: {"minutes", "skipped", "ended"}
    decision: dict | None = None  # how the blend's probabilities became answers (tasks/decisions.py)
    plan: dict = field(default_factory=dict)  # RunPlan.summary(): what the config resolved to
    runner: dict = field(default_factory=dict)  # where the tasks ran (task_runner, dask_address)
    versions: dict = field(default_factory=dict)

    @property
    def competition(self) -> str:
        return self.config["competition"]

    @property
    def public_score(self) -> float | None:
        return (self.backend_result or {}).get("public_score")

    def run_config(self) -> Config:
        return config_from_dict(self.config, source=f"run {self.run_id}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def write(self, path: Path) -> Path:
        return atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """A run.json read back; a file that is not one is an error naming it."""
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such run record") from None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: not a readable run.json ({error})") from None
        known = {item.name for item in dataclasses.fields(cls)}
        missing = [item.name for item in dataclasses.fields(cls) if item.name not in values
                   and item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING]
        if not isinstance(values, dict) or missing:
            raise ConfigError(f"{path}: not a headstart run.json (missing {missing or 'everything'})")
        return cls(**{key: value for key, value in values.items() if key in known})


def time_limit_report(config: Config, members: list[dict], skipped: tuple[str, ...]) -> dict | None:
    """What the time limit did: members it ended early (with the folds they kept) and members it skipped."""
    if config.time_limit is None:
        return None
    return {"minutes": config.time_limit, "skipped": list(skipped),
            "ended": {member["name"]: member.get("folds_trained") for member in members
                      if member.get("ended_by_time_limit")}}
