"""One helper that builds every path under the numbered data layers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("local", "kaggle")


@dataclass(frozen=True)
class DataPaths:
    """The data layers under one root (./data, --data-dir or HEADSTART_DATA), for one backend's competitions.

    Every layer is keyed by backend, then competition (`01_raw/kaggle/digit-recognizer/`): a local practice
    competition named like a Kaggle one shares no raw files, spec, submission log or watch history with it."""

    root: Path
    backend: str = "local"

    def _layer(self, layer: str, competition: str) -> Path:
        return self.root / layer / self.backend / competition

    def raw(self, competition: str) -> Path:
        return self._layer("01_raw", competition)

    def index(self, competition: str) -> Path:
        return self._layer("02_index", competition)

    def features(self, competition: str) -> Path:
        return self._layer("03_features", competition)

    def models(self, competition: str, run_id: str) -> Path:
        return self._layer("04_models", competition) / run_id

    def predictions(self, competition: str, run_id: str) -> Path:
        return self._layer("05_predictions", competition) / run_id

    def member(self, competition: str, name: str) -> Path:
        """A member's cached predictions, named by a hash of everything they depend on."""
        return self._layer("05_predictions", competition) / "members" / name

    def member_pictures(self, competition: str, name: str) -> Path:
        return self._layer("04_models", competition) / "members" / name

    def costs(self, competition: str) -> Path:
        """What models cost per image on this machine, measured once (tasks/budget_plan.py)."""
        return self._layer("04_models", competition) / "costs"

    def submissions(self, competition: str) -> Path:
        return self._layer("06_submissions", competition)

    def kernels(self, competition: str) -> Path:
        return self._layer("07_kernels", competition)

    def watch(self, competition: str) -> Path:
        return self._layer("08_watch", competition)

    def local(self, competition: str) -> Path:
        """A local competition's store (what `headstart local create` makes and `headstart host` serves)."""
        return self.root / "local" / competition

    def for_backend(self, backend: str) -> DataPaths:
        return DataPaths(self.root, backend)
