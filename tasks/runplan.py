"""What a run resolved, as plain data: the RunPlan every stage after `plan` reads, and its DevicePlan.

The plan stage that makes them is tasks/plan.py; nothing here imports TensorFlow or a stage module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from tasks.budget_plan import BudgetPlan
from tasks.competitions import CompetitionSpec
from tasks.config import Config, FeatureConfig, TrainConfig


@dataclass(frozen=True)
class DevicePlan:
    """The resolved device settings: how many GPUs, and what runs on them (tasks/devices.py resolves it)."""

    gpus: int = 0
    mixed_precision: bool = False
    jit_compile: bool = False
    strategy: str = "default"  # "default" (one CPU or GPU, TensorFlow places it), "mirrored" (several GPUs)
    training_jit: bool | str = "auto"  # XLA for training steps: Keras' "auto", or what the config forces

    @property
    def policy(self) -> str:
        return "mixed_float16" if self.mixed_precision else "float32"

    @property
    def input_device(self) -> str | None:
        """Where extraction's input batches are prefetched to: the one GPU (several: the strategy splits each batch
        across them itself), None on a CPU."""
        return "/GPU:0" if self.gpus > 0 and self.strategy == "default" else None


@dataclass(frozen=True)
class RunPlan:
    """What a run does, resolved: read by every stage after `plan`."""

    config: Config  # what was asked, untouched
    run_id: str
    spec: CompetitionSpec
    raw_dir: Path
    index_dir: Path
    members: tuple[str, ...]
    weights: Mapping[str, Path | None]  # each backbone the members need: its weights file (None: random)
    views: tuple[str, ...] = ("identity",)
    features: FeatureConfig = field(default_factory=FeatureConfig)  # the asked block, its image size resolved
    train: TrainConfig = field(default_factory=TrainConfig)  # the asked block, the CNN's size resolved
    device: DevicePlan = field(default_factory=DevicePlan)
    deadline: float | None = None  # wall-clock seconds since the epoch by which the run ends (--time-limit)
    budget: BudgetPlan | None = None  # what the budget bought the large grey recipe's CNN (tasks/budget_plan.py)

    @property
    def competition(self) -> str:
        return self.config.competition

    @property
    def paths(self):
        return self.config.paths

    def summary(self) -> dict:
        """The plan as plain values, for run.json."""
        return {"members": list(self.members), "weights": {name: path and str(path) for name, path in self.weights.items()},
                "views": list(self.views), "image_size": self.features.image_size, "cnn_size": self.train.cnn_size,
                "device": dataclasses.asdict(self.device), "deadline": self.deadline, "spec": self.spec.to_dict(),
                **({"budget": self.budget.summary(), "train": dataclasses.asdict(self.train)} if self.budget else {})}
