"""A kernel's outputs, copied out of its sandbox: regular files only, opened without following any link, under
names Kaggle would serve.

The kernel's working folder is its own to shape: a link to /proc/self/cmdline or to the solution, a fifo, a
name with a newline or bytes that are not UTF-8. Only what passes here reaches the folder the host serves and
scores from, so nothing the host reads later can point outside it.
"""

from __future__ import annotations

import os
import shutil
import stat
import unicodedata
from pathlib import Path

_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK  # a fifo swapped in does not block the host
MAX_DEPTH = 32  # folders within folders kept (each level holds one open folder while it is copied)


class OutputLimit(Exception):
    """The outputs add up to more than the kernel may leave."""


def unservable(name: str) -> str | None:
    """Why Kaggle would not serve a file of this name (None: it would): bytes that are not UTF-8, or a control
    character such as a newline (either breaks the output listing for everyone)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not UTF-8"
    if any(unicodedata.category(character) == "Cc" for character in name):
        return "a control character in its name"
    return None


def shown(name: str) -> str:
    """A name as one printable line (its bytes escaped where they are not)."""
    return name if unservable(name) is None else repr(os.fsencode(name))[2:-1]


def _copy_file(directory_fd: int, name: str, target: Path, room: int) -> int:
    """Copy one file, opened relative to its folder without following a link; its size. OutputLimit past `room`."""
    source_fd = os.open(name, _OPEN_FILE, dir_fd=directory_fd)
    with open(source_fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            return -1
        size = os.fstat(source.fileno()).st_size
        if size > room:
            raise OutputLimit
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as copy:
            shutil.copyfileobj(source, copy)
    return size


def copy_outputs(working: Path, target: Path, limit: int) -> tuple[list[str], int]:
    """Copy every regular file under `working` to the same place under `target`; (a note for each entry not
    kept, the bytes copied). OutputLimit once they pass `limit` bytes (the caller empties `target`)."""
    notes, copied = [], [0]
    directory_fd = os.open(working, _OPEN_DIRECTORY)
    try:
        _copy_folder(directory_fd, "", target, limit, notes, copied)
    finally:
        os.close(directory_fd)
    return notes, copied[0]


def _copy_folder(directory_fd: int, prefix: str, target: Path, limit: int, notes: list, copied: list) -> None:
    """One folder of copy_outputs, then its subfolders (each opened relative to it, never through a link)."""
    for entry in sorted(os.scandir(directory_fd), key=lambda entry: entry.name):
        relative = prefix + entry.name
        problem = unservable(entry.name)
        if problem is None and entry.is_symlink():
            problem = "a symbolic link"
        elif problem is None and entry.is_dir(follow_symlinks=False):
            if prefix.count("/") >= MAX_DEPTH:
                problem = f"more than {MAX_DEPTH} folders deep"
            else:
                child_fd = os.open(entry.name, _OPEN_DIRECTORY, dir_fd=directory_fd)
                try:
                    _copy_folder(child_fd, relative + "/", target, limit, notes, copied)
                finally:
                    os.close(child_fd)
                continue
        if problem is None:
            size = _copy_file(directory_fd, entry.name, target / relative, limit - copied[0])
            copied[0] += max(size, 0)
            problem = "not a regular file" if size < 0 else None
        if problem is not None:
            notes.append(f"not kept: {shown(relative)} ({problem})")
