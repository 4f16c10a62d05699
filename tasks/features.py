"""Run each frozen backbone once over the images; keep the features on disk, content-addressed.

A feature set lives in data/03_features/<comp>/<key>/: float16 shards `<split>-<number>.npy`, each
written atomically, and manifest.json holding every shard's checksum. A re-run verifies the shards
and extracts only those missing or corrupt, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks.backbones import BackboneSpec, backbone_spec, build_extractor, weights_hash
from tasks.config import FeatureConfig
from tasks.files import atomic_write_json, atomic_write_npy, sha256_file, sha256_text
from tasks.index import TEST, TRAIN, LoadedIndex, read_index
from tasks.pipelines import apply_view, resize, split_source, uint8_batches
from tasks.progress import progress_bar

FEATURE_VERSION = 1  # bump when extraction changes what a feature set holds
DECODE_CHUNK = 512  # images decoded ahead of the model at a time: bounds memory, keeps it flat


def feature_key(images_hash: str, spec: BackboneSpec, weights_digest: str, image_size: int, view: str,
                policy: str = "float32") -> str:
    """The content address of one feature set (features computed in mixed precision differ a little)."""
    parts = {"images": images_hash, "backbone": asdict(spec), "weights": weights_digest, "size": image_size,
             "view": view, "version": FEATURE_VERSION, **({"policy": policy} if policy != "float32" else {})}
    return sha256_text(json.dumps(parts, sort_keys=True))[:20]


def inference_function(model: keras.Model, prepare=lambda images: images, jit_compile: bool = False):
    """The model's forward pass in inference mode (float32 out), traced once and reused for every shard. With
    `jit_compile` XLA compiles the model alone: the antialiased resize in `prepare` has no XLA kernel."""
    forward = tf.function(lambda images: tf.cast(model(images, training=False), tf.float32),
                          reduce_retracing=True, jit_compile=jit_compile)
    return tf.function(lambda images: forward(prepare(images)), reduce_retracing=True)


def replicated(forward, strategy):
    """`forward` over several devices: each batch split in order across the strategy's replicas, and the outputs
    joined again in the same order."""
    count = strategy.num_replicas_in_sync

    def run(images):
        bounds = np.linspace(0, int(images.shape[0]), count + 1).astype(int)
        parts = strategy.experimental_distribute_values_from_function(
            lambda context: images[bounds[context.replica_id_in_sync_group]:
                                   bounds[context.replica_id_in_sync_group + 1]])
        return tf.concat(strategy.experimental_local_results(strategy.run(forward, args=(parts,))), axis=0)

    return run


class Extractor:
    """A backbone's frozen extractor at one input size, built on first use and shared by every view. Built in the
    device scope in force (tasks/devices.py): its compute policy, and its replicas when there are several."""

    def __init__(self, spec: BackboneSpec, weights: Path | None, image_size: int | None = None,
                 jit_compile: bool = False):
        self.spec, self.weights, self.image_size = spec, weights, image_size or spec.input_size
        self.jit_compile = jit_compile

    built = 0  # extractors this process has built (a Dask worker's count shows backbones are built once)

    @functools.cached_property
    def model(self) -> keras.Model:
        Extractor.built += 1
        return build_extractor(self.spec, self.weights, self.image_size)

    @functools.cache
    def forward(self, view: str):
        """uint8 batches in: resized, viewed and run through the frozen model in one traced function."""
        size = self.image_size
        forward = inference_function(self.model, lambda images: apply_view(resize(images, size), view),
                                     self.jit_compile)
        strategy = tf.distribute.get_strategy()
        return replicated(forward, strategy) if strategy.num_replicas_in_sync > 1 else forward


_EXTRACTORS: dict[tuple, Extractor] = {}
_EXTRACTORS_LOCK = threading.Lock()


def shared_extractor(spec: BackboneSpec, weights: Path | None, image_size: int | None,
                     jit_compile: bool = False) -> Extractor:
    """The process's extractor for a backbone, weights, size and compute policy: a process that extracts many
    shards (a Dask worker) builds each backbone once, not once per shard."""
    key = (spec, str(weights), image_size, jit_compile, keras.config.dtype_policy().name,
           tf.distribute.get_strategy().num_replicas_in_sync)
    with _EXTRACTORS_LOCK:
        if key not in _EXTRACTORS:
            _EXTRACTORS[key] = Extractor(spec, weights, image_size, jit_compile)
        return _EXTRACTORS[key]


def extract_features(forward, batches, on_batch=None) -> np.ndarray:
    """Features of every image in an iterable of batches, as float32 (N, width), by `forward(batch)`."""
    outputs = []
    for images in batches:
        outputs.append(np.asarray(forward(images), dtype=np.float32))
        if on_batch is not None:
            on_batch(int(images.shape[0]))
    return np.concatenate(outputs)


def plan_shards(num_train: int, num_test: int, shard_size: int) -> list[dict]:
    """The shards of both splits: file name, split, and [start, stop) positions."""
    shards = []
    for split, count in ((TRAIN, num_train), (TEST, num_test)):
        for number, start in enumerate(range(0, count, shard_size)):
            shards.append({"file": f"{split}-{number:05d}.npy", "split": split, "start": start,
                           "stop": min(start + shard_size, count)})
    return shards


def shard_record_path(directory: Path, name: str) -> Path:
    """The record a shard's writer leaves beside it (its checksum and width): shards written by other processes
    (tasks on a Dask cluster) are found by their records, without a shared manifest to race on."""
    return Path(directory) / f"{name}.json"


def write_shard(directory: Path, shard: dict, features: np.ndarray) -> dict:
    """One shard's features, then its record, each written atomically: a shard without a record is not done."""
    atomic_write_npy(Path(directory) / shard["file"], features.astype(np.float16))
    entry = {**shard, "sha256": sha256_file(Path(directory) / shard["file"]), "feature_width": int(features.shape[1])}
    atomic_write_json(shard_record_path(directory, shard["file"]), entry)
    return entry


def verified_shard(directory: Path, name: str, recorded: dict | None = None) -> dict | None:
    """A shard's record if its file exists and matches the checksum recorded for it (beside the shard, or in the
    manifest: `recorded`), else None."""
    record = shard_record_path(directory, name)
    if record.is_file():
        try:
            recorded = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError):  # a record is written atomically; a bad one means: redo
            return None
    path = Path(directory) / name
    # Re-hash rather than trust the file's presence: a crash or a bad disk can leave a wrong file.
    return recorded if recorded and path.is_file() and sha256_file(path) == recorded["sha256"] else None


def verified_shards(directory: Path, manifest: dict) -> dict[str, dict]:
    """The verified shards of a feature set (recorded in the manifest or beside the shards), by file name."""
    names = {*manifest.get("shards", {}), *(path.name[:-len(".json")] for path in Path(directory).glob("*.npy.json"))}
    entries = {name: verified_shard(directory, name, manifest.get("shards", {}).get(name)) for name in names}
    return {name: entry for name, entry in entries.items() if entry is not None}


def extract_shard(index: LoadedIndex, extractor: Extractor, view: str, directory: Path, shard: dict,
                  config: FeatureConfig, advance=None, input_device: str | None = None) -> dict:
    """Extract one shard's features and write it with its record; return the record. With an `input_device` (a GPU
    that runs the model) the images stream to it: decoded by tf.data on the otherwise idle CPU and prefetched onto
    the device while the previous batch runs (`prefetch_to_device`); on a CPU, chunks are decoded before the model
    runs (tf.data's threads beside the model would slow it, bench P2)."""
    forward, size, parts = extractor.forward(view), extractor.image_size, []
    if input_device is not None:
        batches = uint8_batches(split_source(index, shard["split"], np.arange(shard["start"], shard["stop"])), 3, size,
                                config.batch_size, same_size=index.same_size)
        batches = batches.apply(tf.data.experimental.prefetch_to_device(input_device, buffer_size=2))
        return write_shard(directory, shard, extract_features(forward, batches, advance))
    for start in range(shard["start"], shard["stop"], DECODE_CHUNK):
        positions = np.arange(start, min(start + DECODE_CHUNK, shard["stop"]))
        # Decode a chunk completely before the model runs: with tf.data's threads working beside
        # the model, extraction ran at 0.55-0.6x of the bare forward pass on 2 cores (bench P2).
        batches = list(uint8_batches(split_source(index, shard["split"], positions), 3, size,
                                     config.batch_size, same_size=index.same_size))
        parts.append(extract_features(forward, batches, advance))
    return write_shard(directory, shard, np.concatenate(parts))


def shard_status(index: LoadedIndex, directory: Path, config: FeatureConfig) -> tuple[dict, dict[str, dict], list[dict]]:
    """A feature set's manifest as recorded (empty if none), its planned shards that are verified on disk (by file
    name), and the planned shards still to extract."""
    manifest_path = Path(directory) / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    plan = plan_shards(index.metadata["num_train"], index.metadata["num_test"], config.shard_size)
    shards = {name: entry for name, entry in verified_shards(directory, manifest).items()
              if name in {shard["file"] for shard in plan}}
    return manifest, shards, [shard for shard in plan if shard["file"] not in shards]


def cache_feature_set(index: LoadedIndex, extractor: Extractor, view: str, directory: Path,
                      config: FeatureConfig, input_device: str | None = None) -> dict:
    """Extract the shards not yet verified in `directory` (streamed to `input_device` when given, see
    `extract_shard`); return the completed manifest."""
    spec, size = extractor.spec, extractor.image_size
    manifest_path = directory / "manifest.json"
    manifest, shards, todo = shard_status(index, directory, config)
    width = next((entry["feature_width"] for entry in shards.values() if "feature_width" in entry),
                 manifest.get("feature_width"))
    recorded, manifest = manifest, {
        "backbone": spec.name, "view": view, "image_size": size, "num_train": index.metadata["num_train"],
        "num_test": index.metadata["num_test"], "shards": shards, "complete": not todo, "feature_width": width}
    if not todo:
        if manifest != recorded:  # shards other processes wrote (mapped extraction), now in one manifest
            atomic_write_json(manifest_path, manifest)
        return manifest
    started, images = time.perf_counter(), sum(shard["stop"] - shard["start"] for shard in todo)
    with progress_bar(f"{spec.label} [{view}] features", total=images, unit="images") as advance:
        for shard in todo:
            entry = extract_shard(index, extractor, view, directory, shard, config, advance, input_device)
            manifest["shards"][shard["file"]] = entry
            manifest["feature_width"] = entry["feature_width"]
            atomic_write_json(manifest_path, manifest)  # after every shard: a kill loses one shard at most
    manifest["complete"] = True
    atomic_write_json(manifest_path, manifest)
    _log_extraction(directory, images, time.perf_counter() - started)
    return manifest


def _log_extraction(directory: Path, images: int, seconds: float, **facts) -> None:
    """One line per extraction (a whole set, or one shard with the process that did it): small appends from
    several processes stay whole lines."""
    with open(directory / "extractions.jsonl", "a") as stream:
        stream.write(json.dumps({"images": images, "seconds": round(seconds, 3), "time": time.time(), **facts}) + "\n")


def load_features(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """A complete feature set's (train, test) features as float32, in index order."""
    manifest = json.loads((Path(directory) / "manifest.json").read_text())
    if not manifest.get("complete"):
        raise RuntimeError(f"{directory}: feature set incomplete; run extraction again to resume it")
    parts = {TRAIN: [], TEST: []}
    for entry in sorted(manifest["shards"].values(), key=lambda shard: (shard["split"], shard["start"])):
        parts[entry["split"]].append(np.load(Path(directory) / entry["file"]))
    width = manifest["feature_width"]
    return tuple(np.concatenate(parts[split]).astype(np.float32) if parts[split] else
                 np.zeros((0, width), np.float32) for split in (TRAIN, TEST))


def feature_directory(root: Path, index: LoadedIndex, spec: BackboneSpec, weights: Path | None,
                      view: str, config: FeatureConfig, policy: str = "float32") -> Path:
    key = feature_key(index.images_hash, spec, weights_hash(weights), config.image_size or spec.input_size, view,
                      policy)
    return root / f"{spec.label[:40]}-{view}-{key}"


def feature_dirs(plan, backbone: str, index: LoadedIndex | None = None) -> tuple[Path, ...]:
    """Where a backbone's feature sets of a run live, one per view of the plan (identity first): known from the plan
    alone, before any is extracted."""
    index = index or read_index(plan.index_dir)
    return tuple(feature_directory(plan.paths.features(plan.competition), index, backbone_spec(backbone),
                                   plan.weights[backbone], view, plan.features, plan.device.policy)
                 for view in plan.views)


@dataclass(frozen=True)
class FeatureShard:
    """A unit of extraction: one shard of one view of one backbone's features."""

    backbone: str
    view: str
    shard: dict


def feature_units(plan) -> list[FeatureShard]:
    """The shards of the run's feature sets not yet extracted and verified: extraction's units of work, which a plain
    loop or an orchestrator (any worker) runs with `extract_feature_unit`."""
    index, units = read_index(plan.index_dir), []
    for backbone in plan.weights:
        for view, directory in zip(plan.views, feature_dirs(plan, backbone, index)):
            units += [FeatureShard(backbone, view, shard) for shard in shard_status(index, directory, plan.features)[2]]
    return units


def extract_feature_unit(plan, unit: FeatureShard) -> dict:
    """Leave one shard of a feature set on disk with its record (unless it is there already); return the record.
    The process builds each backbone once, however many shards it extracts (extractions.jsonl says which process
    did a shard and how many backbones it had built)."""
    from tasks.devices import device_scope

    index, device = read_index(plan.index_dir), plan.device
    with device_scope(device):
        extractor = shared_extractor(backbone_spec(unit.backbone), plan.weights[unit.backbone],
                                     plan.features.image_size, device.jit_compile)
        directory = feature_dirs(plan, unit.backbone, index)[plan.views.index(unit.view)]
        entry = verified_shard(directory, unit.shard["file"])
        if entry is None:
            started = time.perf_counter()
            directory.mkdir(parents=True, exist_ok=True)
            with progress_bar(f"{extractor.spec.label} [{unit.view}] {unit.shard['file'][:-4]}",
                              total=unit.shard["stop"] - unit.shard["start"], unit="images") as advance:
                entry = extract_shard(index, extractor, unit.view, directory, unit.shard, plan.features, advance,
                                      input_device=device.input_device)
            _log_extraction(directory, unit.shard["stop"] - unit.shard["start"], time.perf_counter() - started,
                            shard=unit.shard["file"], process=os.getpid(), backbones_built=Extractor.built)
    return entry


def gather_features(plan) -> dict[str, tuple[Path, ...]]:
    """Each backbone's feature sets, complete and verified, with their manifests written from the shards' records
    (a shard still missing is extracted here); by backbone, one directory per view."""
    from tasks.devices import device_scope

    index, device, gathered = read_index(plan.index_dir), plan.device, {}
    with device_scope(device):
        for backbone, weights in plan.weights.items():
            extractor = shared_extractor(backbone_spec(backbone), weights, plan.features.image_size, device.jit_compile)
            directories = feature_dirs(plan, backbone, index)
            for view, directory in zip(plan.views, directories):
                cache_feature_set(index, extractor, view, directory, plan.features, device.input_device)
            gathered[backbone] = directories
    return gathered
