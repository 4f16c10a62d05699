"""The `compete` flow: a competition's files in, a scored submission and run.json out."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.backends import backend_for, fetch_competition, submit_file
from tasks.config import Config
from tasks.ensemble import blend_members
from tasks.features import cache_features
from tasks.index import index_competition
from tasks.paths import atomic_write_json
from tasks.recipes import MemberName, fit_member, plan_run
from tasks.submission import write_submission_file


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@flow(name="compete")
def compete(config: Config = Config()) -> Path:
    """Fetch, index, extract features, fit members, blend, write a validated submission, submit."""
    run_id = new_run_id()
    spec = backend_for(config).spec
    raw_dir = fetch_competition(config)
    index_dir = index_competition(config, spec, raw_dir)
    plan = plan_run(config, index_dir)
    features = {backbone: cache_features(config, index_dir, backbone, weights and Path(weights), plan.views)
                for backbone, weights in plan.weights.items()}
    member_dirs = [fit_member(config, index_dir, name, features.get(MemberName.parse(name).backbone, ()))
                   for name in plan.members]
    blend_dir = blend_members(config, index_dir, member_dirs, run_id)
    submission = write_submission_file(config, spec, index_dir, blend_dir, raw_dir)
    result = submit_file(config, submission) if config.submit else None
    return record_run(config, run_id, member_dirs, blend_dir, submission, result)


def record_run(config: Config, run_id: str, member_dirs: list[Path], blend_dir: Path, submission: Path,
               result: dict | None) -> Path:
    """Write run.json beside the run's predictions, and the scores as Prefect artifacts."""
    ensemble = json.loads((blend_dir / "ensemble.json").read_text())
    record = {"run_id": run_id, "config": config.to_dict(), "metric": ensemble["metric"],
              "member_dirs": [str(directory) for directory in member_dirs],
              "members": {name: member["cv_score"] for name, member in ensemble["members"].items()},
              "weights": {name: member["weight"] for name, member in ensemble["members"].items()},
              "blend": ensemble["method"], "blend_cv_score": ensemble["cv_score"],
              "blend_cv_score_by_method": ensemble["cv_score_by_method"],
              "submission": str(submission), "backend_result": result}
    rows = [{"member": name, "cv_score": score, "weight": record["weights"][name]}
            for name, score in record["members"].items()]
    create_table_artifact(key="cv-scores", table=rows + [{"member": f"blend ({ensemble['method']})",
                                                          "cv_score": ensemble["cv_score"], "weight": 1.0}])
    if result is not None:
        create_markdown_artifact(key="submission", markdown=(
            f"**{config.competition}**: public score {result.get('public_score')} "
            f"(status {result.get('status')}), file `{submission.name}`"))
    return atomic_write_json(config.paths.predictions(config.competition, run_id) / "run.json", record)
