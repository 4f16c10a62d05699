"""Mapped work (issue 11): feature shards and members x folds as tasks of their own, on a Dask cluster or anywhere,
with the same results as one stage each; a worker killed mid-run survived."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tasks import fitting, stages
from tasks.config import Config, FeatureConfig, TrainConfig
from tests.factories import separable_digits_plan, shapes_competition_args, tiny_backbone_file, wait_until
from tests.test_cli import invoke
from tests.test_members import fake_kind

HEADSTART = str(Path(sys.executable).with_name("headstart"))
DASK = str(Path(sys.executable).with_name("dask"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """The shapes competition (150 training images, three classes) and a tiny backbone, made once."""
    root = tmp_path_factory.mktemp("shapes")
    invoke(*shapes_competition_args(root))
    tiny_backbone_file(root / "tiny.keras")
    return root


def fresh_copy(shapes: Path, destination: Path) -> Path:
    """The competition's data folder with nothing extracted or trained yet."""
    shutil.copytree(shapes / "data", destination)
    return destination


def arrays(data_dir: Path) -> dict[str, np.ndarray]:
    """Every feature shard and every member's predictions under a data folder, by what they are (the member's
    directory name is its content key: the same member on the same inputs has the same name in both folders)."""
    found = {}
    for path in [*data_dir.glob("03_features/*/*/*/*.npy"), *data_dir.glob("05_predictions/*/*/members/*/*.npy")]:
        found[str(path.relative_to(data_dir))] = np.load(path)
    return found


def assert_same_arrays(first: Path, second: Path) -> None:
    one, other = arrays(first), arrays(second)
    assert sorted(one) == sorted(other) and len(one) > 4
    for name in one:
        np.testing.assert_array_equal(one[name], other[name], err_msg=name)


MEMBERS = ("logistic", "mlp", "softmax", "cnn")


def plain_run(shapes: Path, data_dir: Path, mapped: bool) -> Path:
    config = Config(competition="shapes", data_dir=str(data_dir), members=MEMBERS, folds=3, submit=False,
                    backbones=(f"file:{shapes / 'tiny.keras'}",), train=TrainConfig(epochs=3),
                    features=FeatureConfig(views=("identity", "flip")))
    # Units in reverse order: a shard or a fold must not depend on which ran before it in the process.
    backwards = lambda run_unit, plan, units: [run_unit(plan, unit) for unit in reversed(units)]
    return stages.compete(config, stages.Stages(map=backwards) if mapped else stages.Stages())


@pytest.mark.slow  # 35 s: two whole competes; the units' order is also covered by the stored-fold tests
def test_units_in_any_order_give_what_they_give_in_turn(shapes, tmp_path):
    """Without Prefect: every backbone x view x shard and every member x fold, run in reverse order, leaves the same
    features and predictions, bit for bit, as in the plan's order."""
    whole, mapped = fresh_copy(shapes, tmp_path / "whole"), fresh_copy(shapes, tmp_path / "mapped")
    plain_run(shapes, whole, mapped=False)
    run_json = plain_run(shapes, mapped, mapped=True)
    assert_same_arrays(whole, mapped)
    record = json.loads(Path(run_json).read_text())
    assert sorted(record["members"]) == sorted(f"{name}@file:{shapes / 'tiny.keras'}" if name in ("logistic", "mlp")
                                               else name for name in MEMBERS)
    # Each feature set's shards were written by the mapped calls, each with its record, then gathered in one
    # manifest; a member's folds were gathered into its predictions and its fold store removed.
    for manifest in mapped.glob("03_features/local/shapes/*/manifest.json"):
        entries = json.loads(manifest.read_text())["shards"]
        assert entries and all((manifest.parent / f"{name}.json").is_file() for name in entries)
    assert not list(mapped.glob("05_predictions/local/shapes/members/*.folds"))


def test_a_stored_fold_is_read_not_fitted_again(tmp_path, monkeypatch):
    """A member killed after two folds resumes at the third; a fold the time limit cut short is read only by a
    time-limited run."""
    calls = []

    def fit_fold(train, valid, clock):
        calls.append(len(calls))
        return np.full((len(valid), 10), 0.5), np.full((10, 10), float(len(calls))), {"loss": [1.0]}

    fake_kind(monkeypatch, fit_fold)
    plan = separable_digits_plan(tmp_path, folds=4)
    job = fitting.member_job(plan, "softmax")
    rows = (job.context.folds == 0).sum()
    job.fold_store.save(0, np.full((rows, 10), 0.25), np.zeros((10, 10)), {"loss": [2.0, 1.0]}, partial=False)
    job.fold_store.save(1, np.full(((job.context.folds == 1).sum(), 10), 0.75), np.zeros((10, 10)), {}, partial=True)
    assert [unit.fold for unit in stages.MEMBERS.units(plan)] == [1, 2, 3]  # its partial fold 1 is not used
    members = stages.run_mapped(stages.Stages(), stages.MEMBERS, plan)
    meta, oof, _ = fitting.load_member(members.directories[0])
    assert len(calls) == 3 and np.all(oof[job.context.folds == 0] == 0.25) and not meta["ended_by_time_limit"]
    calls.clear()
    limited = separable_digits_plan(tmp_path / "limited", folds=4, deadline=time.time() + 600, time_limit=60.0)
    limited_job = fitting.member_job(limited, "softmax")
    limited_job.fold_store.save(1, np.full(((limited_job.context.folds == 1).sum(), 10), 0.75), np.zeros((10, 10)),
                                {}, partial=True)
    assert [unit.fold for unit in stages.MEMBERS.units(limited)] == [0, 2, 3]  # a time-limited run reads it
    members = stages.run_mapped(stages.Stages(), stages.MEMBERS, limited)
    meta, oof, _ = fitting.load_member(members.directories[0])
    assert meta["ended_by_time_limit"] and members.directories[0].name.endswith("-partial")
    assert np.all(oof[limited_job.context.folds == 1] == 0.75) and len(calls) == 3


def free_port() -> int:
    """A port nothing listens on (just released by the kernel)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_task_runner_is_checked_before_any_work(tmp_path):
    from flows.cli import app
    from tests.test_cli import runner

    result = runner.invoke(app, ["run", "--data-dir", str(tmp_path), "--no-submit", "--task-runner", "ray"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(
        "error: Invalid value for '--task-runner': 'ray' is not one of ['threads', 'dask'] (see `"), result.output
    for arguments, message in ((["--dask-address", "tcp://127.0.0.1:8786"],
                                "dask_address is for task_runner 'dask' (--task-runner dask --dask-address HOST:PORT)"),
                               (["--task-runner", "dask", "--dask-address", "127.0.0.1:eighty"],
                                "--dask-address '127.0.0.1:eighty': expected a Dask scheduler's address, tcp://HOST:PORT"),
                               (["--task-runner", "dask", "--dask-address", f"tcp://127.0.0.1:{free_port()}"],
                                "no Dask scheduler answers there (Connection refused); start one with `dask scheduler`")):
        result = runner.invoke(app, ["run", "--data-dir", str(tmp_path), "--no-submit", *arguments])
        lines = result.output.strip().splitlines()  # one line, before Prefect or any work starts
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith(
            message), result.output
        assert not (tmp_path / "01_raw").exists()


def test_the_local_cluster_reports_to_this_runs_prefect_api(monkeypatch):
    """Workers of the local cluster get this process's API (else each would start a temporary server of its
    own: a minute each on a busy 2-core machine), one thread each, and headstart's preload."""
    from flows import orchestration

    made = {}
    monkeypatch.setattr(orchestration, "prefect_api_url", lambda: "http://127.0.0.1:4999/api")
    monkeypatch.setattr("distributed.LocalCluster", lambda **options: made.update(options) or "cluster")
    runner = orchestration.dask_task_runner()
    runner.cluster_class(**runner.cluster_kwargs)  # what Prefect does to start the cluster
    assert made["threads_per_worker"] == 1 and made["processes"] and made["preload"] == ["flows.dask_worker"]
    assert made["n_workers"] == len(os.sched_getaffinity(0)) and made["dashboard_address"] is None
    assert made["env"]["PREFECT_API_URL"] == "http://127.0.0.1:4999/api"
    assert orchestration.dask_task_runner("tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"


# --- a real cluster: `headstart run` as a user runs it ---------------------------------------------------------

RUN = ["--no-submit", "--epochs", "3", "--folds", "3", "--view", "identity", "--view", "flip"]


def run_arguments(shapes: Path, data_dir: Path) -> list[str]:
    backbone = f"file:{shapes / 'tiny.keras'}"
    return [HEADSTART, "run", "shapes", "--data-dir", str(data_dir), "--backbone", backbone, *RUN,
            *(part for member in MEMBERS for part in ("--member", member))]


def environment(api_url: str, **extra) -> dict:
    # One TensorFlow thread in every process: a convolution's float32 sums are ordered by the thread count, so
    # 1 and 2 threads differ in the last bits (3e-5 in a CNN's probabilities); Dask workers have one each.
    return {**os.environ, "PREFECT_API_URL": api_url, "NO_PROXY": "127.0.0.1", "TF_NUM_INTRAOP_THREADS": "1",
            **extra}


@pytest.fixture(scope="module")
def single_process(shapes, tmp_path_factory, prefect_server) -> Path:
    """The reference: the same run with the default task runner (threads, one process)."""
    from prefect.settings import PREFECT_API_URL

    data_dir = fresh_copy(shapes, tmp_path_factory.mktemp("single") / "data")
    done = subprocess.run(run_arguments(shapes, data_dir), env=environment(PREFECT_API_URL.value()),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return data_dir


def worker_processes(parent: psutil.Process) -> list[psutil.Process]:
    """The Dask worker processes under a process (its nannies' children, started by multiprocessing)."""
    found = []
    for child in parent.children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # ended meanwhile
            pass
    return found


@pytest.mark.slow  # three runs of a minute or two on a real local cluster
def test_a_local_cluster_gives_the_single_process_results_even_when_a_worker_is_killed(shapes, single_process,
                                                                                      tmp_path, prefect_server):
    from prefect.settings import PREFECT_API_URL

    data_dir = fresh_copy(shapes, tmp_path / "data")
    process = subprocess.Popen([*run_arguments(shapes, data_dir), "--task-runner", "dask"],
                               env=environment(PREFECT_API_URL.value()), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)

    def kill_a_worker() -> int | None:
        if list(data_dir.glob("05_predictions/local/shapes/members/cnn-*.folds/fold-*.npz")):
            workers = worker_processes(psutil.Process(process.pid))
            if workers:  # mid-run: the CNN's folds are being fitted, by both workers
                workers[0].kill()
                return workers[0].pid
        return None

    try:
        killed = wait_until(kill_a_worker, 300, "a worker to kill mid-run", process, interval=0.2)
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    assert_same_arrays(single_process, data_dir)
    assert "Traceback" not in stderr and "blend (caruana)" in stdout
    # Shards were extracted on the workers, each of which built the backbone once however many shards it did.
    records = shard_records(data_dir)
    assert records and all(record["backbones_built"] == 1 for record in records)
    assert process.pid not in extracted_by(data_dir)


def shard_records(data_dir: Path) -> list[dict]:
    """What extractions.jsonl says of each shard extracted as a task of its own."""
    return [record for path in data_dir.glob("03_features/local/shapes/*/extractions.jsonl")
            for record in map(json.loads, path.read_text().splitlines()) if "shard" in record]


def extracted_by(data_dir: Path) -> set[int]:
    return {record["process"] for record in shard_records(data_dir)}


@pytest.mark.slow
def test_a_scheduler_at_an_address_gives_the_single_process_results(shapes, single_process, tmp_path,
                                                                    prefect_server):
    """A cluster of one's own: `dask scheduler`, `dask worker --preload flows.dask_worker` with two worker
    processes, the run pointed at it with --dask-address; the workers report to the same Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = environment(PREFECT_API_URL.value())
    scheduler_file = tmp_path / "scheduler.json"
    cluster = [subprocess.Popen([DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--no-dashboard",
                                 "--host", "127.0.0.1", "--port", "0"], env=env, stderr=subprocess.DEVNULL)]
    try:
        wait_until(lambda: scheduler_file.is_file() and scheduler_file.stat().st_size, 30, "the scheduler's file",
                   cluster[0])
        address = json.loads(scheduler_file.read_text())["address"]
        cluster.append(subprocess.Popen([DASK, "worker", address, "--nworkers", "2", "--nthreads", "1",
                                         "--preload", "flows.dask_worker", "--no-dashboard"], env=env,
                                        stderr=subprocess.DEVNULL))
        data_dir = fresh_copy(shapes, tmp_path / "data")
        done = subprocess.run([*run_arguments(shapes, data_dir), "--task-runner", "dask", "--dask-address", address],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        workers = {child.pid for child in psutil.Process(cluster[1].pid).children(recursive=True)}
        assert extracted_by(data_dir) and extracted_by(data_dir) <= workers  # the shards were the cluster's work
    finally:
        for member in reversed(cluster):
            member.terminate()
            member.wait(timeout=30)
    assert_same_arrays(single_process, data_dir)
