"""Datasets on a hosted competition: versions of uploaded files, read by their owner, or by anyone when public (their
RPCs: tasks/host/dataset_api.py).

A kernel mounts a dataset's files (tasks/host/kernels.py) under the same access rule as the API. As on Kaggle, a new
version is processed for a while (`dataset_processing_seconds`: not ready, and another version is refused), and its
number is registered later still (`dataset_registration_seconds`: GetDataset reports the previous number, and a bare
`owner/slug` mounts the previous version), which is why the kit pins the version it waited for.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from kagglesdk.datasets.types.dataset_api_service import ApiCreateDatasetResponse

from tasks.archives import unpack_archive
from tasks.files import atomic_write_json
from tasks.host.common import (
    MAX_DATASET_SLUG,
    MIN_DATASET_SLUG,
    OWNER,
    HostError,
    may_read,
    number,
    require_name,
)
from tasks.host.rpc import make

DATASETS = "datasets.DatasetApiService/"
# What a dataset's record keeps of dataset-metadata.json, beside its privacy (GetDatasetMetadata answers it).
METADATA_KEYS = ("title", "subtitle", "description", "keywords", "licenses")


class DatasetStore:
    """datasets/<owner>/<slug>/: dataset.json (id, privacy, metadata) and <version>/files/ (what was uploaded)."""

    def __init__(self, host):
        self.host = host

    def base(self, owner: str, slug: str) -> Path:
        """datasets/<owner>/<slug>/, once both are valid Kaggle names (a 400 naming the field otherwise)."""
        require_name("owner", owner, OWNER)
        require_name("dataset slug", slug, min_length=MIN_DATASET_SLUG, max_length=MAX_DATASET_SLUG)
        return self.host.store / "datasets" / owner / slug

    def all_versions(self, owner: str, slug: str) -> list[int]:
        names = [path.name for path in self.base(owner, slug).glob("*")]
        return sorted(number(name) for name in names if number(name) is not None)

    def _age(self, owner: str, slug: str, version: int) -> float:
        return time.time() - (self.base(owner, slug) / str(version)).stat().st_mtime

    def versions(self, owner: str, slug: str) -> list[int]:
        """The registered versions: a version's number is known `dataset_registration_seconds` after its upload."""
        delay = self.host.settings.dataset_registration_seconds
        return [version for version in self.all_versions(owner, slug)
                if version == 1 or self._age(owner, slug, version) >= delay]

    def exists(self, owner: str, slug: str) -> bool:
        return bool(self.all_versions(owner, slug))

    def datasets(self) -> list[tuple[str, str]]:
        return sorted((path.parent.parent.name, path.parent.name)
                      for path in self.host.store.glob("datasets/*/*/dataset.json"))

    @staticmethod
    def parse_ref(ref: str) -> tuple[str, str, int | None]:
        """`owner/slug` or `owner/slug/N` (a pinned version), as kernel metadata names datasets."""
        owner, _, rest = ref.partition("/")
        slug, _, version = rest.partition("/")
        return owner, slug, number(version)

    def record(self, owner: str, slug: str) -> dict:
        path = self.base(owner, slug) / "dataset.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def private(self, owner: str, slug: str) -> bool:
        """Whether only its owner may read it (as created; a dataset without that record is private)."""
        return self.record(owner, slug).get("isPrivate", True)

    def dataset_id(self, owner: str, slug: str) -> int:
        return int(self.record(owner, slug).get("id", 0))

    def by_id(self, dataset_id: int) -> tuple[str, str]:
        found = [(owner, slug) for owner, slug in self.datasets() if self.dataset_id(owner, slug) == dataset_id]
        if not found:
            raise HostError(404, f"Dataset {dataset_id} not found")
        return found[0]

    def mountable(self, user: str, ref: str) -> bool:
        """Whether `owner/slug[/N]` exists and this user's kernel may have it mounted (owner, or public)."""
        owner, slug, version = self.parse_ref(ref)
        try:
            versions = self.versions(owner, slug)
        except HostError:  # not a valid name: reported as a source that cannot be attached, as Kaggle does
            return False
        found = bool(versions) and (version is None or version in versions)
        return found and may_read(user, owner, self.private(owner, slug))

    def files_dir(self, owner: str, slug: str, version: int | None = None) -> Path:
        versions = self.versions(owner, slug)
        if not versions or (version is not None and version not in versions):
            raise HostError(404, f"Dataset {owner}/{slug} (version {version or 'latest'}) not found")
        return self.base(owner, slug) / str(version or versions[-1]) / "files"

    def mount(self, owner: str, slug: str, version: int | None, target: Path) -> None:
        """Copy a version's files to `target`, as Kaggle mounts them: an uploaded .zip becomes a folder."""
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.files_dir(owner, slug, version).iterdir()):
            if path.suffix == ".zip" and zipfile.is_zipfile(path):
                unpack_archive(path, target / path.stem)  # a hostile upload (../x, a link, a bomb) is refused
            elif path.is_file():
                shutil.copyfile(path, target / path.name)

    def processing(self, owner: str, slug: str) -> bool:
        """Whether the newest version is still being processed (`dataset_processing_seconds` after its upload)."""
        versions = self.all_versions(owner, slug)
        return bool(versions) and self._age(owner, slug, versions[-1]) < self.host.settings.dataset_processing_seconds

    def require(self, owner: str, slug: str, user: str) -> None:
        """A 404 for a dataset that does not exist, a 403 for one this user may not read."""
        if not self.exists(owner, slug):
            raise HostError(404, f"Dataset {owner}/{slug} not found")
        if not may_read(user, owner, self.private(owner, slug)):
            raise HostError(403, f"Permission 'datasets.get' was denied for {owner}/{slug}")

    def require_owner(self, owner: str, slug: str, user: str) -> None:
        self.require(owner, slug, user)
        if owner != user:
            raise HostError(403, f"Permission 'datasets.update' was denied for {owner}/{slug}")

    def add_version(self, user: str, owner: str, slug: str, files: list, record: dict | None = None
                    ) -> ApiCreateDatasetResponse:
        """A new version of these uploads, whole or not at all: every token is checked before anything is
        written, and the version appears by one rename (a failed CreateDataset leaves no dataset, its slug free).
        `record` (a new dataset's: its privacy and metadata) is written with its first version."""
        if owner != user:
            raise HostError(403, f"You can only write datasets as {user}/<slug>")
        if self.processing(owner, slug):  # Kaggle refuses a new version while the last one is processed
            raise HostError(403, f"Dataset {owner}/{slug} is still processing its latest version; try again later")
        uploads = [self.host.upload(item.token, user) for item in files]
        base = self.base(owner, slug)
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".version-", dir=base))  # not a number: not a version yet
        try:
            (staging / "files").mkdir()
            for upload in uploads:
                shutil.copyfile(upload, staging / "files" / upload.name)
            with self.host.lock:
                if record is not None:
                    taken = [self.dataset_id(*pair) for pair in self.datasets()]
                    atomic_write_json(base / "dataset.json", {**record, "id": max(taken, default=0) + 1})
                staging.rename(base / str(len(self.all_versions(owner, slug)) + 1))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return make(ApiCreateDatasetResponse, ref=f"{owner}/{slug}", status="ok",
                    url=f"{self.host.base_url}/datasets/{owner}/{slug}")

    def update(self, owner: str, slug: str, **changes) -> None:
        with self.host.lock:
            atomic_write_json(self.base(owner, slug) / "dataset.json", {**self.record(owner, slug), **changes})

    def delete(self, user: str, owner: str, slug: str) -> None:
        self.require(owner, slug, user)
        if owner != user:
            raise HostError(403, f"Permission 'datasets.delete' was denied for {owner}/{slug}")
        with self.host.lock:
            shutil.rmtree(self.base(owner, slug))
