"""One helper that builds every path under the numbered data layers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataPaths:
    """The data layers under one root (./data, --data-dir or HEADSTART_DATA)."""

    root: Path

    def raw(self, competition: str) -> Path:
        return self.root / "01_raw" / competition

    def index(self, competition: str) -> Path:
        return self.root / "02_index" / competition

    def features(self, competition: str) -> Path:
        return self.root / "03_features" / competition

    def models(self, competition: str, run_id: str) -> Path:
        return self.root / "04_models" / competition / run_id

    def predictions(self, competition: str, run_id: str) -> Path:
        return self.root / "05_predictions" / competition / run_id

    def member(self, competition: str, name: str) -> Path:
        """A member's cached predictions, named by a hash of everything they depend on."""
        return self.root / "05_predictions" / competition / "members" / name

    def member_pictures(self, competition: str, name: str) -> Path:
        return self.root / "04_models" / competition / "members" / name

    def submissions(self, competition: str) -> Path:
        return self.root / "06_submissions" / competition

    def kernels(self, competition: str) -> Path:
        return self.root / "07_kernels" / competition

    def watch(self, competition: str) -> Path:
        return self.root / "08_watch" / competition

    def local(self, competition: str) -> Path:
        return self.root / "local" / competition
