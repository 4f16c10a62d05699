"""The `compete` flow: the stages of tasks/stages.py as Prefect tasks, and the run's scores as artifacts."""
# ruff: noqa: E402  (TensorFlow is imported quietly before the imports below load it)

from __future__ import annotations

import dataclasses
from pathlib import Path

from flows.quiet import import_tensorflow_quietly

# Before the stages import it: a served deployment's run process (or a Prefect worker's) starts at this module.
import_tensorflow_quietly()
from prefect import flow
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.futures import wait

from flows.options import Runner, read_options_file
from flows.orchestration import best_effort, dask_task_runner, progress_to_prefect, run_or_fall_back, stage_task
from tasks import progress, stages
from tasks.config import Config
from tasks.record import RunRecord, run_json_path


def _progress_artifact(description: str, done: int, total: int) -> None:
    best_effort("a progress artifact", lambda: progress_to_prefect(description, done, total))


if _progress_artifact not in progress.LISTENERS:
    progress.LISTENERS.append(_progress_artifact)


def _mappable(stage: stages.Mappable, unit_name: str) -> stages.Mappable:
    """A mappable stage whose units and gathering are Prefect tasks (listing the units is a plain call)."""
    return stages.Mappable(stage.units, stage_task(stage.run_unit, task_run_name=unit_name), stage_task(stage.gather))


def run_each(run_unit, plan, units: list) -> list:
    """Every unit as a task run of its own, one after another in this process (the threads runner: on 2 cores,
    folds side by side would only contend for them)."""
    return [run_unit(plan, unit) for unit in units]


def submit_each(run_unit, plan, units: list) -> list:
    """Every unit as a task run of its own, submitted at once to the flow's task runner (on a Dask cluster: any
    worker); waits for all of them, then returns their results in order (the first failure raises)."""
    futures = [run_unit.submit(plan, unit) for unit in units]
    wait(futures)
    return [future.result() for future in futures]


STAGES = stages.Stages(
    open=stage_task(stages.backend_for, network=True, task_run_name="open the backend"),
    fetch=stage_task(stages.fetch_competition, network=True),
    index=stage_task(stages.index_competition),
    plan=stage_task(stages.plan_run),
    features=_mappable(stages.FEATURES, "features {unit.backbone} {unit.view} {unit.shard[file]}"),
    members=_mappable(stages.MEMBERS, "fold {unit.fold} of {unit.member}"),
    blend=stage_task(stages.blend_members),
    submission=stage_task(stages.write_submission_file),
    submit=stage_task(stages.submit_file, network=True),
    record=stage_task(stages.record_run),
    map=run_each,
)


def stages_for(runner: Runner) -> stages.Stages:
    """The stages as tasks; on a Dask cluster, shards and folds mapped over its workers."""
    return dataclasses.replace(STAGES, map=submit_each) if runner.task_runner == "dask" else STAGES


@flow(name="compete")
def compete(config: Config = Config(), run_id: str | None = None, started: float | None = None,
            runner: Runner = Runner(), options_file: str | None = None, rung: int | None = None,
            new_data: bool = False) -> Path:
    """Fetch, index, extract features, fit members, blend, write a validated submission, submit. With `options_file`
    (a .toml of run options or a run.json, as `headstart run --config` takes: what prefect.yaml passes) the file's
    config and runner are run instead of `config` and `runner`. With a `rung` (the watcher's event says which),
    one rung up the retrain ladder, submitted only if its CV beats the best submitted (flows/climb.py)."""
    if options_file:
        config, runner = read_options_file(Path(options_file))
    flow_stages = stages_for(runner)
    backend = flow_stages.open(config)
    if rung is not None:
        return climb_and_record(config, flow_stages, backend, runner, rung, new_data)
    run_json = stages.compete(config, flow_stages, run_id, started, dataclasses.asdict(runner), backend)
    record = RunRecord.read(run_json)
    best_effort("the run's scores", lambda: publish_scores(record, leaderboard_position(record)))
    best_effort("the run's pictures", lambda: publish_pictures(config, record))
    return run_json


def climb_and_record(config: Config, flow_stages, backend, runner: Runner, rung: int, new_data: bool) -> Path:
    """The served retrain of a move: climb one rung (flows/climb.py) and record the outcome in the watch's history,
    where the next move's rung and the best submitted CV are read."""
    from datetime import datetime, timezone

    from flows.climb import climb
    from tasks.watch import WatchHistory

    action, details = climb(config, rung, new_data,
                            lambda settings: stages.compete(settings, flow_stages, stages.new_run_id(),
                                                            runner=dataclasses.asdict(runner), backend=backend),
                            lambda submission: flow_stages.submit(config, backend, submission))
    WatchHistory(config.paths.watch(config.competition)).decisions.append(
        {"retrain": True, "action": action, "date": datetime.now(timezone.utc).isoformat(), **details})
    return Path(details["run"])


def leaderboard_position(record: RunRecord) -> int | None:
    """Our team's rank on the public leaderboard after the run's submission (None: not submitted, not listed): as
    the submit stage read it (one request, the competition's userRank), never by paging through the board."""
    if record.backend_result is None:
        return None
    return record.backend_result.get("rank")


def publish_pictures(config: Config, record: RunRecord) -> None:
    """Links to each member's training curves and confusion matrix, and the blend's (PNG files under data/)."""
    folders = [config.paths.member_pictures(config.competition, Path(directory).name)
               for directory in record.member_dirs]
    folders.append(config.paths.models(config.competition, record.run_id) / "blend")
    for folder in folders:
        for path in sorted(folder.glob("*.png")):
            create_link_artifact(link=path.resolve().as_uri(), link_text=f"{folder.name}: {path.stem}",
                                 description=f"{path.stem.replace('_', ' ')} of {folder.name}")


def publish_scores(record: RunRecord, position: int | None = None) -> None:
    """The CV table (each member and the blend) and the submission's score, as Prefect artifacts."""
    rows = [{"member": name, "cv_score": score, "weight": record.weights[name]} for name, score in record.members.items()]
    create_table_artifact(key="cv-scores", table=rows + [
        {"member": f"blend ({record.blend})", "cv_score": record.blend_cv_score, "weight": 1.0},
        {"member": f"blend ({record.blend}), nested", "cv_score": record.blend_nested_cv_score, "weight": 1.0}])
    if record.backend_result is not None:
        publish_submission(record.competition, record.backend_result, Path(record.submission), position)


def publish_submission(competition: str, result: dict, submission: Path, position: int | None) -> None:
    """The submission's score and our leaderboard position, as a Prefect artifact."""
    place = f", leaderboard position {position}" if position is not None else ""
    create_markdown_artifact(key="submission", markdown=(
        f"**{competition}**: public score {result.get('public_score')} (status {result.get('status')}){place}, "
        f"file `{Path(submission).name}`"))


def run_compete(config: Config, runner: Runner = Runner(), started: float | None = None) -> Path:
    """The compete flow; if Prefect's API cannot be reached, the same stages without it (a run whose work
    finished before Prefect failed to record its end is not run again)."""
    run_id = stages.new_run_id()
    run_json = run_json_path(config, run_id)

    def without_prefect() -> Path:
        return run_json if run_json.is_file() else stages.compete(config, run_id=run_id, started=started,
                                                                   runner=dataclasses.asdict(runner))

    flow_run = compete.with_options(task_runner=dask_task_runner(runner.dask_address)) \
        if runner.task_runner == "dask" else compete
    return run_or_fall_back(lambda: flow_run(config, run_id, started, runner), without_prefect, "the run")
