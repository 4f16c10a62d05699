"""The `compete` flow: the stages of tasks/stages.py as Prefect tasks, and the run's scores as artifacts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.futures import wait

from flows.orchestration import best_effort, dask_task_runner, progress_to_prefect, run_or_fall_back, stage_task
from tasks import progress, stages
from tasks.backends import backend_for
from tasks.config import Config


def _progress_artifact(description: str, done: int, total: int) -> None:
    best_effort("a progress artifact", lambda: progress_to_prefect(description, done, total))


if _progress_artifact not in progress.LISTENERS:
    progress.LISTENERS.append(_progress_artifact)

STAGES = stages.Stages(
    fetch=stage_task(stages.fetch_competition, network=True),
    index=stage_task(stages.index_competition),
    plan=stage_task(stages.plan_run),
    features=stage_task(stages.cache_features),
    member=stage_task(stages.fit_member),
    blend=stage_task(stages.blend_members),
    submission=stage_task(stages.write_submission_file),
    submit=stage_task(stages.submit_file, network=True),
    record=stage_task(stages.record_run),
    feature_shard=stage_task(stages.cache_feature_shard, task_run_name="features {backbone} {view} {shard[file]}"),
    member_fold=stage_task(stages.fit_member_fold, task_run_name="fold {fold} of {name}"),
)


def submit_each(stage, calls: list[tuple]) -> list:
    """Every call of a stage as a task run of its own, submitted at once to the flow's task runner (on a Dask
    cluster: any worker); waits for all of them, then returns their results in order (the first failure raises)."""
    futures = [stage.submit(*call) for call in calls]
    wait(futures)
    return [future.result() for future in futures]


def stages_for(config: Config) -> stages.Stages:
    """The stages as tasks; on a Dask cluster, shards and folds mapped over its workers."""
    return dataclasses.replace(STAGES, each=submit_each) if config.task_runner == "dask" else STAGES


@flow(name="compete")
def compete(config: Config = Config(), run_id: str | None = None) -> Path:
    """Fetch, index, extract features, fit members, blend, write a validated submission, submit."""
    run_json = stages.compete(config, stages_for(config), run_id)
    record = json.loads(Path(run_json).read_text())
    best_effort("the run's scores", lambda: publish_scores(record, leaderboard_position(config, record)))
    best_effort("the run's pictures", lambda: publish_pictures(config, record))
    return run_json


def leaderboard_position(config: Config, record: dict) -> int | None:
    """Our team's rank on the public leaderboard after the run's submission (None: not submitted, not listed)."""
    if record.get("backend_result") is None:
        return None
    backend = backend_for(config)
    return next((row["rank"] for row in backend.leaderboard() if row["team"] == backend.team), None)


def publish_pictures(config: Config, record: dict) -> None:
    """Links to each member's training curves and confusion matrix, and the blend's (PNG files under data/)."""
    folders = [config.paths.member_pictures(config.competition, Path(directory).name)
               for directory in record["member_dirs"]]
    folders.append(config.paths.models(config.competition, record["run_id"]) / "blend")
    for folder in folders:
        for path in sorted(folder.glob("*.png")):
            create_link_artifact(link=path.resolve().as_uri(), link_text=f"{folder.name}: {path.stem}",
                                 description=f"{path.stem.replace('_', ' ')} of {folder.name}")


def publish_scores(record: dict, position: int | None = None) -> None:
    """The CV table (each member and the blend) and the submission's score, as Prefect artifacts."""
    rows = [{"member": name, "cv_score": score, "weight": record["weights"][name]}
            for name, score in record["members"].items()]
    create_table_artifact(key="cv-scores", table=rows + [
        {"member": f"blend ({record['blend']})", "cv_score": record["blend_cv_score"], "weight": 1.0},
        {"member": f"blend ({record['blend']}), nested", "cv_score": record.get("blend_nested_cv_score"),
         "weight": 1.0}])
    result = record["backend_result"]
    if result is not None:
        place = f", leaderboard position {position}" if position is not None else ""
        create_markdown_artifact(key="submission", markdown=(
            f"**{record['config']['competition']}**: public score {result.get('public_score')} "
            f"(status {result.get('status')}){place}, file `{Path(record['submission']).name}`"))


def run_compete(config: Config) -> Path:
    """The compete flow; if Prefect's API cannot be reached, the same stages without it (a run whose work
    finished before Prefect failed to record its end is not run again)."""
    run_id = stages.new_run_id()
    run_json = config.paths.predictions(config.competition, run_id) / "run.json"

    def without_prefect() -> Path:
        return run_json if run_json.is_file() else stages.compete(config, run_id=run_id)

    flow_run = compete.with_options(task_runner=dask_task_runner(config.dask_address)) \
        if config.task_runner == "dask" else compete
    return run_or_fall_back(lambda: flow_run(config, run_id), without_prefect, "the run")
