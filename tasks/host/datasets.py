"""Datasets on a hosted competition: versions of uploaded files, read by their owner, or by anyone when public.

Requests and responses are kagglesdk's types (tasks/host/rpc.py); a kernel mounts a dataset's files
(tasks/host/kernels.py) under the same access rule as the API.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from kagglesdk.blobs.types.blob_api_service import ApiStartBlobUploadResponse
from kagglesdk.datasets.types.dataset_api_service import (
    ApiCreateDatasetResponse,
    ApiDataset,
    ApiGetDatasetStatusResponse,
)
from kagglesdk.datasets.types.dataset_enums import DatabundleVersionStatus

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


class DatasetStore:
    """datasets/<owner>/<slug>/<version>/files/: what was uploaded for each version."""

    def __init__(self, host):
        self.host = host

    def base(self, owner: str, slug: str) -> Path:
        """datasets/<owner>/<slug>/, once both are valid Kaggle names (a 400 naming the field otherwise)."""
        require_name("owner", owner, OWNER)
        require_name("dataset slug", slug, min_length=MIN_DATASET_SLUG, max_length=MAX_DATASET_SLUG)
        return self.host.store / "datasets" / owner / slug

    def versions(self, owner: str, slug: str) -> list[int]:
        names = [path.name for path in self.base(owner, slug).glob("*")]
        return sorted(number(name) for name in names if number(name) is not None)

    def exists(self, owner: str, slug: str) -> bool:
        return bool(self.versions(owner, slug))

    @staticmethod
    def parse_ref(ref: str) -> tuple[str, str, int | None]:
        """`owner/slug` or `owner/slug/N` (a pinned version), as kernel metadata names datasets."""
        owner, _, rest = ref.partition("/")
        slug, _, version = rest.partition("/")
        return owner, slug, number(version)

    def private(self, owner: str, slug: str) -> bool:
        """Whether only its owner may read it (as created; a dataset without that record is private)."""
        record = self.base(owner, slug) / "dataset.json"
        return json.loads(record.read_text()).get("isPrivate", True) if record.is_file() else True

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

    def _processing(self, owner: str, slug: str) -> bool:
        """Whether the newest version is still being processed (`dataset_processing_seconds` after its upload)."""
        versions = self.versions(owner, slug)
        if not versions:
            return False
        age = time.time() - (self.base(owner, slug) / str(versions[-1])).stat().st_mtime
        return age < self.host.settings.dataset_processing_seconds

    def _require(self, owner: str, slug: str, user: str) -> None:
        """A 404 for a dataset that does not exist, a 403 for one this user may not read."""
        if not self.exists(owner, slug):
            raise HostError(404, f"Dataset {owner}/{slug} not found")
        if not may_read(user, owner, self.private(owner, slug)):
            raise HostError(403, f"Permission 'datasets.get' was denied for {owner}/{slug}")

    def status(self, user: str, request) -> ApiGetDatasetStatusResponse:
        self._require(request.owner_slug, request.dataset_slug, user)
        processing = self._processing(request.owner_slug, request.dataset_slug)
        return make(ApiGetDatasetStatusResponse, status=DatabundleVersionStatus.BLOBS_RECEIVED if processing
                    else DatabundleVersionStatus.READY)

    def get(self, user: str, request) -> ApiDataset:
        owner, slug = request.owner_slug, request.dataset_slug
        self._require(owner, slug, user)
        return make(ApiDataset, ref=f"{owner}/{slug}", url=f"{self.host.base_url}/datasets/{owner}/{slug}",
                    title=slug, owner_ref=owner, current_version_number=self.versions(owner, slug)[-1])

    def _add_version(self, user: str, owner: str, slug: str, files: list, private: bool | None = None
                     ) -> ApiCreateDatasetResponse:
        """A new version of these uploads, whole or not at all: every token is checked before anything is
        written, and the version appears by one rename (a failed CreateDataset leaves no dataset, its slug free)."""
        if owner != user:
            raise HostError(403, f"You can only write datasets as {user}/<slug>")
        if self._processing(owner, slug):  # Kaggle refuses a new version while the last one is processed
            raise HostError(403, f"Dataset {owner}/{slug} is still processing its latest version; try again later")
        uploads = [self.host.upload(item.token, user) for item in files]
        base = self.base(owner, slug)
        base.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".version-", dir=base))  # not a number: not a version yet
        try:
            (staging / "files").mkdir()
            for upload in uploads:
                shutil.copyfile(upload, staging / "files" / upload.name)
            if private is not None:
                atomic_write_json(base / "dataset.json", {"isPrivate": private})
            with self.host.lock:
                staging.rename(base / str(len(self.versions(owner, slug)) + 1))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return make(ApiCreateDatasetResponse, ref=f"{owner}/{slug}", status="ok",
                    url=f"{self.host.base_url}/datasets/{owner}/{slug}")

    def create(self, user: str, request) -> ApiCreateDatasetResponse:
        owner, slug = request.owner_slug, request.slug
        if self.exists(owner, slug):
            return make(ApiCreateDatasetResponse, status="error",
                        error=f"The requested slug {slug!r} is already in use")
        return self._add_version(user, owner, slug, request.files, private=bool(request.is_private))

    def create_version(self, user: str, request) -> ApiCreateDatasetResponse:
        self._require(request.owner_slug, request.dataset_slug, user)
        return self._add_version(user, request.owner_slug, request.dataset_slug, request.body.files)


def _start_blob_upload(host, user: str, request) -> ApiStartBlobUploadResponse:
    token, url = host.new_upload(user, request.name or "blob")
    return make(ApiStartBlobUploadResponse, token=token, create_url=url)


def _start_blob_upload(host, user: str, request) -> ApiStartBlobUploadResponse:
    token, url = host.new_upload(user, request.name or "blob")
    return make(ApiStartBlobUploadResponse, token=token, create_url=url)


DATASET_ROUTES = {
    DATASETS + "GetDatasetStatus": lambda host, user, request: host.datasets.status(user, request),
    DATASETS + "GetDataset": lambda host, user, request: host.datasets.get(user, request),
    DATASETS + "CreateDataset": lambda host, user, request: host.datasets.create(user, request),
    DATASETS + "CreateDatasetVersion": lambda host, user, request: host.datasets.create_version(user, request),
    "blobs.BlobApiService/StartBlobUpload": _start_blob_upload,
}
