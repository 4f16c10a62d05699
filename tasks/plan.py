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
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from tasks.budget import run_deadline
from tasks.competitions import CompetitionSpec
from tasks.config import DEFAULT_BACKBONES, Config
from tasks.errors import ConfigError, WeightsUnavailableError
from tasks.recipes import (
    HEAD_MEMBERS,
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


def plan_members(config: Config, layout: str, channels: int, search_dirs: list[Path], warn=print,
                 native_size: int | None = None) -> MemberChoice:
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
    members = (expand_members(config.members, backbones) if config.members
               else default_members(layout, channels, backbones, config.recipe))
    if not members:
        raise ConfigError(f"no members to train: {list(config.members)} need a backbone (--backbone NAME)")
    # A finetune member's warm-up needs features at its size: the heads share them (one extraction, not two).
    tuned = any(MemberName.parse(m).kind == "finetune" for m in members)
    return MemberChoice(members, {b: weights[b] for b in backbones
                                  if any(MemberName.parse(m).backbone == b for m in members)},
                        config.features.views or default_views(layout, channels),
                        config.train.finetune_size if tuned and config.features.image_size is None else None,
                        halved_cnn_size(config, layout, channels, native_size))


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
                          native_size=max(metadata["image_height"], metadata["image_width"]))
    features, train = config.features, config.train
    if choice.image_size is not None:
        features = dataclasses.replace(features, image_size=choice.image_size)
    if choice.cnn_size is not None:
        train = dataclasses.replace(train, cnn_size=choice.cnn_size)
    return RunPlan(config, run_id, spec, Path(raw_dir), Path(index_dir), choice.members, choice.weights,
                   choice.views, features, train, resolve_device_plan(config.device),
                   run_deadline(config.time_limit, started))
