"""Fitting members and keeping them: each member x fold a unit of work, a member's folds gathered into its
predictions, and everything stored by content.

The members stage, like extraction, is `units(plan) -> run_unit(plan, unit) -> gather(plan)`: `member_units` lists
the folds not yet fitted, `fit_member_unit` fits one into the member's fold store (on any worker: the store is
content-addressed), and `gather_members` turns each member's stored folds into its out-of-fold and test
predictions (data/05_predictions/<backend>/<comp>/members/<member>-<key>/). A plain loop, Prefect or Dask maps the
units; the library never knows which.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tasks.budget import Clock, member_deadline, reserve_seconds
from tasks.config import TrainConfig
from tasks.decisions import nested_score
from tasks.files import atomic_write_json, atomic_write_npy, sha256_text
from tasks.folds import FoldStore
from tasks.index import read_index
from tasks.members import FoldFitter, MemberContext, MemberResult
from tasks.plots import plot_confusion_matrix, plot_training_curves
from tasks.progress import progress_bar
from tasks.recipes import EPOCHLESS, MemberName, member_kind

# Bump when training changes what a member's predictions are (2: explicit seeds, issue 11; 3: task types, and early
# stopping on an inner split, on the competition's metric: issues 20, 21).
MEMBER_VERSION = 3


def member_key(member: MemberName, train: TrainConfig, seed: int, index_hash: str,
               feature_dirs: tuple[Path, ...], policy: str = "float32") -> str:
    """The cache key of a member's predictions: its name, training settings, the index (labels and
    folds included), its feature sets (whose directory names are their own content keys) and, when it is not
    float32, its compute policy."""
    parts = {"member": str(member), "train": asdict(train), "seed": seed, "index": index_hash,
             "features": [Path(directory).name for directory in feature_dirs], "version": MEMBER_VERSION,
             **({"policy": policy} if policy != "float32" else {})}
    return sha256_text(json.dumps(parts, sort_keys=True))[:16]


@dataclass(frozen=True)
class MemberJob:
    """One member of a run, resolved: its name, position in the plan, cache key and directory, and its context."""

    name: MemberName
    position: int
    key: str
    directory: Path
    context: MemberContext

    @property
    def fold_store(self) -> FoldStore:
        return FoldStore(self.directory.with_name(self.key + ".folds"))

    @property
    def done(self) -> bool:
        return (self.directory / "member.json").is_file()

    def folds(self) -> tuple[int, ...]:
        """The folds it fits: every fold, or the first `finetune_folds` of a finetune member, `cnn_folds` of a CNN."""
        numbers = tuple(int(fold) for fold in np.unique(self.context.folds))
        train = self.context.train
        limit = {"finetune": train.finetune_folds, "cnn": train.cnn_folds}.get(self.name.kind)
        return numbers[:limit] if limit else numbers


def member_job(plan, name: str) -> MemberJob:
    from tasks.features import feature_dirs

    member, index = MemberName.parse(name), read_index(plan.index_dir)
    directories = feature_dirs(plan, member.backbone, index) if member.backbone else ()
    seed = plan.config.seed + member.seed
    digest = member_key(member, plan.train, seed, index.metadata["content_hash"], directories, plan.device.policy)
    key = f"{member.directory_name}-{digest}"
    weights = plan.weights.get(member.backbone) if member.backbone else None
    context = MemberContext(index, plan.train, seed=seed, feature_dirs=directories, backbone=member.backbone,
                            weights=weights and Path(weights), features_root=plan.paths.features(plan.competition),
                            features=plan.features, jit_compile=plan.device.training_jit)
    return MemberJob(member, plan.members.index(name), key, plan.paths.member(plan.competition, key), context)


@dataclass(frozen=True)
class MemberFold:
    """A unit of the members stage: one fold of one member."""

    member: str
    fold: int


def member_units(plan) -> list[MemberFold]:
    """The folds of the plan's members not yet fitted (neither in a finished member nor in its fold store), member
    by member in the plan's order."""
    units = []
    for name in plan.members:
        job = member_job(plan, name)
        if not job.done:
            units += [MemberFold(name, fold) for fold in job.folds()
                      if job.fold_store.load(fold, partial_ok=plan.deadline is not None) is None]
    return units


def member_clock(plan, job: MemberJob, now: Callable[[], float] = time.time) -> Clock:
    """The member's share of the time limit, fixed when its first fold starts and kept in its fold store (a fold
    fitted later, or in another process, reads it), with the folds it has finished: members share what is left of
    the run as the run goes (tasks/budget.py). `now`: the wall clock."""
    if plan.deadline is None:
        return Clock(None, now=now)
    path, store = job.fold_store.directory / "budget.json", job.fold_store
    if path.is_file():
        budget = json.loads(path.read_text())
    else:
        reserve, started = reserve_seconds(plan.config.time_limit or 0.0), now()
        planned = plan.budget is not None and plan.budget.member == str(job.name)
        budget = {"started": started,
                  "deadline": member_deadline(plan.deadline, reserve, len(plan.members) - job.position, now=started,
                                              share=plan.budget.share if planned else None)}
        atomic_write_json(path, budget)
    finished = sum(store.load(fold, partial_ok=True) is not None for fold in job.folds())
    return Clock(budget["deadline"], started=budget["started"], steps=finished, now=now)


_PREPARED: dict[str, FoldFitter] = {}  # this process's prepared member (the last one): its folds reuse it
_PREPARED_LOCK = threading.Lock()


def prepared_member(job: MemberJob) -> FoldFitter:
    """The member prepared to fit folds (images decoded, model built and traced once for all its folds)."""
    with _PREPARED_LOCK:
        if job.key not in _PREPARED:
            _PREPARED.clear()  # one member at a time: its images and model are freed for the next one's
            _PREPARED[job.key] = member_kind(job.name.kind)(job.context)
        return _PREPARED[job.key]


def fit_member_unit(plan, unit: MemberFold, now: Callable[[], float] = time.time) -> Path | None:
    """Fit one fold of a member into its fold store (unless it is there, or the member is finished); the fold's file,
    or None when the time limit left no room for it. `now`: the wall clock the deadline is judged by."""
    from tasks.devices import device_scope

    job = member_job(plan, unit.member)
    store = job.fold_store
    if job.done or store.load(unit.fold, partial_ok=plan.deadline is not None):
        return store.path(unit.fold)
    clock = member_clock(plan, job, now)
    # No fold starts that would end after the member's share (its first fold always starts, unless time is up and
    # another member is there to blend); the first member always fits one fold: a run never ends with none.
    if clock.steps == 0 and job.position > 0 and clock.deadline is not None and clock.deadline <= now():
        return None
    if clock.steps > 0 and not clock.room_for_another():
        return None
    train, kind = job.context.train, job.name.kind
    epochs = 1 if kind in EPOCHLESS else train.finetune_epochs if kind == "finetune" else train.epochs
    description = f"{job.name} fold {unit.fold + 1}/{len(job.folds())}"
    with device_scope(plan.device), progress_bar(description, total=epochs,
                                                 unit="folds" if kind in EPOCHLESS else "epochs") as advance:
        fitter = prepared_member(job)
        folds, started = job.context.folds, time.perf_counter()
        fold_clock = Clock(clock.deadline, on_tick=advance, now=now)
        valid, test, history = fitter.fit_fold(np.flatnonzero(folds != unit.fold), np.flatnonzero(folds == unit.fold),
                                               fold_clock)
        # Early stopping, or a member without epochs: the bar is done all the same; its line says what ran.
        advance(max(0, epochs - fold_clock.steps), ran_steps=kind in EPOCHLESS)
    return store.save(unit.fold, valid, test, history, partial=fold_clock.ended_early,
                      seconds=time.perf_counter() - started)


@dataclass(frozen=True)
class FittedMembers:
    """The members stage's outcome: the finished members' directories, and those the time limit skipped."""

    directories: tuple[Path, ...]
    skipped: tuple[str, ...] = ()


def gather_members(plan) -> FittedMembers:
    """Each member's stored folds as its predictions, scored and pictured, in the plan's order. A member that the
    time limit cut short keeps the folds it finished, apart (`<key>-partial`: it never stands in for the whole
    member); one with no fold is skipped."""
    directories, skipped = [], []
    for name in plan.members:
        directory = gather_member(plan, member_job(plan, name))
        if directory is None:
            skipped.append(name)
        else:
            directories.append(directory)
    return FittedMembers(tuple(directories), tuple(skipped))


def gather_member(plan, job: MemberJob) -> Path | None:
    if job.done:
        return job.directory
    context, store = job.context, job.fold_store
    oof = np.full((len(context.folds), context.num_classes), np.nan, dtype=np.float32)
    tests, histories, seconds, ended_early = [], [], 0.0, False
    for fold in job.folds():
        saved = store.load(fold, partial_ok=plan.deadline is not None)
        if saved is None:
            ended_early = True  # the time limit stopped it before this fold
            continue
        oof[context.folds == fold], partial = saved.valid, saved.partial
        tests.append(saved.test)
        histories.append(saved.history)
        seconds, ended_early = seconds + saved.seconds, ended_early or partial
    if not tests:
        return None
    result = MemberResult(oof, np.mean(tests, axis=0).astype(np.float32), histories, ended_early)
    directory = plan.paths.member(plan.competition, f"{job.key}-partial") if ended_early else job.directory
    save_member_with_pictures(plan, job, directory, result, seconds)
    if not ended_early:  # a whole member: its folds are in its predictions now
        shutil.rmtree(store.directory, ignore_errors=True)
    return directory


def save_member_with_pictures(plan, job: MemberJob, directory: Path, result: MemberResult, seconds: float) -> Path:
    """Score the member's out-of-fold rows, draw its training curves and confusion matrix, and save it."""
    context, metric = job.context, plan.spec.metric
    predicted = predicted_rows(result.oof)
    targets, oof = context.targets[predicted], result.oof[predicted]
    score = honest_score(targets, oof, context.folds[predicted], metric, context.outputs.task)
    pictures = member_pictures(plan, directory)
    if any(result.histories):
        plot_training_curves(result.histories, str(job.name), pictures / "training_curves.png")
    if shows_confusion(context.outputs):
        plot_confusion_matrix(targets, oof, plan.spec.class_names, f"{job.name} (CV {metric} {score:.4f})",
                              pictures / "confusion_matrix.png")
    return save_member(directory, str(job.name), result, score, seconds)


def honest_score(targets, probabilities, folds, metric: str, task: str) -> float:
    """The metric on out-of-fold rows, its decision (a threshold, cut points) fitted on the other folds' rows only:
    a member's CV as on rows nothing was fitted on (rows of one fold only are split in two)."""
    folds = folds if len(np.unique(folds)) > 1 else np.arange(len(folds)) % 2
    return nested_score(targets, probabilities, folds, metric, task)


def shows_confusion(outputs) -> bool:
    """A confusion matrix says something for one label per row among a few dozen classes."""
    return outputs.task != "multilabel" and outputs.columns <= 40


def fit_member(plan, name: str) -> Path | None:
    """One member of the plan, every fold in turn, then gathered: its directory (None: the time limit skipped it)."""
    for unit in member_units(plan):
        if unit.member == name:
            fit_member_unit(plan, unit)
    return gather_member(plan, member_job(plan, name))


def save_member(directory: Path, name: str, result: MemberResult, score: float, seconds: float | None = None) -> Path:
    """oof.npy and test.npy, then member.json (written last: its presence marks a complete member)."""
    atomic_write_npy(directory / "oof.npy", result.oof)
    atomic_write_npy(directory / "test.npy", result.test)
    return atomic_write_json(directory / "member.json", {
        "name": name, "cv_score": score, "rows_predicted": int(predicted_rows(result.oof).sum()),
        "folds_trained": len(result.histories), "ended_by_time_limit": result.ended_early,
        "epochs_per_fold": [len(h.get("loss", [])) for h in result.histories],
        "train_seconds": None if seconds is None else round(seconds, 1)})


def predicted_rows(oof: np.ndarray) -> np.ndarray:
    """Rows with an out-of-fold prediction (a member that fits only some folds leaves the others NaN)."""
    return np.isfinite(oof).all(axis=1)


def load_member(directory: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    return (json.loads((directory / "member.json").read_text()), np.load(directory / "oof.npy"),
            np.load(directory / "test.npy"))


def member_pictures(plan, member_dir: Path) -> Path:
    """The folder of a fitted member's pictures: training_curves.png (Keras members) and confusion_matrix.png."""
    return plan.paths.member_pictures(plan.competition, Path(member_dir).name)
