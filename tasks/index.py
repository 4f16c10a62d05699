"""The index: ids, image references, targets and stratified folds, written under data/02_index/.

Targets are class indices in the table's `label` column, or for a multi-label competition a 0/1 tag matrix
stored beside it (`train_targets.npy`, the `label` column then -1); `LoadedIndex.targets()` gives either.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from tasks.competitions import CompetitionSpec
from tasks.errors import CompetitionDataError, ConfigError
from tasks.files import atomic_write_bytes, atomic_write_json, atomic_write_npy
from tasks.layouts import CompetitionData, load_competition

INDEX_VERSION = 5  # 5: task types (multi-label tags beside the table)
TRAIN, TEST = "train", "test"
TARGETS_FILE = "train_targets.npy"  # multi-label: the training rows' 0/1 tag matrix


def assign_folds(labels: np.ndarray, folds: int, seed: int, merge_rare: bool = False) -> np.ndarray:
    """Stratified fold number of every training example (multi-label: stratified by each row's rarest tag). With
    `merge_rare` (ranking: thousands of classes, most seen once or twice), classes with fewer than `folds` examples
    form one stratum together; otherwise such a class is an error."""
    if folds < 2:
        raise ConfigError(f"folds must be at least 2, got {folds}")
    if len(labels) < folds:
        raise CompetitionDataError(f"{len(labels)} training examples; {folds}-fold CV needs at least {folds}")
    if labels.ndim == 2:
        return assign_folds(rarest_tags(labels) + 1, folds, seed, merge_rare=True)
    if merge_rare:
        labels = _merged_rare(labels, folds)
    counts = np.bincount(labels)
    present = counts[counts > 0]
    if present.min() < folds:
        rarest = int(np.flatnonzero(counts == present.min())[0])
        raise CompetitionDataError(f"class index {rarest} has {present.min()} training examples; "
                                   f"{folds}-fold stratified CV needs at least {folds} per class")
    assignment = np.empty(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        assignment[held_out] = fold
    return assignment


def rarest_tags(tags: np.ndarray) -> np.ndarray:
    """Each row's rarest tag (the one fewest rows carry), or -1 for a row with none: the stratum that keeps rare
    tags spread over the folds. (iterative-stratification would do better, but its wheel installs a top-level
    `tests` package that shadows this project's.)"""
    counts = tags.sum(axis=0).astype(np.float64)
    rarity = np.where(tags > 0, counts[None, :], np.inf)
    return np.where(np.isfinite(rarity.min(axis=1)), rarity.argmin(axis=1), -1)


def _merged_rare(labels: np.ndarray, folds: int) -> np.ndarray:
    """Strata where the classes too small to reach every fold are one stratum (joined with the commonest class
    if even together they are too few)."""
    values, counts = np.unique(labels, return_counts=True)
    rare = np.isin(labels, values[counts < folds])
    merged = np.where(rare, labels.max() + 1, labels)
    if 0 < rare.sum() < folds:
        merged[rare] = values[counts.argmax()]
    return merged


def build_index(data: CompetitionData, raw_dir: Path, folds: int, seed: int, task: str = "multiclass"
                ) -> pd.DataFrame:
    """One row per example: id, split, position (row in its split), image (path below raw_dir), label, fold."""
    def rows(split: str, ids: np.ndarray, images, labels: np.ndarray, fold: np.ndarray) -> pd.DataFrame:
        relative = [str(Path(path).relative_to(raw_dir)) for path in images] if images else [""] * len(ids)
        return pd.DataFrame({"id": ids.astype(str), "split": split, "position": np.arange(len(ids)),
                             "image": relative, "label": labels if labels.ndim == 1 else -1, "fold": fold})

    train = rows(TRAIN, data.train_ids, data.train_images, data.train_labels,
                 assign_folds(data.train_labels, folds, seed, merge_rare=task == "ranking"))
    minus_ones = np.full(len(data.test_ids), -1)
    test = rows(TEST, data.test_ids, data.test_images, minus_ones, minus_ones)
    return pd.concat([train, test], ignore_index=True)


def images_digest(index: pd.DataFrame, data: CompetitionData) -> str:
    """A hash of what the images are (ids, order, pixels or file bytes): the key for features.

    Labels and folds are left out on purpose, so that re-folding does not invalidate extracted features.
    """
    digest = hashlib.sha256()
    digest.update("\n".join(index["split"] + "/" + index["id"]).encode())
    if data.train_pixels is not None:
        for pixels in (data.train_pixels, data.test_pixels):
            digest.update(str(pixels.shape).encode())
            digest.update(np.ascontiguousarray(pixels).tobytes())
    else:
        for path in (*data.train_images, *data.test_images):
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def image_geometry(spec: CompetitionSpec, data: CompetitionData) -> dict:
    """Native channels and size of the images (for image folders: colour if any is, their most common size)."""
    if data.train_pixels is not None:
        height, width, channels = spec.image_shape
        return {"channels": channels, "image_height": height, "image_width": width, "same_size": True}
    return data.geometry


def raw_fingerprint(raw_dir: Path) -> str:
    """A cheap fingerprint of the raw files (names, sizes, modification times) to know when to re-index."""
    digest = hashlib.sha256()
    for path in sorted(raw_dir.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            stat = path.stat()
            digest.update(f"{path.relative_to(raw_dir)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def write_index(directory: Path, index: pd.DataFrame, data: CompetitionData, metadata: dict) -> Path:
    """Write the index (parquet), pixel arrays (for pixel layouts) and index.json last, each atomically."""
    atomic_write_bytes(directory / "index.parquet", index.to_parquet(index=False))
    if data.train_labels.ndim == 2:
        atomic_write_npy(directory / TARGETS_FILE, data.train_labels)
    if data.train_pixels is not None:
        for split, pixels in ((TRAIN, data.train_pixels), (TEST, data.test_pixels)):
            atomic_write_npy(directory / f"{split}_pixels.npy", pixels)
    # index.json goes last: its presence says the rest is complete.
    return atomic_write_json(directory / "index.json", metadata)


@dataclass(frozen=True)
class LoadedIndex:
    """An index read back: the table, pixel arrays (pixel layouts) and its metadata."""

    directory: Path
    table: pd.DataFrame
    metadata: dict
    train_pixels: np.ndarray | None
    test_pixels: np.ndarray | None

    def split(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name].sort_values("position").reset_index(drop=True)

    @property
    def raw_dir(self) -> Path:
        return Path(self.metadata["raw_dir"])

    @property
    def same_size(self) -> bool:
        return bool(self.metadata.get("same_size"))

    @property
    def images_hash(self) -> str:
        return self.metadata["images_hash"]

    @property
    def task(self) -> str:
        return self.metadata["spec"].get("task", "multiclass")

    def targets(self) -> np.ndarray:
        """The training rows' targets, in their order: class indices (N,), or a 0/1 tag matrix (N, T)."""
        if self.task == "multilabel":
            return np.load(self.directory / TARGETS_FILE)
        return self.split(TRAIN)["label"].to_numpy()

    def image_paths(self, name: str) -> list[str]:
        return [str(self.raw_dir / image) for image in self.split(name)["image"]]


def read_index(directory: Path) -> LoadedIndex:
    metadata_path = directory / "index.json"
    if not metadata_path.is_file():
        raise FileNotFoundError(f"{directory}: no index here (missing index.json)")
    metadata = json.loads(metadata_path.read_text())
    # Memory-mapped: a shard of features reads only its own images, so memory stays flat as data grows.
    pixels = [np.load(directory / f"{split}_pixels.npy", mmap_mode="r") if metadata["layout"] == "pixels_csv" else None
              for split in (TRAIN, TEST)]
    return LoadedIndex(directory, pd.read_parquet(directory / "index.parquet"), metadata, *pixels)


def ensure_index(spec: CompetitionSpec, raw_dir: Path, directory: Path, folds: int, seed: int) -> Path:
    """Index the raw files unless the index there already matches them and the fold settings."""
    wanted = {"version": INDEX_VERSION, "raw_fingerprint": raw_fingerprint(raw_dir), "folds": folds, "seed": seed,
              "spec": spec.to_dict()}
    metadata_path = directory / "index.json"
    if metadata_path.is_file():
        existing = json.loads(metadata_path.read_text())
        if all(existing.get(key) == value for key, value in json.loads(json.dumps(wanted)).items()):
            return directory
    data = load_competition(spec, raw_dir)
    index = build_index(data, raw_dir, folds, seed, spec.task)
    metadata = {**wanted, "layout": spec.layout, **image_geometry(spec, data), "raw_dir": str(raw_dir.resolve()),
                "images_hash": images_digest(index, data),
                "content_hash": hashlib.sha256(pd.util.hash_pandas_object(index, index=False).to_numpy().tobytes())
                .hexdigest(), "num_train": len(data.train_ids),
                "num_test": len(data.test_ids), "class_counts": _class_counts(data.train_labels, spec.num_classes)}
    write_index(directory, index, data, metadata)
    return directory


def _class_counts(targets: np.ndarray, num_classes: int) -> list[int]:
    """Training rows per class (per tag, multi-label)."""
    counts = targets.sum(axis=0) if targets.ndim == 2 else np.bincount(targets, minlength=num_classes)
    return [int(count) for count in counts]


def index_competition(config, spec: CompetitionSpec, raw_dir: Path) -> Path:
    """Index the raw files into data/02_index/<competition>/ (skipped when up to date)."""
    return ensure_index(spec, raw_dir, config.paths.index(config.competition), config.folds, config.seed)
