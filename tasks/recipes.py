"""Which members a run trains: the registry of member kinds, member names, and the default recipes.

A member is named `KIND[@BACKBONE][#SEED]`: `cnn#1`, `logistic@efficientnetb0`, `mlp@file:my.keras`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tasks.cnn import fit_cnn
from tasks.config import DEFAULT_BACKBONES, TrainConfig
from tasks.errors import ConfigError, WeightsUnavailableError
from tasks.files import atomic_write_json, atomic_write_npy, sha256_text
from tasks.finetune import fit_finetune
from tasks.folds import FoldStore
from tasks.heads import fit_logistic, fit_mlp
from tasks.index import read_index
from tasks.members import MemberContext, MemberResult, fit_softmax
from tasks.metrics import score_probabilities
from tasks.plots import plot_confusion_matrix, plot_training_curves
from tasks.svm import fit_svm

logger = logging.getLogger("headstart")

PIXEL_MEMBERS: dict[str, Callable[[MemberContext], MemberResult]] = {
    "softmax": fit_softmax, "cnn": fit_cnn, "svm": fit_svm}
HEAD_MEMBERS: dict[str, Callable[[MemberContext], MemberResult]] = {
    "logistic": fit_logistic, "mlp": fit_mlp, "finetune": fit_finetune}
KINDS = {**PIXEL_MEMBERS, **HEAD_MEMBERS}

# Chosen by measurement (bench/RESULTS.md, "Default recipes" and "Issue 10"): on grey digit images from-scratch
# CNNs beat heads on ImageNet features, and an SVM on the pixels blends well with one CNN at half resolution
# (the default: minutes) as three at full resolution do (`--recipe full`: several times longer); on colour photos
# (real CIFAR-10) fine-tuning the backbone beats every head on frozen features, and the heads add to its blend.
DIGITS_RECIPE = ("svm", "cnn")
DIGITS_FULL_RECIPE = ("cnn#0", "cnn#1", "cnn#2")
COLOUR_RECIPE = ("finetune", "logistic", "mlp")
FALLBACK = ("cnn#0",)
MIN_HALVED_CNN_SIZE = 14  # the default digits recipe's CNN works at half the native size, down to this


@dataclass(frozen=True)
class MemberName:
    kind: str
    backbone: str | None = None
    seed: int = 0

    @classmethod
    def parse(cls, name: str) -> MemberName:
        body, _, seed = name.partition("#")
        kind, _, backbone = body.partition("@")
        if kind not in KINDS:
            raise ConfigError(f"unknown member kind {kind!r} in {name!r}; known kinds are {sorted(KINDS)}")
        if (kind in HEAD_MEMBERS) != bool(backbone):
            raise ConfigError(f"member {name!r}: heads ({', '.join(HEAD_MEMBERS)}) need @BACKBONE; "
                              f"pixel members ({', '.join(PIXEL_MEMBERS)}) take none")
        if seed and not seed.isdigit():
            raise ConfigError(f"member {name!r}: the seed after '#' must be a whole number")
        return cls(kind, backbone or None, int(seed or 0))

    @property
    def directory_name(self) -> str:
        return "".join(c if c.isalnum() or c in "-_.#@" else "_" for c in str(self))[:80]

    def __str__(self) -> str:
        return self.kind + (f"@{self.backbone}" if self.backbone else "") + (f"#{self.seed}" if self.seed else "")


def expand_members(kinds: tuple[str, ...], backbones: tuple[str, ...]) -> tuple[str, ...]:
    """Head kinds given without a backbone apply to every backbone; the rest stay as given."""
    expanded = []
    for kind in kinds:
        if kind in HEAD_MEMBERS:
            expanded.extend(f"{kind}@{backbone}" for backbone in backbones)
        else:
            expanded.append(kind)
    for name in expanded:
        MemberName.parse(name)
    return tuple(dict.fromkeys(expanded))


def is_grey_pixels(layout: str, channels: int) -> bool:
    return layout == "pixels_csv" and channels == 1


def default_members(layout: str, channels: int, backbones: tuple[str, ...], recipe: str = "default") -> tuple[str, ...]:
    """The recipe for a competition when no --member is given."""
    if is_grey_pixels(layout, channels):
        return (DIGITS_FULL_RECIPE if recipe == "full" else DIGITS_RECIPE) + expand_members(("logistic",), backbones)
    if backbones:
        return expand_members(COLOUR_RECIPE, backbones)
    return FALLBACK


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


MEMBER_VERSION = 2  # bump when training changes what a member's predictions are (2: explicit seeds, issue 11)


def member_key(member: MemberName, train: TrainConfig, seed: int, index_hash: str,
               feature_dirs: tuple[Path, ...], policy: str = "float32") -> str:
    """The cache key of a member's predictions: its name, training settings, the index (labels and
    folds included), its feature sets (whose directory names are their own content keys) and, when it is not
    float32, its compute policy."""
    parts = {"member": str(member), "train": asdict(train), "seed": seed, "index": index_hash,
             "features": [Path(directory).name for directory in feature_dirs], "version": MEMBER_VERSION,
             **({"policy": policy} if policy != "float32" else {})}
    return sha256_text(json.dumps(parts, sort_keys=True))[:16]


def member_pictures(config, member_dir: Path) -> Path:
    """The folder of a fitted member's pictures: training_curves.png (Keras members) and confusion_matrix.png."""
    return config.paths.member_pictures(config.competition, Path(member_dir).name)


@dataclass(frozen=True)
class MemberJob:
    """One member of a run, resolved: its name, cache key and directory, and the context it trains in."""

    name: MemberName
    key: str
    directory: Path
    context: MemberContext

    @property
    def fold_store(self) -> FoldStore:
        return FoldStore(self.directory.with_name(self.key + ".folds"))


def member_job(config, index_dir: Path, name: str, feature_dirs: tuple[Path, ...], weights: Path | None = None,
               deadline: float | None = None) -> MemberJob:
    from tasks.devices import current_plan, training_jit

    member = MemberName.parse(name)
    index, plan = read_index(index_dir), current_plan(config.device)
    seed = config.seed + member.seed
    digest = member_key(member, config.train, seed, index.metadata["content_hash"], feature_dirs, plan.policy)
    key = f"{member.directory_name}-{digest}"
    context = MemberContext(index, config.train, seed=seed, feature_dirs=tuple(feature_dirs),
                            backbone=member.backbone, weights=weights and Path(weights),
                            features_root=config.paths.features(config.competition), deadline=deadline,
                            features=config.features, jit_compile=training_jit(config.device, plan))
    return MemberJob(member, key, config.paths.member(config.competition, key), context)


def member_folds(config, index_dir: Path, name: str) -> tuple[int, ...]:
    """The folds a member fits: every fold, or the first `finetune_folds` for a finetune member."""
    return folds_fitted(read_index(index_dir).split("train")["fold"].to_numpy(), config.train, name)


def folds_fitted(folds: np.ndarray, train: TrainConfig, name: str) -> tuple[int, ...]:
    numbers = tuple(int(fold) for fold in np.unique(folds))
    return numbers[:train.finetune_folds] if MemberName.parse(name).kind == "finetune" else numbers


def fit_member_fold(config, index_dir: Path, name: str, feature_dirs: tuple[Path, ...], weights: Path | None,
                    fold: int, deadline: float | None = None) -> Path | None:
    """Fit one fold of a member into its fold store (unless the member or the fold is there already): the unit
    that mapped members x folds hand to any worker. Returns the fold's file (None: the deadline had passed)."""
    from tasks.devices import current_plan, device_scope

    job = member_job(config, index_dir, name, feature_dirs, weights, deadline)
    store = dataclasses.replace(job.fold_store, only=(int(fold),))
    if (job.directory / "member.json").is_file() or store.load(fold, partial_ok=deadline is not None):
        return store.path(fold)
    if deadline is not None and deadline <= time.time():
        return None
    with device_scope(current_plan(config.device)):
        KINDS[job.name.kind](dataclasses.replace(job.context, fold_store=store))
    return next((path for path in (store.path(fold), store.path(fold, partial=True)) if path.is_file()), None)


def fit_member(config, index_dir: Path, name: str, feature_dirs: tuple[Path, ...], weights: Path | None = None,
               deadline: float | None = None, may_skip: bool = False, fit_missing: bool = True) -> Path | None:
    """Train one member over the folds, unless the same member on the same inputs is cached; return the
    directory holding its predictions (data/05_predictions/<comp>/members/<member>-<key>/). Folds already in
    its fold store (fitted by mapped tasks, or before a kill) are read, not fitted again. A member that the
    deadline cut short is kept apart (`<key>-partial`), so that it never stands in for the whole member; one
    not cached whose deadline has passed is skipped (None) when `may_skip` (other members finished). Without
    `fit_missing`, only the folds in the store are used (mapped folds the time limit stopped: the member ended early)."""
    from tasks.devices import current_plan, device_scope

    job = member_job(config, index_dir, name, feature_dirs, weights, deadline)
    directory, context, member = job.directory, job.context, job.name
    if (directory / "member.json").is_file():
        return directory
    if may_skip and deadline is not None and deadline <= time.time() and not any(job.fold_store.directory.glob("*")):
        return None
    store = job.fold_store if fit_missing else dataclasses.replace(job.fold_store, only=())
    started = time.perf_counter()
    with device_scope(current_plan(config.device)):
        result = KINDS[member.kind](dataclasses.replace(context, fold_store=store))
    seconds = time.perf_counter() - started
    if len(result.histories) < len(folds_fitted(context.folds, config.train, name)):
        result = dataclasses.replace(result, ended_early=True)  # folds missing: time ran out before them
    if result.ended_early:
        directory = config.paths.member(config.competition, f"{job.key}-partial")
    spec = context.index.metadata["spec"]
    predicted = predicted_rows(result.oof)
    score = score_probabilities(context.labels[predicted], result.oof[predicted], spec["metric"])
    pictures = member_pictures(config, directory)
    if any(result.histories):
        plot_training_curves(result.histories, str(member), pictures / "training_curves.png")
    plot_confusion_matrix(context.labels[predicted], result.oof[predicted], spec["class_names"],
                          f"{member} (CV {spec['metric']} {score:.4f})", pictures / "confusion_matrix.png")
    save_member(directory, str(member), result, score, seconds)
    if not result.ended_early:  # a whole member: its folds are in its predictions now
        shutil.rmtree(store.directory, ignore_errors=True)
    return directory


@dataclass(frozen=True)
class RunPlan:
    """The members a run trains, the weights file of each backbone they need (None: random), and the
    views their features are extracted from."""

    members: tuple[str, ...]
    weights: dict[str, str | None]
    views: tuple[str, ...] = ("identity",)
    image_size: int | None = None  # the features' input size when the config leaves it open
    cnn_size: int | None = None  # the CNN's working size when the config leaves it open


def default_views(layout: str, channels: int) -> tuple[str, ...]:
    """Mirror images are free extra data for photos; a mirrored digit is not a digit."""
    return ("identity",) if layout == "pixels_csv" and channels == 1 else ("identity", "flip")


def weights_search_dirs(extra: tuple[str, ...], keras_home: str | None, kaggle_input: Path) -> list[Path]:
    """Where weights files are looked for, in order: given folders, Keras' cache, attached Kaggle inputs."""
    cache = Path(keras_home) if keras_home else Path.home() / ".keras"
    return [*map(Path, extra), cache / "models", kaggle_input]


def check_choices(config) -> None:
    """Refuse, before any work, a member, backbone or view that does not exist (by name only: weights are looked
    for when the run plans its members)."""
    from tasks.backbones import backbone_spec
    from tasks.pipelines import VIEWS

    # A bare head kind (`--member logistic`) applies to every backbone (expand_members): no backbone to check.
    named = [MemberName.parse(name) for name in config.members if name not in HEAD_MEMBERS]
    for backbone in (*config.backbones, *(member.backbone for member in named if member.backbone)):
        backbone_spec(backbone)
    unknown = [view for view in config.features.views if view not in VIEWS]
    if unknown:
        raise ConfigError(f"unknown view {unknown[0]!r} (--view); known views are {list(VIEWS)}")


def plan_members(config, layout: str, channels: int, search_dirs: list[Path], warn=print,
                 native_size: int | None = None) -> RunPlan:
    """Resolve members and backbone weights; default backbones without weights are skipped with a warning,
    a backbone asked for by name fails with an error naming the file to place and where."""
    from tasks.backbones import backbone_spec, resolve_weights

    check_choices(config)
    asked = config.backbones or tuple(b for m in config.members if (b := MemberName.parse(m).backbone))
    candidates = asked or (DEFAULT_BACKBONES if layout != "pixels_csv" else ())
    weights: dict[str, str | None] = {}
    for name in candidates:
        spec = backbone_spec(name)
        if config.features.weights == "none" and spec.builder != "file":
            weights[name] = None
            continue
        try:
            weights[name] = str(resolve_weights(spec, search_dirs))
        except WeightsUnavailableError as error:
            if asked:
                raise
            warn(f"skipping default backbone: {error}")
    backbones = tuple(weights)
    members = (expand_members(config.members, backbones) if config.members
               else default_members(layout, channels, backbones, config.recipe))
    if not members:
        raise ConfigError(f"no members to train: {list(config.members)} need a backbone (--backbone NAME)")
    # A finetune member's warm-up needs features at its size: the heads share them (one extraction, not two).
    tuned = any(MemberName.parse(m).kind == "finetune" for m in members)
    return RunPlan(members, {b: weights[b] for b in backbones
                             if any(MemberName.parse(m).backbone == b for m in members)},
                   config.features.views or default_views(layout, channels),
                   config.train.finetune_size if tuned and config.features.image_size is None else None,
                   halved_cnn_size(config, layout, channels, native_size))


def halved_cnn_size(config, layout: str, channels: int, native_size: int | None) -> int | None:
    """The default digits recipe trains its CNN at half the native size (not below 14 px): on the built-in
    digits that is a third of the time at the same CV (bench/RESULTS.md); `--recipe full` keeps the native size."""
    if (config.members or config.recipe != "default" or config.train.cnn_size or config.train.image_size
            or not is_grey_pixels(layout, channels) or not native_size):
        return None
    return min(native_size, max(MIN_HALVED_CNN_SIZE, native_size // 2))


def plan_run(config, index_dir: Path) -> RunPlan:
    """Decide what this run trains, from the config, the competition's images and the weights at hand."""
    import os

    metadata = json.loads((Path(index_dir) / "index.json").read_text())
    search_dirs = weights_search_dirs(config.weights_dirs, os.environ.get("KERAS_HOME"),
                                      Path(os.environ.get("KAGGLE_INPUT_DIR", "/kaggle/input")))
    return plan_members(config, metadata["layout"], metadata["channels"], search_dirs, warn=logger.warning,
                        native_size=max(metadata["image_height"], metadata["image_width"]))
