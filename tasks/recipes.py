"""Which members a run can train: the registry of member kinds, member names, and the default recipes.

A member is named `KIND[@BACKBONE][#SEED]`: `cnn#1`, `logistic@efficientnetb0`, `mlp@file:my.keras`. Fitting and
storing members is tasks/fitting.py; deciding what a run trains is tasks/plan.py.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from tasks.errors import ConfigError

# Each kind's module and function `(MemberContext) -> FoldFitter`, imported when a member of that kind is fitted:
# naming and checking members (the command line, before anything runs) imports no TensorFlow.
PIXEL_MEMBERS = {"softmax": "tasks.members:fit_softmax", "cnn": "tasks.cnn:fit_cnn", "svm": "tasks.svm:fit_svm"}
HEAD_MEMBERS = {"logistic": "tasks.heads:fit_logistic", "mlp": "tasks.heads:fit_mlp",
                "finetune": "tasks.finetune:fit_finetune"}
KINDS = {**PIXEL_MEMBERS, **HEAD_MEMBERS}
EPOCHLESS = ("logistic", "svm")  # scikit-learn members: a fold is one fit, no epochs

# Chosen by measurement (bench/RESULTS.md, "Default recipes" and "Issue 10"): on grey digit images from-scratch
# CNNs beat heads on ImageNet features, and an SVM on the pixels blends well with one CNN at half resolution
# (the default: minutes) as three at full resolution do (`--recipe full`: several times longer); on colour photos
# (real CIFAR-10) fine-tuning the backbone beats every head on frozen features, and the heads add to its blend.
DIGITS_RECIPE = ("svm", "cnn")
DIGITS_FULL_RECIPE = ("cnn#0", "cnn#1", "cnn#2")
# From LARGE_GREY_IMAGES training images (tasks/budget_plan.py) the grey recipe is the deep CNN alone, at full size,
# on a one-cycle schedule whose epochs and folds the plan stage buys with the run's budget (issue 21: on real digits
# at Kaggle's size it beats the SVM + half-size CNN by far, and the SVM no longer adds to its blend). These settings
# replace TrainConfig's defaults only: a value the config sets otherwise stands.
DIGITS_LARGE_RECIPE = ("cnn",)
# Its width, test-time shifts and pseudo-label round: at 24 filters the deep CNN trains 1.5 times as many images a
# second here as at 32 (bench.cnn_throughput), which buys more epochs; shifts of 1 px and a 2-epoch pseudo-label
# round added 0.07 points of test accuracy on mnist-dev (bench/RESULTS.md, "Issue 21: real digits at size").
LARGE_GREY_TRAINING = {"cnn_architecture": "deep", "schedule": "onecycle", "batch_size": 128, "learning_rate": 2e-3,
                       "images_per_fold": None, "cnn_filters": 24, "tta_shifts": 1, "pseudo_epochs": 2}
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
        if seed and not (seed.isascii() and seed.isdigit()):
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


def default_members(layout: str, channels: int, backbones: tuple[str, ...], recipe: str = "default",
                    large: bool = False) -> tuple[str, ...]:
    """The recipe for a competition when no --member is given (`large`: a large grey-image competition's)."""
    if is_grey_pixels(layout, channels):
        grey = DIGITS_FULL_RECIPE if recipe == "full" else DIGITS_LARGE_RECIPE if large else DIGITS_RECIPE
        return grey + expand_members(("logistic",), backbones)
    if backbones:
        return expand_members(COLOUR_RECIPE, backbones)
    return FALLBACK


def member_kind(kind: str) -> Callable:
    """The function that prepares a member of this kind to fit folds."""
    module, _, function = KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), function)
