"""Which backend holds a competition: a local one under data/local/, or Kaggle."""

from __future__ import annotations

from pathlib import Path

from tasks.backends.guard import LOG_NAME, guarded_submit
from tasks.backends.kaggle import KaggleBackend, MountedBackend, kaggle_spec
from tasks.backends.local import DEFAULT_DAILY_LIMIT, LocalBackend
from tasks.backends.practice import DIGITS, ensure_digits
from tasks.errors import ConfigError
from tasks.paths import DataPaths


def open_local_backend(name: str, paths: DataPaths, daily_limit: int = DEFAULT_DAILY_LIMIT) -> LocalBackend:
    """The local competition `name`; the built-in `digits` one is created on first use."""
    root = paths.local(name)
    if name == DIGITS:
        return ensure_digits(root, daily_limit)
    if not (root / "competition.json").is_file():
        known = sorted(p.name for p in paths.root.joinpath("local").glob("*") if (p / "competition.json").is_file())
        raise ConfigError(f"no local competition {name!r} under {paths.root / 'local'} (known: {known or 'none'}); "
                          f"create it with `headstart local create {name} ...`, or use --backend kaggle")
    return LocalBackend(root)


def open_backend(name: str, paths: DataPaths, backend: str = "local", spec: str | None = None,
                 input_dir: str | None = None):
    """The competition's backend: local, Kaggle, or (inside a notebook) Kaggle's mounted files."""
    if input_dir:
        return MountedBackend(kaggle_spec(name, spec), Path(input_dir))
    if backend == "local":
        return open_local_backend(name, paths)
    if backend == "kaggle":
        return KaggleBackend(kaggle_spec(name, spec))
    raise ConfigError(f"backend {backend!r} is not available; use 'local' or 'kaggle'")


def backend_for(config):
    return open_backend(config.competition, config.paths, config.backend, config.spec, config.input_dir)


def fetch_competition(config) -> Path:
    """Download (or unpack) the competition's files into data/01_raw/<competition>/."""
    return backend_for(config).download(config.paths.raw(config.competition))


def submit_file(config, submission: Path, force: bool = False, if_duplicate: str = "previous") -> dict:
    """Send a submission through the guard (validated, quota, no duplicates); return its scored record.

    A file sent before is not sent again: its earlier record comes back (`duplicate: True`), or with
    `if_duplicate="raise"` a DuplicateSubmissionError; `force` sends it anyway."""
    backend = backend_for(config)
    sample = config.paths.raw(config.competition) / backend.spec.sample_submission
    log_path = config.paths.submissions(config.competition) / LOG_NAME
    return guarded_submit(backend, submission, sample, log_path, config.message, force,
                          if_duplicate=if_duplicate)
