"""The kit's file and I/O helpers, written once: atomic writes, sha256 digests, append-only JSON-lines
logs shared between processes, and a polling loop."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")


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


def sha256_file(path: Path | None, chunk_size: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks ('none' for no file, e.g. random weights)."""
    if path is None:
        return "none"
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


class JsonLines:
    """An append-only log of JSON records, one per line, that several processes may write at once.

    `locked()` holds an exclusive lock (on a sibling `.lock` file) across a read-check-append, so that
    what a writer checked is still true when it appends.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    @contextmanager
    def locked(self) -> Iterator[JsonLines]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def append(self, record: dict) -> dict:
        """Append one record with a single write (O_APPEND), so concurrent writers never interleave."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as stream:
            stream.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        return record


def poll(check: Callable[[], T | None], interval: float, timeout: float, on_timeout: Callable[[], Exception]) -> T:
    """Call `check` every `interval` seconds until it returns something other than None; after
    `timeout` seconds raise `on_timeout()`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise on_timeout()
        time.sleep(interval)
