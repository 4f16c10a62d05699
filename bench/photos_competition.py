"""Make the offline colour-image practice competition `photos-N` with `headstart local create --tfds`."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.common import store_photos_as_tfds


def ensure_photos(data_dir: Path, train_per_class: int = 625, test_per_class: int = 100) -> str:
    """Create (once) a local competition of 8 x train_per_class training patches; return its name."""
    from tasks.backends.practice import create_from_tfds
    from tasks.paths import DataPaths

    name = f"photos-{8 * train_per_class}"
    root = DataPaths(data_dir).local(name)
    if not (root / "competition.json").is_file():
        dataset = store_photos_as_tfds(data_dir / "tfds", train_per_class, test_per_class)
        create_from_tfds(root, name, dataset, data_dir / "tfds")
    return name


def photos_index(data_dir: Path):
    """The photos competition fetched and indexed, as `headstart run` would: (backend, LoadedIndex)."""
    from tasks.backends.local import LocalBackend
    from tasks.index import ensure_index, read_index
    from tasks.paths import DataPaths

    paths = DataPaths(data_dir)
    name = ensure_photos(data_dir)
    backend = LocalBackend(paths.local(name))
    raw = paths.raw(name)
    backend.download(raw)
    return backend, read_index(ensure_index(backend.spec, raw, paths.index(name), folds=5, seed=0))


if __name__ == "__main__":
    print(ensure_photos(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data")))
