"""Which backend holds a competition: a local one under data/local/, or Kaggle."""

from __future__ import annotations

import logging
from pathlib import Path

from tasks.backends.base import Backend
from tasks.backends.guard import LOG_NAME, guarded_submit
from tasks.backends.kaggle import KaggleBackend, known_kaggle_spec, remember_given_spec
from tasks.backends.local import DEFAULT_DAILY_LIMIT, LocalBackend, create_local_competition
from tasks.backends.mounted import MountedBackend
from tasks.backends.practice import DIGITS, ensure_digits
from tasks.competitions import BUILTIN_SPECS, CompetitionSpec, resolve_spec
from tasks.errors import BackendError, ConfigError
from tasks.paths import DataPaths
from tasks.spec_inference import SPEC_FILE, infer_spec, read_spec_values, saved_spec, write_spec_toml

logger = logging.getLogger("headstart")


def require_local_competition(name: str, paths: DataPaths) -> None:
    """Refuse a name that is no local competition, naming those there are (digits always is: made on first use)."""
    if name == DIGITS or (paths.local(name) / "competition.json").is_file():
        return
    known = sorted(p.name for p in paths.root.joinpath("local").glob("*") if (p / "competition.json").is_file())
    raise ConfigError(f"no local competition {name!r} under {paths.root / 'local'} (known: {known or 'none'}); "
                      f"create it with `headstart local create {name} ...`, or use --backend kaggle")


def open_local_backend(name: str, paths: DataPaths, daily_limit: int = DEFAULT_DAILY_LIMIT) -> LocalBackend:
    """The local competition `name`; the built-in `digits` one is created on first use."""
    require_local_competition(name, paths)
    if name == DIGITS:
        return ensure_digits(paths.local(name), daily_limit)
    return LocalBackend(paths.local(name))


def ensure_local_competition(name: str, paths: DataPaths, public_zip: str | Path | None = None,
                             solution: str | Path | None = None, spec: str | None = None) -> LocalBackend:
    """The local competition `name`: the built-in digits, one created before, or, given a Kaggle-layout zip, its
    hidden solution and a spec (built-in name or .toml), created now (what `headstart local create` does)."""
    if name == DIGITS or (paths.local(name) / "competition.json").is_file() or public_zip is None:
        return open_local_backend(name, paths)
    if solution is None or spec is None:
        raise ConfigError(f"to create the local competition {name!r} from {public_zip}, give its solution CSV and "
                          "its spec too (e.g. cifar-10)")
    return create_local_competition(paths.local(name), name, resolve_spec(spec), Path(public_zip), Path(solution))


def open_backend(name: str, paths: DataPaths, backend: str = "local", spec: str | None = None,
                 input_dir: str | None = None) -> Backend:
    """The competition's backend: local, Kaggle, or (inside a notebook) Kaggle's mounted files. A Kaggle
    competition without a spec (given, built in, or saved beside its raw files) gets one inferred at download.
    Open it once per run and pass it on: a Kaggle backend authenticates when it is made."""
    if backend not in ("local", "kaggle"):
        raise ConfigError(f"backend {backend!r} is not available; use 'local' or 'kaggle'")
    paths = paths.for_backend(backend)
    if input_dir:
        return MountedBackend(known_kaggle_spec(name, spec, paths.raw(name)), Path(input_dir), slug=name)
    if backend == "local":
        return open_local_backend(name, paths)
    return KaggleBackend(known_kaggle_spec(name, spec, paths.raw(name)), slug=name)


def backend_for(config) -> Backend:
    """The run's backend, opened (call once per run)."""
    return open_backend(config.competition, config.paths, config.backend, config.spec, config.input_dir)


def spec_in_use(name: str, paths: DataPaths, backend: str = "local", spec: str | None = None
                ) -> tuple[CompetitionSpec, str]:
    """The spec a run would use and where it comes from. A Kaggle competition with none (given, built in or
    saved) has it inferred from its raw files, downloaded first if there are none, and not saved."""
    if backend == "local":
        local = open_local_backend(name, paths)
        return local.spec, f"of the local competition in {local.root}"
    if backend != "kaggle":
        raise ConfigError(f"backend {backend!r} is not available; use 'local' or 'kaggle'")
    raw_dir = paths.for_backend(backend).raw(name)
    if spec or name in BUILTIN_SPECS:
        return known_kaggle_spec(name, spec), f"from --spec {spec}" if spec else "built in"
    if saved := saved_spec(name, raw_dir):
        return saved, f"saved in {raw_dir / SPEC_FILE}"
    metric_hint = None
    if not (raw_dir.is_dir() and any(not entry.name.startswith(".") for entry in raw_dir.iterdir())):
        kaggle = KaggleBackend(None, slug=name)
        kaggle.download_files(raw_dir)
        metric_hint = kaggle.evaluation_metric()
    return (infer_spec(name, raw_dir, metric_hint, given=read_spec_values(raw_dir)),
            f"inferred from the files in {raw_dir}")


def save_spec(spec: CompetitionSpec, source: str, paths: DataPaths, force: bool = False) -> Path:
    """Write a Kaggle competition's spec to data/01_raw/<slug>/spec.toml, where runs find it."""
    path = paths.for_backend("kaggle").raw(spec.slug) / SPEC_FILE
    if spec.slug in BUILTIN_SPECS:
        raise ConfigError(f"{spec.slug!r} has a built-in spec, which runs use rather than {path}; to change it, save "
                          f"it elsewhere (`headstart spec {spec.slug} --backend kaggle > my.toml`), edit it and pass "
                          "--spec my.toml")
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to replace it (edits there are lost)")
    return write_spec_toml(spec, path, header=f"Spec of {spec.slug!r}, {source}.\nEdit any key; runs of "
                           f"{spec.slug!r} with --backend kaggle use this file unless given --spec.")


def fetch_competition(config, backend: Backend) -> tuple[CompetitionSpec, Path]:
    """Download (or unpack) the competition's files into data/01_raw/<backend>/<competition>/; its spec and that
    folder."""
    raw_dir = config.paths.raw(config.competition)
    spec = backend.download(raw_dir)
    if config.backend == "kaggle" and config.spec:
        remember_given_spec(spec, raw_dir)
    return spec, raw_dir


def submit_file(config, backend: Backend, submission: Path, force: bool = False,
                if_duplicate: str = "previous") -> dict:
    """Send a submission through the guard (validated, quota, no duplicates); return its scored record.

    A file sent before is not sent again: its earlier record comes back (`duplicate: True`), or with
    `if_duplicate="raise"` a DuplicateSubmissionError; `force` sends it anyway."""
    log_path = config.paths.submissions(config.competition) / LOG_NAME
    return with_rank(backend, guarded_submit(backend, submission, sample_submission(config, backend), log_path,
                                             config.message, force, if_duplicate=if_duplicate))


def with_rank(backend: Backend, record: dict) -> dict:
    """A scored submission's record with our place on the public leaderboard after it (`rank`), as a competitor
    wants it next to the score; one request (the competition's userRank), None when it cannot be had."""
    if record.get("status") != "complete":
        return record
    try:
        return {**record, "rank": backend.rank()}
    except BackendError as error:
        logger.warning("%s: scored, but our rank could not be read (%s)", backend.name, error)
        return {**record, "rank": None}


def sample_submission(config, backend: Backend) -> Path:
    """The competition's sample submission, which every file sent is checked against: from its downloaded files,
    else fetched now (a local competition unpacks its files; Kaggle sends the one file)."""
    raw_dir = config.paths.raw(config.competition)
    sample = raw_dir / backend.spec.sample_submission
    if not sample.is_file():
        if isinstance(backend, KaggleBackend):
            backend.download_file(backend.spec.sample_submission, raw_dir)
        else:
            backend.download(raw_dir)
    return sample
