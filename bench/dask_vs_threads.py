"""A local Dask cluster (one single-threaded worker per core) against one process (issue 11, part 3).

On a cifar10-dev subset in Kaggle's cifar-10 layout, with the shared EfficientNet-Lite0: feature extraction
(images/s) and a 5-fold member (wall time), first in this process as `--task-runner threads` runs them (one stage
per backbone and per member, TensorFlow on every core), then mapped over a local Dask cluster as
`--task-runner dask` runs them (one task per shard and per fold: the same stage functions, handed to the workers
by a Dask client; Prefect's own per-task cost is measured apart, by whole `headstart run`s with --end-to-end).

    .venv/bin/python -m bench.dask_vs_threads [--train 2000] [--size 128] [--shard-size 250] [--members mlp,cnn]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from bench.common import LITE0

RESULTS: dict = {}


def report(**facts) -> None:
    print(json.dumps(facts), flush=True)
    RESULTS.setdefault("rows", []).append(facts)


def make_competition(name: str, train: int, data_dir: Path, scratch: Path):
    from bench.cifar_recipes import CIFAR, subset_zip
    from tasks.backends.local import create_local_competition
    from tasks.competitions import resolve_spec
    from tasks.config import Config

    config = Config(competition=name, data_dir=str(data_dir), submit=False)
    if not (config.paths.local(name) / "competition.json").is_file():
        create_local_competition(config.paths.local(name), name, resolve_spec("cifar-10").with_slug(name),
                                 subset_zip(train, scratch), CIFAR / "solution.csv")
    return config


def prepare(config, data_dir: Path, backbone: str, members: list[str]):
    """The run's plan (fetch, index, plan) in its own data folder."""
    from tasks import stages

    return stages.prepare(dataclasses.replace(config, data_dir=str(data_dir), backbones=(backbone,),
                                              members=tuple(qualified(member, backbone) for member in members),
                                              features=dataclasses.replace(config.features, views=("identity",))))


def single_process(plan, backbone: str, images: int) -> dict:
    """Every unit in turn in this process, as `--task-runner threads` runs them."""
    from tasks import stages

    started = time.perf_counter()
    feature_dirs = stages.run_mapped(stages.Stages(), stages.FEATURES, plan)[backbone]
    seconds = time.perf_counter() - started
    report(runner="threads", step="features", seconds=round(seconds, 1), images_per_second=round(images / seconds, 1))
    directories = {}
    for member in plan.members:
        started = time.perf_counter()
        directories[member] = stages.run_mapped(stages.Stages(), stages.MEMBERS,
                                                dataclasses.replace(plan, members=(member,))).directories[0]
        report(runner="threads", step=f"{member} (5 folds)", seconds=round(time.perf_counter() - started, 1))
    return {"features": feature_dirs, "members": directories}


def qualified(member: str, backbone: str) -> str:
    return f"{member}@{backbone}" if member in ("logistic", "mlp") else member


def on_cluster(plan, backbone: str, images: int, workers: int) -> dict:
    """The same units mapped over a local Dask cluster (as `--task-runner dask` maps them), then gathered here."""
    from distributed import Client, LocalCluster

    from tasks import stages

    started = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           preload=["flows.dask_worker"], env={"DASK_LOGGING__DISTRIBUTED": "error"})
    client = Client(cluster)
    report(runner="dask", step="cluster start", seconds=round(time.perf_counter() - started, 1), workers=workers)
    try:
        started = time.perf_counter()
        client.run(lambda: __import__("tensorflow") and None)  # TensorFlow imported in every worker, timed apart
        report(runner="dask", step="TensorFlow imported in the workers", seconds=round(time.perf_counter() - started, 1))

        def each(run_unit, unit_plan, units):
            return client.gather(client.map(run_unit, [unit_plan] * len(units), units, pure=False)) if units else []

        mapped_stages = stages.Stages(map=each)
        started = time.perf_counter()
        shards = stages.FEATURES.units(plan)
        each(stages.FEATURES.run_unit, plan, shards)
        mapped = time.perf_counter() - started
        feature_dirs = stages.FEATURES.gather(plan)[backbone]
        seconds = time.perf_counter() - started
        report(runner="dask", step="features", seconds=round(seconds, 1), images_per_second=round(images / seconds, 1),
               shards=len(shards), mapped_seconds=round(mapped, 1), manifest_seconds=round(seconds - mapped, 1))
        directories = {}
        for member in plan.members:
            member_plan = dataclasses.replace(plan, members=(member,))
            started = time.perf_counter()
            mapped_stages.map(stages.MEMBERS.run_unit, member_plan, stages.MEMBERS.units(member_plan))
            mapped = time.perf_counter() - started
            directories[member] = stages.MEMBERS.gather(member_plan).directories[0]
            seconds = time.perf_counter() - started
            report(runner="dask", step=f"{member} (5 folds)", seconds=round(seconds, 1),
                   mapped_seconds=round(mapped, 1), gather_seconds=round(seconds - mapped, 1))
        return {"features": feature_dirs, "members": directories}
    finally:
        client.close()
        cluster.close()


def compare(first: dict, second: dict) -> None:
    """Whether both ways left the same numbers (features: float16 shards; members: out-of-fold probabilities)."""
    import numpy as np

    from tasks.features import load_features

    one, other = load_features(first["features"][0])[0], load_features(second["features"][0])[0]
    report(step="features equal", equal=bool(np.array_equal(one, other)),
           max_difference=float(np.abs(one - other).max()))
    for member in first["members"]:
        one, other = (np.load(Path(result["members"][member]) / "oof.npy") for result in (first, second))
        report(step=f"{member} equal", equal=bool(np.array_equal(one, other, equal_nan=True)),
               max_difference=float(np.nanmax(np.abs(one - other))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument("--members", default="mlp,cnn")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "dask-vs-threads")
    parser.add_argument("--out", type=Path, default=Path("bench/out/dask_vs_threads.json"))
    arguments = parser.parse_args()

    from flows.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tasks.config import FeatureConfig, TrainConfig

    name, members = f"cifar{arguments.train}", arguments.members.split(",")
    base = make_competition(name, arguments.train, arguments.scratch / "threads", arguments.scratch)
    make_competition(name, arguments.train, arguments.scratch / "dask", arguments.scratch)
    base = dataclasses.replace(base, features=FeatureConfig(image_size=arguments.size,
                                                            shard_size=arguments.shard_size),
                               train=TrainConfig(epochs=10))
    backbone = f"file:{LITE0}"
    threads_plan = prepare(base, arguments.scratch / "threads", backbone, members)
    dask_plan = prepare(base, arguments.scratch / "dask", backbone, members)
    meta = json.loads((Path(threads_plan.index_dir) / "index.json").read_text())
    images = meta["num_train"] + meta["num_test"]
    report(step="setup", train=meta["num_train"], test=meta["num_test"], size=arguments.size,
           shard_size=arguments.shard_size, cores=len(os.sched_getaffinity(0)))
    threads = single_process(threads_plan, backbone, images)
    cluster = on_cluster(dask_plan, backbone, images, arguments.workers)
    compare(threads, cluster)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
