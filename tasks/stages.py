"""The stage order of a run, written once.

`compete(config, stages)` runs open → fetch → index → plan → features → members → blend → submission → submit →
record. Each stage takes values and paths and returns values and paths: the backend is opened once and handed to the
stages that talk to it, the spec comes out of fetch, and every stage after `plan` reads the RunPlan. Features and
members are mappable: `units(plan) -> run_unit(plan, unit) -> gather(plan)`, and `stages.map` runs the units (a
plain loop here; Prefect tasks, on threads or a Dask cluster, in flows/compete.py). Nothing here imports an
orchestrator.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from tasks.backends import backend_for, fetch_competition, submit_file
from tasks.ensemble import blend_members
from tasks.features import extract_feature_unit, feature_units, gather_features
from tasks.fitting import FittedMembers, fit_member_unit, gather_members, load_member, member_units
from tasks.index import index_competition
from tasks.plan import plan_run
from tasks.record import RunRecord, run_json_path, time_limit_report, versions
from tasks.runplan import RunPlan
from tasks.submission import write_submission_file


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def record_run(plan: RunPlan, members: FittedMembers, blend_dir: Path, submission: Path, result: dict | None,
               runner: dict | None = None) -> Path:
    """Write run.json beside the run's predictions (tasks/record.py): config, plan, each member's CV score and
    weight, the blend, the submission and the backend's answer."""
    import json

    ensemble = json.loads((Path(blend_dir) / "ensemble.json").read_text())
    fitted = [load_member(Path(directory))[0] for directory in members.directories]
    record = RunRecord(
        run_id=plan.run_id, config=plan.config.to_dict(), metric=ensemble["metric"],
        member_dirs=[str(directory) for directory in members.directories],
        members={name: member["cv_score"] for name, member in ensemble["members"].items()},
        weights={name: member["weight"] for name, member in ensemble["members"].items()},
        blend=ensemble["method"], blend_cv_score=ensemble["cv_score"],
        blend_cv_score_by_method=ensemble["cv_score_by_method"],
        blend_nested_cv_score=ensemble.get("nested_cv_score"),
        blend_nested_cv_score_by_method=ensemble.get("nested_cv_score_by_method"),
        blend_rows_scored=ensemble.get("rows_scored"), blend_rows=ensemble.get("rows"),
        submission=str(submission), backend_result=result,
        time_limit=time_limit_report(plan.config, fitted, members.skipped), decision=ensemble.get("decision"),
        plan=plan.summary(),
        runner=dict(runner or {}), versions=versions())
    return record.write(run_json_path(plan.config, plan.run_id))


@dataclass(frozen=True)
class Mappable:
    """A stage made of units of work: `units(plan)` lists what is left to do, `run_unit(plan, unit)` does one (in any
    process), `gather(plan)` assembles the stage's output from what the units left on disk."""

    units: Callable[[RunPlan], list]
    run_unit: Callable[[RunPlan, Any], Any]
    gather: Callable[[RunPlan], Any]


FEATURES = Mappable(feature_units, extract_feature_unit, gather_features)
MEMBERS = Mappable(member_units, fit_member_unit, gather_members)


def each_in_turn(run_unit: Callable, plan: RunPlan, units: list) -> list:
    """Run the units one after another in this process."""
    return [run_unit(plan, unit) for unit in units]


@dataclass(frozen=True)
class Stages:
    """One callable per stage. The defaults are the plain functions; an orchestrator swaps in wrapped ones."""

    open: Callable = backend_for
    fetch: Callable = fetch_competition
    index: Callable[..., Path] = index_competition
    plan: Callable[..., RunPlan] = plan_run
    features: Mappable = FEATURES
    members: Mappable = MEMBERS
    blend: Callable[..., Path] = blend_members
    submission: Callable[..., Path] = write_submission_file
    submit: Callable[..., dict] = submit_file
    record: Callable[..., Path] = record_run
    map: Callable[[Callable, RunPlan, list], list] = each_in_turn  # how a mappable stage's units are run


def run_mapped(stages: Stages, stage: Mappable, plan: RunPlan):
    """A mappable stage: its units, mapped as the stages say, then gathered."""
    stages.map(stage.run_unit, plan, stage.units(plan))
    return stage.gather(plan)


def prepare(config, run_id: str | None = None, started: float | None = None, backend=None) -> RunPlan:
    """The stages up to the plan, as plain calls: for a notebook or a benchmark that then runs stages one by one."""
    backend = backend if backend is not None else backend_for(config)
    spec, raw_dir = fetch_competition(config, backend)
    index_dir = index_competition(config, spec, raw_dir)
    return plan_run(config, spec, raw_dir, index_dir, run_id or new_run_id(), started)


def compete(config, stages: Stages = Stages(), run_id: str | None = None, started: float | None = None,
            runner: dict | None = None, backend=None) -> Path:
    """Fetch, index, plan, extract features, fit members, blend, write a validated submission, submit; run.json.
    `started`: when the command started (the time limit counts from it; default now); `backend`: the competition's,
    if the caller opened it already (it is opened once per run)."""
    run_id = run_id or new_run_id()
    backend = backend if backend is not None else stages.open(config)
    spec, raw_dir = stages.fetch(config, backend)
    index_dir = stages.index(config, spec, raw_dir)
    plan = stages.plan(config, spec, raw_dir, index_dir, run_id, started)
    run_mapped(stages, stages.features, plan)
    members = run_mapped(stages, stages.members, plan)
    blend_dir = stages.blend(plan, members)
    submission = stages.submission(plan, blend_dir)
    result = stages.submit(config, backend, submission) if config.submit else None
    return stages.record(plan, members, blend_dir, submission, result, runner)
