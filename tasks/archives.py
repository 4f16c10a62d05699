"""Unpacking the archives a competition or dataset ships: all or nothing, and hostile ones refused.

An entry whose path leaves the target folder (`../x`, `/etc/x`) or that is a symbolic link is not damage but
an attack, so the whole archive is refused with the entry named rather than the entry quietly rewritten inside
the folder. The declared sizes are checked before anything is written (a zip bomb is refused, not unpacked);
zipfile never reads past a member's declared size, so the declaration is what lands on disk.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tasks.errors import CompetitionDataError
from tasks.progress import progress_bar

MANY_FILES = 500  # an archive with at least this many members is unpacked under a progress bar
MAX_UNPACKED_BYTES = 64 * 2**30  # the largest image competitions unpack to tens of GB
MAX_RATIO = 200  # deflate reaches ~1000:1 on repeated bytes; real pixel CSVs and images stay well under 20:1
RATIO_FLOOR = 16 * 2**20  # members (and archives) smaller than this unpacked are never refused for their ratio


@dataclass(frozen=True)
class Entry:
    """One archive member as its header declares it (compressed is None where the format does not say)."""

    name: str
    size: int
    compressed: int | None
    is_link: bool = False


def zip_entries(archive: Path) -> list[Entry]:
    with zipfile.ZipFile(archive) as zipped:
        return [Entry(info.filename, info.file_size, info.compress_size,
                      info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16))
                for info in zipped.infolist()]


def seven_zip_entries(archive: Path) -> list[Entry]:
    import py7zr

    with py7zr.SevenZipFile(archive, "r") as seven_zip:
        links = {member.filename for member in seven_zip.files if member.is_symlink}
        return [Entry(info.filename, info.uncompressed or 0, info.compressed, info.filename in links)
                for info in seven_zip.list()]


def _hostile(name: str) -> str | None:
    """Why an entry's path is hostile (it leaves the folder it is unpacked into); None when it is not."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in path.parts:
        return "leaves the folder it is unpacked into ('..')"
    return None


def check_entries(archive: Path, entries: list[Entry], max_bytes: int = MAX_UNPACKED_BYTES,
                  max_ratio: float = MAX_RATIO) -> None:
    """Refuse an archive with a hostile entry (an escaping path, a link) or that unpacks too large."""
    for entry in entries:
        reason = _hostile(entry.name) or ("is a symbolic link" if entry.is_link else None)
        if reason:
            raise CompetitionDataError(f"{archive}: entry {entry.name!r} {reason}; refusing the archive (a file that "
                                       "writes outside its folder or links elsewhere is hostile, not damaged)")
        if entry.size > RATIO_FLOOR and entry.compressed and entry.size / entry.compressed > max_ratio:
            raise CompetitionDataError(
                f"{archive}: entry {entry.name!r} unpacks to {entry.size:,} bytes from {entry.compressed:,} "
                f"(ratio {entry.size // entry.compressed}:1, the limit is {max_ratio:g}:1): refusing a likely zip bomb")
    total = sum(entry.size for entry in entries)
    packed = max(archive.stat().st_size, 1)
    if total > max_bytes:
        raise CompetitionDataError(f"{archive}: unpacks to {total:,} bytes, over the limit of {max_bytes:,}; "
                                   "refusing it")
    if total > RATIO_FLOOR and total / packed > max_ratio:
        raise CompetitionDataError(f"{archive}: unpacks to {total:,} bytes from {packed:,} (ratio {total // packed}:1, "
                                   f"the limit is {max_ratio:g}:1): refusing a likely zip bomb")


def check_zip(path: Path, max_bytes: int = MAX_UNPACKED_BYTES, max_ratio: float = MAX_RATIO) -> None:
    """A zip that is safe to unpack: no hostile entry, not too large, every member's CRC right."""
    try:
        check_entries(path, zip_entries(path), max_bytes, max_ratio)
        with zipfile.ZipFile(path) as zipped:
            damaged = zipped.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise CompetitionDataError(f"{path}: a damaged zip ({error}); download or build it again") from None
    if damaged is not None:
        raise CompetitionDataError(f"{path}: member {damaged!r} is damaged (its CRC does not match); download or "
                                   "build the zip again")


def unpack_archive(archive: Path, destination: Path, max_bytes: int = MAX_UNPACKED_BYTES,
                   max_ratio: float = MAX_RATIO) -> Path:
    """Unpack a .zip or .7z into `destination`, all or nothing (a temporary folder, then renames)."""
    if not archive.is_file():
        raise CompetitionDataError(f"{archive}: file not found")
    try:
        entries = _entries(archive)
    except CompetitionDataError:
        raise
    except Exception as error:  # zipfile and py7zr raise many types for a broken header
        raise CompetitionDataError(f"{archive}: cannot unpack ({error})") from None
    if entries is not None:
        check_entries(archive, entries, max_bytes, max_ratio)
    _check_free_space(archive, destination, sum(entry.size for entry in entries or []))
    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination, prefix=".unpack-"))
    try:
        if archive.suffix == ".7z":
            _unpack_7z(archive, staging)
        else:
            _unpack_zip(archive, staging)
        _refuse_links(archive, staging)  # the 7z command lists no entries beforehand: check what it wrote
    except Exception as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, CompetitionDataError):
            raise
        raise CompetitionDataError(f"{archive}: cannot unpack ({error})") from None
    for entry in staging.iterdir():
        target = destination / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        entry.replace(target)
    staging.rmdir()
    return destination


def _entries(archive: Path) -> list[Entry] | None:
    if archive.suffix != ".7z":
        return zip_entries(archive)
    try:
        return seven_zip_entries(archive)
    except ImportError:
        return None  # unpacked by the 7z command, checked afterwards


def _check_free_space(archive: Path, destination: Path, needed: int) -> None:
    """Refuse, before anything is written (not even `destination`), an archive that would not fit on its disk."""
    existing = next(folder for folder in (destination, *destination.parents) if folder.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise CompetitionDataError(f"{archive}: unpacks to {needed:,} bytes but {destination} has only {free:,} free; "
                                   "free some space and run again")


def _unpack_zip(archive: Path, staging: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.infolist()
        if len(members) < MANY_FILES:
            zipped.extractall(staging)
            return
        # image competitions ship tens of thousands of files: show the unpacking
        with progress_bar(f"unpacking {archive.name}", total=len(members), unit="files") as advance:
            for member in members:
                zipped.extract(member, staging)
                advance()


def _refuse_links(archive: Path, staging: Path) -> None:
    for folder, names, files in os.walk(staging):
        for name in names + files:
            if os.path.islink(os.path.join(folder, name)):
                entry = os.path.relpath(os.path.join(folder, name), staging)
                raise CompetitionDataError(f"{archive}: entry {entry!r} is a symbolic link; refusing the archive (a "
                                           "file that writes outside its folder or links elsewhere is hostile, not "
                                           "damaged)")


def _unpack_7z(archive: Path, target: Path) -> None:
    """py7zr where it is installed; else the `7z` command (Kaggle's notebook image has that, not py7zr)."""
    try:
        import py7zr
    except ImportError:
        command = next((name for name in ("7z", "7za", "7zz") if shutil.which(name)), None)
        if command is None:
            raise CompetitionDataError(f"{archive}: unpacking a .7z archive needs py7zr (pip install py7zr) or the "
                                       "7z command (apt-get install p7zip-full)") from None
        finished = subprocess.run([command, "x", "-y", f"-o{target}", str(archive)], capture_output=True, text=True)
        if finished.returncode != 0:
            raise RuntimeError((finished.stderr or finished.stdout).strip()[-500:]) from None
        return
    with py7zr.SevenZipFile(archive, "r") as seven_zip:
        seven_zip.extractall(target)
