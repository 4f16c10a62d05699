"""Blending members by their out-of-fold predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.index import TRAIN, read_index
from tasks.members import load_member
from tasks.metrics import score_probabilities
from tasks.paths import atomic_write_json, atomic_write_npy
from tasks.plots import plot_confusion_matrix


def blend_mean(predictions: list[np.ndarray]) -> np.ndarray:
    """The plain mean of the members' probabilities."""
    if not predictions:
        raise ValueError("nothing to blend: no member predictions")
    return np.mean(np.stack(predictions), axis=0)


def member_scores(labels: np.ndarray, oofs: dict[str, np.ndarray], metric: str) -> dict[str, float]:
    return {name: score_probabilities(labels, oof, metric) for name, oof in oofs.items()}


@task(cache_policy=NO_CACHE)
def blend_members(config, index_dir: Path, member_dirs: list[Path], run_id: str) -> Path:
    """Blend the members' probabilities; leave ensemble.json and the blend in data/05_predictions/."""
    index = read_index(index_dir)
    spec = index.metadata["spec"]
    labels = index.split(TRAIN)["label"].to_numpy()
    members = {Path(directory).name: load_member(Path(directory)) for directory in member_dirs}
    oof = blend_mean([oof for _, oof, _ in members.values()])
    test = blend_mean([test for _, _, test in members.values()])
    score = score_probabilities(labels, oof, spec["metric"])
    plot_confusion_matrix(labels, oof, spec["class_names"], f"blend (CV {spec['metric']} {score:.4f})",
                          config.paths.models(config.competition, run_id) / "blend" / "confusion_matrix.png")
    directory = config.paths.predictions(config.competition, run_id) / "blend"
    atomic_write_npy(directory / "oof.npy", oof)
    atomic_write_npy(directory / "test.npy", test)
    atomic_write_json(directory / "ensemble.json", {
        "method": "mean", "metric": spec["metric"], "cv_score": score,
        "members": {name: {"cv_score": meta["cv_score"], "weight": 1 / len(members)}
                    for name, (meta, _, _) in members.items()}})
    return directory
