"""One frozen run configuration, with a small block per stage.

Plain dataclasses only: building a Config imports neither TensorFlow nor any stage module."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from tasks.errors import ConfigError
from tasks.paths import DataPaths

# Tried for colour-image competitions when no --backbone is given; skipped (one warning) without weights.
DEFAULT_BACKBONES = ("efficientnetb0",)


@dataclass(frozen=True)
class TrainConfig:
    """How a Keras member trains on each fold."""

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 5
    # Rows of a fold's training part that Keras members hold back for early stopping (an inner split): the fold's
    # own held-out rows never choose epochs or weights, so out-of-fold predictions stay honest (issue 21).
    stop_fraction: float = 0.1
    schedule: str = "constant"  # or "cosine": decay to 1 % over `epochs`; "onecycle": warm up, then cosine
    optimizer: str = "adam"  # or "sgd" (Nesterov momentum 0.9)
    # Training tricks (issue 21; bench.mnist_cnn measures each: bench/RESULTS.md "Issue 21: real digits at size"),
    # all off by default. Keras members:
    label_smoothing: float = 0.0  # the loss's label_smoothing (0: off)
    ema: float = 0.0  # the optimiser's moving average of the weights (`use_ema`) at this momentum (0: off)
    lr_range_test: bool = False  # each fold's rate: a tenth of where a range test's loss fell lowest (tasks/tricks.py)
    mixup: float = 0.0  # keras.layers.MixUp's alpha on each training batch (0: off)
    cutmix: float = 0.0  # keras.layers.CutMix's factor on each training batch (0: off; with mixup, one or the other)
    # The CNN only: augmentation inside the model (shifts, rotations, zooms always), test-time augmentation,
    # and pseudo-labels (a second round on test images predicted with confidence, never on out-of-fold rows).
    augmentation: float = 1.0  # scales the CNN's random shifts (10 %), rotations (14 degrees) and zooms (10 %); 0: none
    random_erasing: float = 0.0  # keras.layers.RandomErasing's factor (0: off)
    randaugment: int = 0  # keras.layers.RandAugment's operations per image (0: off)
    tta_shifts: int | None = None  # predictions also average four copies shifted by this many pixels (0: off; None:
    # the recipe's: 1 on large grey-image competitions, else off)
    pseudo_epochs: int | None = None  # epochs of the second round (0: no pseudo-labels; None: the recipe's: 2 on
    # large grey-image competitions, else none)
    pseudo_threshold: float = 0.995  # test images whose top probability reaches this join it
    pseudo_weight: float = 0.5  # their sample weight (the training rows' is 1)
    image_size: int | None = None  # None: the competition's native size (pixel members)
    logistic_c: float = 0.1  # inverse L2 strength of the logistic head on standardised features
    mlp_units: int = 512
    cnn_filters: int | None = None  # the CNN's first block; the second has twice as many (None: the recipe's, 24 on
    # large grey-image competitions, else 32)
    cnn_size: int | None = None  # the CNN's working size: larger images are resized down (None: native, <= 64)
    cnn_architecture: str | None = None  # tasks/cnn.py: "small" (two blocks) or "deep" (three); None: the recipe's
    # ("deep" for large grey-image competitions, else "small")
    cnn_folds: int | None = None  # the CNN fits only the first N folds (None: every fold); cf. finetune_folds
    svm_c: float = 5.0  # the SVM's inverse regularisation (tasks/svm.py)
    # Rows an SVM fold trains on at most: its fit grows with their square or faster (grey photos here: 1,000 rows
    # 1.6 s, 2,000 8 s, 4,000 37 s), while a CNN's cost only grows linearly.
    svm_max_rows: int = 3_000
    # Pixel members see at most this many training images per fold (epochs x images): on a large competition
    # they train fewer epochs, so that their cost stops growing with the data (None: `epochs` always). 120,000
    # leaves the built-in digits' 40 epochs alone and gives an 8,000-image competition 19 (bench/RESULTS.md).
    images_per_fold: int | None = 120_000
    # The finetune member (tasks/finetune.py): size it trains at, folds it fine-tunes (the rest get no
    # out-of-fold predictions), epochs of fine-tuning (after a logistic head is fitted on the cached
    # features at that size), and the top
    # fraction of the backbone's layers it unfreezes (BatchNorm never).
    finetune_size: int = 128
    finetune_folds: int = 1
    finetune_epochs: int = 5
    finetune_learning_rate: float = 3e-4
    finetune_batch_size: int = 32
    finetune_fraction: float = 1.0
    # The warm-up head: "adam" (a Dense layer on the features, dropout 0.2, trained `FINETUNE_WARM_EPOCHS` by Adam, as
    # bench/finetune_probe.py) or "logistic" (a logistic regression on standardised features, solved to convergence
    # at inverse L2 strength `finetune_head_c`).
    finetune_head: str = "adam"
    finetune_head_c: float = 1.0

    def __post_init__(self) -> None:
        choices = {"schedule": ("constant", "cosine", "onecycle"), "optimizer": ("adam", "sgd"),
                   "cnn_architecture": (None, "small", "deep"),
                   "finetune_head": ("adam", "logistic")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"train.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("label_smoothing", "ema", "random_erasing", "pseudo_threshold", "pseudo_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"train.{name} must be between 0 and 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class FeatureConfig:
    """Which feature sets to extract and how."""

    views: tuple[str, ...] = ()  # empty: the recipe's (identity only for digits, identity + flip for photos)
    image_size: int | None = None  # None: each backbone's native size
    batch_size: int = 64
    shard_size: int = 2048
    weights: str = "imagenet"  # "none": random weights, for tests and benchmarks only


@dataclass(frozen=True)
class DeviceConfig:
    """What runs on a GPU (tasks/devices.py): each 'auto' (on where a GPU is found), 'on' or 'off'."""

    mixed_precision: str = "auto"  # mixed_float16 compute (logits and losses stay float32)
    jit_compile: str = "auto"  # XLA for extraction and training steps
    multi_gpu: str = "auto"  # MirroredStrategy over every visible GPU when there are several

    def __post_init__(self) -> None:
        for name in ("mixed_precision", "jit_compile", "multi_gpu"):
            if getattr(self, name) not in ("auto", "on", "off"):
                raise ConfigError(f"device.{name} must be 'auto', 'on' or 'off', got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Config:
    """What the user asked a `compete` run for (the plan stage resolves the rest: tasks/plan.py). Where its tasks
    run is not here: that is the orchestrator's business (flows/, RunOptions.task_runner)."""

    competition: str = "digits"
    data_dir: str = "data"
    backend: str = "local"
    spec: str | None = None  # a Kaggle competition's spec: built-in name or .toml path (default: by slug)
    input_dir: str | None = None  # inside a Kaggle notebook: the mounted competition files
    members: tuple[str, ...] = ()  # empty: the competition's recipe
    recipe: str = "default"  # or "full": the slower, stronger recipe where one exists (tasks/recipes.py)
    backbones: tuple[str, ...] = ()  # empty: DEFAULT_BACKBONES where their weights are at hand
    weights_dirs: tuple[str, ...] = ()  # searched first for backbone weights files
    folds: int = 5
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    blend: str = "caruana"
    submit: bool = True
    message: str = "headstart"
    time_limit: float | None = None  # minutes for the whole run (tasks/budget.py); None: no limit

    def __post_init__(self) -> None:
        if self.backend not in ("local", "kaggle"):
            raise ConfigError(f"backend must be 'local' or 'kaggle', got {self.backend!r}")
        if self.blend not in ("mean", "weights", "caruana"):
            raise ConfigError(f"blend must be 'mean', 'weights' or 'caruana', got {self.blend!r}")
        if self.recipe not in ("default", "full"):
            raise ConfigError(f"recipe must be 'default' or 'full', got {self.recipe!r}")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError(f"time_limit must be a positive number of minutes, got {self.time_limit}")

    @property
    def paths(self) -> DataPaths:
        """The data layers of this run's backend (a local competition and a Kaggle one of the same name share
        nothing)."""
        return DataPaths(Path(self.data_dir), self.backend)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def config_from_dict(values: dict, source: str = "config") -> Config:
    """A Config from its plain values (`Config.to_dict()`, as run.json records it): blocks become their dataclasses,
    lists become tuples; an unknown key is an error naming it."""
    blocks = {"train": TrainConfig, "features": FeatureConfig, "device": DeviceConfig}
    known = {field.name for field in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown config keys {unknown}; known keys are {sorted(known)}")
    fields = {}
    for name, value in values.items():
        if name in blocks:
            block_fields = {field.name for field in dataclasses.fields(blocks[name])}
            stray = sorted(set(value) - block_fields)
            if stray:
                raise ConfigError(f"{source}: unknown {name} keys {stray}; known keys are {sorted(block_fields)}")
            value = blocks[name](**{key: tuple(item) if isinstance(item, list) else item for key, item in value.items()})
        fields[name] = tuple(value) if isinstance(value, list) else value
    return Config(**fields)
