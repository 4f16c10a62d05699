"""The plan stage: what a run trains, resolved once from what the user asked, the competition and the machine.

`plan_run` turns a Config (what was asked) and the indexed competition into a RunPlan (what was resolved: the
members, each backbone's weights file, the views, the sizes the features and the CNN work at, the device plan and
the deadline). Every later stage reads the plan; nothing writes back into the Config.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from tasks.budget import reserve_seconds, run_deadline
from tasks.budget_plan import LARGE_GREY_IMAGES, BudgetPlan
from tasks.competitions import CompetitionSpec
from tasks.config import DEFAULT_BACKBONES, Config, TrainConfig
from tasks.errors import ConfigError, WeightsUnavailableError
from tasks.recipes import (
    HEAD_MEMBERS,
    LARGE_GREY_TRAINING,
    MIN_HALVED_CNN_SIZE,
    MemberName,
    default_members,
    expand_members,
    is_grey_pixels,
)
from tasks.runplan import RunPlan

logger = logging.getLogger("headstart")


def default_views(layout: str, channels: int) -> tuple[str, ...]:
    """Mirror images are free extra data for photos; a mirrored digit is not a digit."""
    return ("identity",) if layout == "pixels_csv" and channels == 1 else ("identity", "flip")


def weights_search_dirs(extra: tuple[str, ...], keras_home: str | None, kaggle_input: Path) -> list[Path]:
    """Where weights files are looked for, in order: given folders, Keras' cache, attached Kaggle inputs."""
    cache = Path(keras_home) if keras_home else Path.home() / ".keras"
    return [*map(Path, extra), cache / "models", kaggle_input]


def check_choices(config: Config) -> None:
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


@dataclass(frozen=True)
class MemberChoice:
    """The members a run trains and the weights of the backbones they need: the part of the plan that depends
    only on the config, the competition's kind of images and the weights at hand."""

    members: tuple[str, ...]
    weights: Mapping[str, Path | None]
    views: tuple[str, ...]
    image_size: int | None = None  # the features' input size when the config leaves it open
    cnn_size: int | None = None  # the CNN's working size when the config leaves it open
    large_grey: bool = False  # the large grey-image recipe: its CNN's epochs and folds are bought with the budget


def plan_members(config: Config, layout: str, channels: int, search_dirs: list[Path], warn=print,
                 native_size: int | None = None, num_train: int = 0) -> MemberChoice:
    """Resolve members and backbone weights; default backbones without weights are skipped with a warning,
    a backbone asked for by name fails with an error naming the file to place and where. Only the backbones the
    members use are looked for (a softmax-only run builds and looks up none)."""
    from tasks.backbones import backbone_spec, resolve_weights

    check_choices(config)
    asked = config.backbones or tuple(b for m in config.members if (b := MemberName.parse(m).backbone))
    explicit = bool(config.members) and all(name not in HEAD_MEMBERS and MemberName.parse(name).kind not in
                                            HEAD_MEMBERS for name in config.members)
    candidates = () if explicit else asked or (DEFAULT_BACKBONES if layout != "pixels_csv" else ())
    weights: dict[str, Path | None] = {}
    for name in candidates:
        spec = backbone_spec(name)
        if config.features.weights == "none" and not spec.own_weights:
            weights[name] = None
            continue
        try:
            weights[name] = resolve_weights(spec, search_dirs)
        except WeightsUnavailableError as error:
            if asked:
                raise
            warn(f"skipping default backbone: {error}")
    backbones = tuple(weights)
    large = is_large_grey(config, layout, channels, num_train)
    members = (expand_members(config.members, backbones) if config.members
               else default_members(layout, channels, backbones, config.recipe, large))
    if not members:
        raise ConfigError(f"no members to train: {list(config.members)} need a backbone (--backbone NAME)")
    # A finetune member's warm-up needs features at its size: the heads share them (one extraction, not two).
    tuned = any(MemberName.parse(m).kind == "finetune" for m in members)
    return MemberChoice(members, {b: weights[b] for b in backbones
                                  if any(MemberName.parse(m).backbone == b for m in members)},
                        config.features.views or default_views(layout, channels),
                        config.train.finetune_size if tuned and config.features.image_size is None else None,
                        None if large else halved_cnn_size(config, layout, channels, native_size), large)


def is_large_grey(config: Config, layout: str, channels: int, num_train: int) -> bool:
    """Whether the default recipe is the large grey-image one (tasks/recipes.py, DIGITS_LARGE_RECIPE)."""
    return (not config.members and config.recipe == "default" and is_grey_pixels(layout, channels)
            and num_train >= LARGE_GREY_IMAGES)


def halved_cnn_size(config: Config, layout: str, channels: int, native_size: int | None) -> int | None:
    """The default digits recipe trains its CNN at half the native size (not below 14 px): on the built-in
    digits that is a third of the time at the same CV (bench/RESULTS.md); `--recipe full` keeps the native size."""
    if (config.members or config.recipe != "default" or config.train.cnn_size or config.train.image_size
            or not is_grey_pixels(layout, channels) or not native_size):
        return None
    return min(native_size, max(MIN_HALVED_CNN_SIZE, native_size // 2))


def plan_run(config: Config, spec: CompetitionSpec, raw_dir: Path, index_dir: Path, run_id: str,
             started: float | None = None) -> RunPlan:
    """Decide what this run trains, from the config, the competition's images, the weights at hand and the
    machine's devices; the deadline is `config.time_limit` after `started` (the command's start)."""
    from tasks.devices import resolve_device_plan

    metadata = json.loads((Path(index_dir) / "index.json").read_text())
    search_dirs = weights_search_dirs(config.weights_dirs, os.environ.get("KERAS_HOME"),
                                      Path(os.environ.get("KAGGLE_INPUT_DIR", "/kaggle/input")))
    choice = plan_members(config, metadata["layout"], metadata["channels"], search_dirs, warn=logger.warning,
                          native_size=max(metadata["image_height"], metadata["image_width"]),
                          num_train=metadata["num_train"])
    features, train = config.features, config.train
    if choice.image_size is not None:
        features = dataclasses.replace(features, image_size=choice.image_size)
    if choice.cnn_size is not None:
        train = dataclasses.replace(train, cnn_size=choice.cnn_size)
    device, deadline, budget = resolve_device_plan(config.device), run_deadline(config.time_limit, started), None
    tuned = next((name for name in choice.members if MemberName.parse(name).kind == "finetune"), None)
    if choice.large_grey:
        train, budget = budgeted_cnn(config, train, metadata, device, deadline)
    elif tuned and train.finetune_epochs == TrainConfig().finetune_epochs:
        train, budget = budgeted_finetune(config, train, metadata, device, deadline, tuned, choice.weights,
                                          len(choice.members))
    return RunPlan(config, run_id, spec, Path(raw_dir), Path(index_dir), choice.members, choice.weights,
                   choice.views, features, train, device, deadline, budget)


def large_grey_training(train: TrainConfig) -> TrainConfig:
    """The large grey recipe's training settings, where the config leaves TrainConfig's defaults."""
    defaults = TrainConfig()
    return dataclasses.replace(train, **{name: value for name, value in LARGE_GREY_TRAINING.items()
                                         if getattr(train, name) == getattr(defaults, name)})


def budgeted_cnn(config: Config, train: TrainConfig, metadata: dict, device, deadline: float | None
                 ) -> tuple[TrainConfig, BudgetPlan]:
    """The large grey recipe's CNN with the epochs and folds its budget buys (tasks/budget_plan.py): what is left of
    the time limit less the run's reserve, else the default budget; its cost measured here once per data folder.
    Epochs or CNN folds the config sets itself stand (the other is planned)."""
    from tasks.budget_plan import FoldShape, cached_cost
    from tasks.cnn import MAX_CNN_SIZE, measure_cost
    from tasks.members import WATCHED_ROWS, keeps_best_weights

    train = large_grey_training(train)
    num_train, folds = metadata["num_train"], config.folds
    height, width, size = metadata["image_height"], metadata["image_width"], train.image_size or train.cnn_size
    size = size or (MAX_CNN_SIZE if max(height, width) > MAX_CNN_SIZE else None)  # as the CNN loads its images
    shape = (size, size, metadata["channels"]) if size else (height, width, metadata["channels"])
    outputs = outputs_of_metadata(metadata)
    cost = cached_cost(config.paths.costs(config.competition) / f"cnn-{cost_key(train, shape, device)}.json",
                       lambda: measure_cost(shape, outputs, train, device.training_jit))
    fit = round((1 - 1 / folds) * num_train)
    if keeps_best_weights(train):  # patience = epochs below: only its weights could be chosen by the stopping rows
        fit, watched = round(fit * (1 - train.stop_fraction)), fit - round(fit * (1 - train.stop_fraction))
    else:  # it chooses nothing by them: it fits every training row and watches held-out rows (stopping_split)
        watched = min(WATCHED_ROWS, num_train // folds)
    fold = FoldShape(fit, watched, num_train // folds + metadata["num_test"],
                     5 if train.tta_shifts else 1, train.pseudo_epochs or 0, fit + metadata["num_test"])
    asked = train.epochs if train.epochs != TrainConfig().epochs else None  # or a retrain's bigger budget
    budget = spend_budget(config, deadline, metadata, "cnn", cost, fold, asked, train.cnn_folds)
    train = dataclasses.replace(train, epochs=budget.epochs, cnn_folds=budget.folds, patience=budget.epochs)
    logger.info("budget %s s (%s): the CNN trains %d epochs on %d fold(s)", budget.budget_seconds, budget.budget_source,
                budget.epochs, budget.folds)
    return train, budget


def budgeted_finetune(config: Config, train: TrainConfig, metadata: dict, device, deadline: float | None,
                      member: str, weights: Mapping[str, Path | None], members: int) -> tuple[TrainConfig, BudgetPlan]:
    """The finetune member's epochs (and folds) bought with the budget (tasks/budget_plan.py): its share of what is
    left of the time limit less the run's reserve (the rest: features and the other members), else its default
    budget, FINETUNE_SECONDS_PER_IMAGE per training image; its cost at the fine-tuning size measured here once per
    data folder. Folds the config sets stand."""
    from tasks.budget_plan import FINETUNE_MAX_EPOCHS, FINETUNE_SHARE, FoldShape, cached_cost
    from tasks.finetune import measure_cost

    backbone = MemberName.parse(member).backbone
    num_train, folds, size = metadata["num_train"], config.folds, train.finetune_size
    shape = (metadata["image_height"], metadata["image_width"], 3)
    if max(shape[:2]) > size or not metadata.get("same_size", True):
        shape = (size, size, 3)  # as the member loads its images
    outputs = outputs_of_metadata(metadata)
    key = cost_key(train, shape, device, {"backbone": backbone, "size": size, "batch": train.finetune_batch_size,
                                          "fraction": train.finetune_fraction})
    cost = cached_cost(config.paths.costs(config.competition) / f"finetune-{key}.json",
                       lambda: measure_cost(backbone, weights.get(backbone), size, shape, outputs, train,
                                            device.training_jit))
    fit = round((1 - 1 / folds) * num_train)
    views = 2 if metadata["channels"] == 3 else 1
    fold = FoldShape(fit, num_train // folds, num_train // folds + metadata["num_test"], views)
    # Under --time-limit the features are extracted before any member trains (a forward pass an image and view, as
    # a prediction costs): what is left after them is shared, the member's share its own (member_clock).
    share = FINETUNE_SHARE if members > 1 else 1.0
    features = views * (num_train + metadata["num_test"]) * cost.predict
    budget = spend_budget(config, deadline, metadata, member, cost, fold, None,
                          train.finetune_folds if train.finetune_folds != TrainConfig().finetune_folds else None,
                          share, FINETUNE_MAX_EPOCHS, features)
    train = dataclasses.replace(train, finetune_epochs=budget.epochs, finetune_folds=budget.folds)
    logger.info("budget %s s (%s): %s trains %d epochs on %d fold(s)", budget.budget_seconds, budget.budget_source,
                member, budget.epochs, budget.folds)
    return train, budget


def spend_budget(config: Config, deadline: float | None, metadata: dict, member: str, cost, fold, epochs: int | None,
                 folds: int | None, share: float = 1.0, max_epochs: int | None = None,
                 before: float = 0.0) -> BudgetPlan:
    """What a member's budget buys (`plan_epochs`): its `share` of what is left of the time limit less the run's
    reserve and the seconds of the stages `before` it, else the default budget of its kind (per training image: its
    own, the other members' time apart).
    `epochs` or `folds` given stand (with epochs given, the budget buys folds only)."""
    from tasks.budget_plan import (
        MAX_EPOCHS_PER_FOLD,
        PLAN_MARGIN,
        default_budget_seconds,
        fold_seconds,
        folds_for_epochs,
        plan_epochs,
    )

    if deadline is not None:
        seconds = share * max(0.0, deadline - time.time() - reserve_seconds(config.time_limit) - before)
        source = "--time-limit"
    else:
        seconds, source = default_budget_seconds(metadata["num_train"], MemberName.parse(member).kind), "default"
    margin = PLAN_MARGIN if deadline is not None else 1.0  # a default budget is no deadline: planned whole
    planned_folds, planned_epochs = plan_epochs(seconds, cost, fold, folds or config.folds,
                                                max_epochs or MAX_EPOCHS_PER_FOLD, margin)
    if epochs is not None:
        planned_epochs, planned_folds = epochs, folds_for_epochs(seconds, cost, fold, epochs, config.folds, margin)
    planned_folds = folds or planned_folds
    return BudgetPlan(round(seconds, 1), source, planned_folds, planned_epochs,
                      round(cost.setup + planned_folds * fold_seconds(cost, fold, planned_epochs), 1), cost, member,
                      share)


def outputs_of_metadata(metadata: dict):
    from tasks.outputs import Outputs

    return Outputs(metadata["spec"].get("task", "multiclass"), len(metadata["spec"]["class_names"]))


def cost_key(train: TrainConfig, shape: tuple, device, model: dict | None = None) -> str:
    """What a model's cost per image depends on: the model (a CNN's settings, or `model`), its input, its batch,
    its tricks, the device, the cores."""
    from tasks.files import sha256_text

    parts = model or {name: getattr(train, name) for name in ("cnn_architecture", "cnn_filters", "batch_size",
                                                              "randaugment", "random_erasing", "augmentation")}
    parts |= {name: getattr(train, name) for name in ("optimizer", "ema", "mixup", "cutmix", "label_smoothing")}
    parts |= {"shape": list(shape), "device": dataclasses.asdict(device), "cores": os.cpu_count()}
    return sha256_text(json.dumps(parts, sort_keys=True))[:16]
