"""One helper that builds every path under the numbered data layers."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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

    def local(self, competition: str) -> Path:
        return self.root / "local" / competition


def atomic_write_bytes(path: Path, payload: bytes) -> Path:
    """Write `payload` to `path` through a temporary file and a rename, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_npy(path: Path, array) -> Path:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return atomic_write_bytes(path, buffer.getvalue())


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
