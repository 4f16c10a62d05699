"""The stage order of a run, written once.

`compete(config, stages)` runs fetch → index → plan → features → members → blend → submission →
submit → record. Each stage takes a Config and paths and returns a path (or a small plan or record);
none imports an orchestrator. The Prefect flow (flows/compete.py) passes the same functions wrapped
as tasks, a Kaggle notebook (flows/kaggle_notebook.py) passes them as they are.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tasks.backends import backend_for, fetch_competition, submit_file
from tasks.budget import member_deadline, reserve_seconds, run_deadline
from tasks.config import Config
from tasks.ensemble import blend_members
from tasks.features import cache_feature_shard, cache_features, pending_shards
from tasks.files import atomic_write_json
from tasks.index import index_competition
from tasks.recipes import MemberName, RunPlan, fit_member, fit_member_fold, member_folds, plan_run
from tasks.submission import write_submission_file


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def record_run(config: Config, run_id: str, member_dirs: list[Path], blend_dir: Path, submission: Path,
               result: dict | None, skipped: tuple[str, ...] = ()) -> Path:
    """Write run.json beside the run's predictions: config, each member's CV score and weight, the blend, the
    submission and the backend's answer."""
    ensemble = json.loads((Path(blend_dir) / "ensemble.json").read_text())
    record = {"run_id": run_id, "config": config.to_dict(), "metric": ensemble["metric"],
              "member_dirs": [str(directory) for directory in member_dirs],
              "members": {name: member["cv_score"] for name, member in ensemble["members"].items()},
              "weights": {name: member["weight"] for name, member in ensemble["members"].items()},
              "blend": ensemble["method"], "blend_cv_score": ensemble["cv_score"],
              "blend_cv_score_by_method": ensemble["cv_score_by_method"],
              "blend_nested_cv_score": ensemble.get("nested_cv_score"),
              "blend_nested_cv_score_by_method": ensemble.get("nested_cv_score_by_method"),
              "blend_rows_scored": ensemble.get("rows_scored"), "blend_rows": ensemble.get("rows"),
              "submission": str(submission), "backend_result": result,
              "time_limit": time_limit_report(config, member_dirs, skipped)}
    return atomic_write_json(config.paths.predictions(config.competition, run_id) / "run.json", record)


def time_limit_report(config: Config, member_dirs: list[Path], skipped: tuple[str, ...]) -> dict | None:
    """What the time limit did: members it ended early (with the folds they kept) and members it skipped."""
    if config.deadline is None:
        return None
    members = [json.loads((Path(directory) / "member.json").read_text()) for directory in member_dirs]
    return {"minutes": config.time_limit, "skipped": list(skipped),
            "ended": {member["name"]: member.get("folds_trained") for member in members
                      if member.get("ended_by_time_limit")}}


@dataclass(frozen=True)
class Stages:
    """One callable per stage. The defaults are the plain functions; an orchestrator swaps in wrapped ones."""

    fetch: Callable[..., Path] = fetch_competition
    index: Callable[..., Path] = index_competition
    plan: Callable = plan_run
    features: Callable[..., tuple[Path, ...]] = cache_features
    member: Callable[..., Path] = fit_member
    blend: Callable[..., Path] = blend_members
    submission: Callable[..., Path] = write_submission_file
    submit: Callable[..., dict] = submit_file
    record: Callable[..., Path] = record_run
    feature_shard: Callable[..., dict] = cache_feature_shard
    member_fold: Callable[..., Path | None] = fit_member_fold
    # Mapping: `each(stage, calls)` runs `stage(*call)` for every call (on any worker) and returns the results in
    # order. None: no mapping, each backbone's shards and each member's folds run inside its one stage.
    each: Callable[[Callable, list[tuple]], list] | None = None


def compete(config: Config, stages: Stages = Stages(), run_id: str | None = None) -> Path:
    """Fetch, index, extract features, fit members, blend, write a validated submission, submit; return run.json."""
    run_id = run_id or new_run_id()
    if config.time_limit is not None and config.deadline is None:
        config = dataclasses.replace(config, deadline=run_deadline(config.time_limit))
    raw_dir = stages.fetch(config)
    spec = backend_for(config).spec  # after the download, which infers a spec where there is none
    index_dir = stages.index(config, spec, raw_dir)
    plan = stages.plan(config, index_dir)
    if plan.image_size is not None:
        config = dataclasses.replace(config, features=dataclasses.replace(config.features, image_size=plan.image_size))
    if plan.cnn_size is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, cnn_size=plan.cnn_size))
    features = cache_run_features(config, stages, index_dir, plan)
    member_dirs, skipped = fit_run_members(config, stages, index_dir, plan, features)
    blend_dir = stages.blend(config, index_dir, member_dirs, run_id)
    submission = stages.submission(config, spec, index_dir, blend_dir, raw_dir)
    result = stages.submit(config, submission) if config.submit else None
    return stages.record(config, run_id, member_dirs, blend_dir, submission, result, tuple(skipped))


def cache_run_features(config: Config, stages: Stages, index_dir: Path, plan: RunPlan) -> dict[str, tuple[Path, ...]]:
    """Every backbone's feature sets (one per view); mapped: each backbone x view x shard as a call of its own first,
    then each feature set gathered from its shards."""
    weights = {backbone: path and Path(path) for backbone, path in plan.weights.items()}
    if stages.each is not None:
        stages.each(stages.feature_shard, [(config, index_dir, backbone, path, view, shard)
                                           for backbone, path in weights.items()
                                           for view, shard in pending_shards(config, index_dir, backbone, path,
                                                                             plan.views)])
    return {backbone: stages.features(config, index_dir, backbone, path, plan.views)
            for backbone, path in weights.items()}


def fit_run_members(config: Config, stages: Stages, index_dir: Path, plan: RunPlan,
                    features: dict[str, tuple[Path, ...]]) -> tuple[list[Path], list[str]]:
    """Every member of the plan, in order, sharing the time limit; mapped: each member x fold as a call of its own
    first, then each member gathered from its folds. Returns the members' directories and the members skipped."""
    def inputs(name: str) -> tuple[tuple[Path, ...], Path | None]:  # a member's feature sets and weights
        backbone = MemberName.parse(name).backbone
        return features.get(backbone, ()), plan.weights.get(backbone) and Path(plan.weights[backbone])

    reserve = reserve_seconds(config.time_limit or 0.0)
    if stages.each is not None:  # folds run side by side: each may use what is left of the run
        deadline = member_deadline(config.deadline, reserve, 1)
        stages.each(stages.member_fold, [(config, index_dir, name, *inputs(name), fold, deadline)
                                         for name in plan.members for fold in member_folds(config, index_dir, name)])
    member_dirs, skipped = [], []
    for position, name in enumerate(plan.members):
        deadline = member_deadline(config.deadline, reserve, len(plan.members) - position)
        # Mapped folds that the time limit stopped are not fitted here: the member keeps the folds that finished.
        directory = stages.member(config, index_dir, name, *inputs(name), deadline, may_skip=bool(member_dirs),
                                  fit_missing=stages.each is None or config.deadline is None)
        if directory is None:
            skipped.append(name)  # no time left to train it; the members that finished are blended
        else:
            member_dirs.append(directory)
    return member_dirs, skipped
