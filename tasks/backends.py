"""Which backend holds a competition: a local one under data/local/, or Kaggle."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.local import DEFAULT_DAILY_LIMIT, LocalBackend
from tasks.paths import DataPaths
from tasks.practice import DIGITS, ensure_digits


def open_local_backend(name: str, paths: DataPaths, daily_limit: int = DEFAULT_DAILY_LIMIT) -> LocalBackend:
    """The local competition `name`; the built-in `digits` one is created on first use."""
    root = paths.local(name)
    if name == DIGITS:
        return ensure_digits(root, daily_limit)
    if not (root / "competition.json").is_file():
        known = sorted(p.name for p in paths.root.joinpath("local").glob("*") if (p / "competition.json").is_file())
        raise ValueError(f"no local competition {name!r} under {paths.root / 'local'} (known: {known or 'none'}); "
                         f"create it with `headstart local create {name} ...`, or use --backend kaggle")
    return LocalBackend(root)


def open_backend(name: str, paths: DataPaths, backend: str = "local"):
    if backend == "local":
        return open_local_backend(name, paths)
    raise ValueError(f"backend {backend!r} is not available; use 'local'")



@task(cache_policy=NO_CACHE)
def fetch_competition(config) -> Path:
    """Download (or unpack) the competition's files into data/01_raw/<competition>/."""
    backend = open_backend(config.competition, config.paths, config.backend)
    return backend.download(config.paths.raw(config.competition))


@task(cache_policy=NO_CACHE)
def submit_file(config, submission: Path) -> dict:
    """Send a validated submission to the competition's backend and return its scored record."""
    backend = open_backend(config.competition, config.paths, config.backend)
    return backend.submit(submission, description=config.message)
