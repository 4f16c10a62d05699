"""A competition whose files are mounted read-only, as in a Kaggle notebook (/kaggle/input/competitions/<slug>)."""

from __future__ import annotations

import os
from pathlib import Path

from tasks.backends.base import Capabilities
from tasks.backends.kaggle import kaggle_spec
from tasks.competitions import CompetitionSpec
from tasks.errors import BackendError, NotFoundError
from tasks.layouts import unpack_image_archives
from tasks.spec_inference import infer_and_save_spec


class MountedBackend:
    """A competition whose files are mounted read-only, as in a Kaggle notebook: no download, no submit (Kaggle takes
    the notebook's submission.csv), no leaderboard (no internet)."""

    capabilities = Capabilities(submits=False)
    team = ""

    def __init__(self, spec: CompetitionSpec | None, input_dir: Path, slug: str | None = None):
        self.known_spec, self.name, self.input_dir = spec, spec.slug if spec else slug, Path(input_dir)
        if not self.input_dir.is_dir():
            raise NotFoundError(f"{self.input_dir}: the competition's files are not mounted here; attach the "
                                f"competition {self.name!r} to the notebook (competition_sources)")

    def download(self, destination: Path) -> CompetitionSpec:
        """Link the mounted files into `destination` and unpack image archives there (the mount is read-only);
        the spec."""
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self.input_dir.iterdir()):
            link = destination / entry.name
            if not link.exists() and not link.is_symlink():
                os.symlink(entry.resolve(), link, target_is_directory=entry.is_dir())
        if self.known_spec is None:  # a notebook has no internet for the metric: the files decide
            self.known_spec = infer_and_save_spec(self.name, destination)
        unpack_image_archives(self.spec, destination)
        return self.spec

    @property
    def spec(self) -> CompetitionSpec:
        return kaggle_spec(self.name) if self.known_spec is None else self.known_spec

    def submit(self, path: Path, description: str = "") -> dict:
        raise BackendError(f"{self.name}: a notebook cannot submit; it writes submission.csv for Kaggle to take")

    def _offline(self, what: str):
        raise BackendError(f"{self.name}: a notebook has no internet: no {what} here")

    def submissions(self, team: str | None = None) -> list[dict]:
        return self._offline("submissions")

    def leaderboard(self, limit: int | None = None) -> list[dict]:
        return self._offline("leaderboard")

    def rank(self) -> int | None:
        return self._offline("leaderboard")

    def limits(self) -> dict | None:
        return None

    def data_files(self) -> list[dict]:
        return [{"name": entry.name, "size": entry.stat().st_size, "date": None}
                for entry in sorted(self.input_dir.rglob("*")) if entry.is_file()]

    def evaluation_metric(self) -> str | None:
        return None
