"""The kit's file and I/O helpers, written once: atomic writes, sha256 digests, append-only JSON-lines
logs shared between processes, and a polling loop."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from tasks.errors import DiskFullError

T = TypeVar("T")
_HELD = threading.local()  # the lock files this thread holds (JsonLines.locked is reentrant per thread)


def atomic_write_bytes(path: Path, payload: bytes) -> Path:
    """Write `payload` to `path` through a temporary file and a rename, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"{path}: no space left on device writing {len(payload):,} bytes; nothing "
                                "half-written was kept: free some space and run again (finished work is "
                                "reused)") from None
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


@contextmanager
def file_lock(path: Path) -> Iterator[Path]:
    """Hold an exclusive lock on `path` (created if missing) against other processes and threads; reentrant
    within one thread, so a locked step may call another that takes the same lock."""
    import fcntl

    lock_path = str(Path(path).absolute())
    held = _held_locks()
    if lock_path in held:
        yield Path(path)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held.add(lock_path)
        try:
            yield Path(path)
        finally:
            held.discard(lock_path)


class JsonLines:
    """An append-only log of JSON records, one per line, that several processes may write at once.

    `locked()` holds an exclusive lock (on a sibling `.lock` file) across a read-check-append, so that
    what a writer checked is still true when it appends. A writer killed mid-line leaves a torn last
    line: reading skips it, and the next append (under the lock) cuts it off before writing.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def locked(self) -> contextlib.AbstractContextManager[Path]:
        return file_lock(self.path.with_name(self.path.name + ".lock"))

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        lines = self.path.read_bytes().split(b"\n")
        *complete, tail = lines  # `tail` is empty unless the last line is torn
        records = [_json_line(self.path, number, line) for number, line in enumerate(complete, start=1)
                   if line.strip()]
        whole_tail = _parsed(tail)
        return records + ([whole_tail] if whole_tail is not None else [])

    def append(self, record: dict) -> dict:
        """Append one record with a single write (O_APPEND), under the lock, after cutting off a torn tail."""
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
        with self.locked(), open(self.path, "a+b", buffering=0) as stream:
            stream.write(_repaired_tail(stream.fileno()) + line)
        return record


def _held_locks() -> set[str]:
    if not hasattr(_HELD, "paths"):
        _HELD.paths = set()
    return _HELD.paths


def _parsed(line: bytes) -> dict | None:
    """A line's record, or None when it is not one (empty, or torn by a writer that died)."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _json_line(path: Path, number: int, line: bytes) -> dict:
    record = _parsed(line)
    if record is None:
        from tasks.errors import CorruptFileError

        raise CorruptFileError(f"{path}: line {number} is not a JSON record ({line[:60]!r}); fix or delete "
                               "that line (the others are intact)")
    return record


def _repaired_tail(descriptor: int, block: int = 1 << 16) -> bytes:
    """Cut a torn last line off a log open for appending; the bytes to write before the next record (a newline
    when the last line is whole JSON that lost only its newline)."""
    size = os.fstat(descriptor).st_size
    if size == 0 or os.pread(descriptor, 1, size - 1) == b"\n":
        return b""
    start = size
    while start > 0:
        chunk_start = max(0, start - block)
        newline = os.pread(descriptor, start - chunk_start, chunk_start).rfind(b"\n")
        if newline >= 0:
            start = chunk_start + newline + 1
            break
        start = chunk_start
    if _parsed(os.pread(descriptor, size - start, start)) is not None:
        return b"\n"
    os.ftruncate(descriptor, start)
    return b""


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
