"""One frozen run configuration, with a small block per stage."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from tasks.members import TrainConfig
from tasks.paths import DataPaths


@dataclass(frozen=True)
class Config:
    """Everything a `compete` run depends on; written resolved into run.json."""

    competition: str = "digits"
    data_dir: str = "data"
    backend: str = "local"
    members: tuple[str, ...] = ("softmax",)
    folds: int = 5
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    submit: bool = True
    message: str = "headstart"

    def __post_init__(self) -> None:
        if self.backend not in ("local", "kaggle"):
            raise ValueError(f"backend must be 'local' or 'kaggle', got {self.backend!r}")
        if not self.members:
            raise ValueError("at least one member is needed")

    @property
    def paths(self) -> DataPaths:
        return DataPaths(Path(self.data_dir))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
