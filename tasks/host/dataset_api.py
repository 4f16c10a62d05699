"""The dataset RPCs `kaggle datasets ...` makes, answered from the host's DatasetStore under its one access rule
(owner, or public): status, list, files, download, metadata (read and update), create, version (by ref or by id),
delete, and the blob uploads they use.

Field names are kagglesdk's (datasets/types/dataset_api_service.py); `kaggle datasets metadata --update` sends
isPrivate only when true (its default is omitted from the JSON), so an update never changes who may read a dataset.
"""

from __future__ import annotations

import zipfile
from datetime import datetime, timezone

from kagglesdk.blobs.types.blob_api_service import ApiStartBlobUploadResponse
from kagglesdk.datasets.types.dataset_api_service import (
    ApiCreateDatasetResponse,
    ApiDataset,
    ApiDatasetFile,
    ApiDeleteDatasetResponse,
    ApiGetDatasetMetadataResponse,
    ApiGetDatasetStatusResponse,
    ApiListDatasetFilesResponse,
    ApiListDatasetsResponse,
    ApiUpdateDatasetMetadataResponse,
)
from kagglesdk.datasets.types.dataset_enums import DatabundleVersionStatus
from kagglesdk.datasets.types.dataset_types import DatasetInfo, SettingsLicense

from tasks.host.common import HostError, Redirect, may_read, page_of
from tasks.host.datasets import DATASETS, METADATA_KEYS
from tasks.host.rpc import make, naive_utc


def _modified(path) -> datetime:
    return naive_utc(datetime.fromtimestamp(path.stat().st_mtime, timezone.utc))


def dataset_object(host, owner: str, slug: str) -> ApiDataset:
    record, store = host.datasets.record(owner, slug), host.datasets
    files = store.files_dir(owner, slug)
    return make(ApiDataset, id=store.dataset_id(owner, slug), ref=f"{owner}/{slug}",
                url=f"{host.base_url}/datasets/{owner}/{slug}", title=record.get("title") or slug,
                subtitle=record.get("subtitle") or "", owner_ref=owner, owner_name=owner, creator_name=owner,
                is_private=record.get("isPrivate", True), license_name=(record.get("licenses") or [""])[0],
                current_version_number=store.versions(owner, slug)[-1], last_updated=_modified(files),
                total_bytes=sum(path.stat().st_size for path in files.iterdir()))


def status(host, user: str, request) -> ApiGetDatasetStatusResponse:
    host.datasets.require(request.owner_slug, request.dataset_slug, user)
    processing = host.datasets.processing(request.owner_slug, request.dataset_slug)
    return make(ApiGetDatasetStatusResponse, status=DatabundleVersionStatus.BLOBS_RECEIVED if processing
                else DatabundleVersionStatus.READY)


def get(host, user: str, request) -> ApiDataset:
    host.datasets.require(request.owner_slug, request.dataset_slug, user)
    return dataset_object(host, request.owner_slug, request.dataset_slug)


def list_datasets(host, user: str, request) -> ApiListDatasetsResponse:
    """The datasets this user may read: all of them, theirs (`-m`), a user's, or those a search names; in pages."""
    mine = getattr(request.group, "name", "").startswith("DATASET_SELECTION_GROUP_MY")
    found = [(owner, slug) for owner, slug in host.datasets.datasets()
             if may_read(user, owner, host.datasets.private(owner, slug)) and (not mine or owner == user)
             and (not request.user or owner == request.user)
             and (not request.search or request.search.lower() in f"{slug} {host.datasets.record(owner, slug)}".lower())]
    if request.page and not request.page_token:  # the CLI's -p N
        request.page_token = str((request.page - 1) * (request.page_size or 20))
    page, token = page_of(found, request)
    return make(ApiListDatasetsResponse, datasets=[dataset_object(host, *pair) for pair in page], next_page_token=token)


def list_files(host, user: str, request) -> ApiListDatasetFilesResponse:
    owner, slug = request.owner_slug, request.dataset_slug
    host.datasets.require(owner, slug, user)
    folder = host.datasets.files_dir(owner, slug, request.dataset_version_number or None)
    page, token = page_of(sorted(folder.iterdir()), request)
    return make(ApiListDatasetFilesResponse, next_page_token=token, dataset_files=[
        make(ApiDatasetFile, ref=path.name, name=path.name, dataset_ref=f"{owner}/{slug}", owner_ref=owner,
             total_bytes=path.stat().st_size, creation_date=_modified(path)) for path in page])


def download(host, user: str, request) -> Redirect:
    """A signed URL to one file of a version, or to the version's files zipped (`<slug>.zip`)."""
    owner, slug = request.owner_slug, request.dataset_slug
    host.datasets.require(owner, slug, user)
    folder = host.datasets.files_dir(owner, slug, request.dataset_version_number or None)
    version = folder.parent.name
    if request.file_name:
        if not (folder / request.file_name).is_file() or "/" in request.file_name:
            raise HostError(404, f"File {request.file_name[:60]!r} not found in {owner}/{slug}")
        return Redirect(host.file_url(user, f"dataset-files/{owner}/{slug}/{version}/files/{request.file_name}"))
    return Redirect(host.file_url(user, f"dataset-files/{owner}/{slug}/{version}/{slug}.zip"))


def version_zip(host, owner: str, slug: str, version: int):
    """The version's files as one zip, made once (the store's, never a path a request names)."""
    folder = host.datasets.files_dir(owner, slug, version)
    archive = host.store / "dataset-zips" / owner / slug / f"{version}.zip"
    with host.lock:
        if not archive.is_file():
            archive.parent.mkdir(parents=True, exist_ok=True)
            partial = archive.with_suffix(".part")
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zipped:
                for path in sorted(folder.iterdir()):
                    zipped.write(path, path.name)
            partial.replace(archive)
    return archive


def metadata(host, user: str, request) -> ApiGetDatasetMetadataResponse:
    owner, slug = request.owner_slug, request.dataset_slug
    host.datasets.require(owner, slug, user)
    record = host.datasets.record(owner, slug)
    info = make(DatasetInfo, dataset_id=host.datasets.dataset_id(owner, slug), dataset_slug=slug, owner_user=owner,
                title=record.get("title") or slug, subtitle=record.get("subtitle") or "",
                description=record.get("description") or "", is_private=record.get("isPrivate", True),
                keywords=list(record.get("keywords") or []),
                licenses=[make(SettingsLicense, name=name) for name in record.get("licenses") or []])
    return make(ApiGetDatasetMetadataResponse, info=info)


def update_metadata(host, user: str, request) -> ApiUpdateDatasetMetadataResponse:
    owner, slug, settings = request.owner_slug, request.dataset_slug, request.settings
    host.datasets.require_owner(owner, slug, user)
    errors = [] if not settings.title or 6 <= len(settings.title) <= 50 else ["title must be 6 to 50 characters"]
    if not errors:
        changes = {"title": settings.title, "subtitle": settings.subtitle, "description": settings.description,
                   "keywords": list(settings.keywords or []), "licenses": [item.name for item in settings.licenses]}
        host.datasets.update(owner, slug, **{key: value for key, value in changes.items() if value})
        if settings.is_private:
            host.datasets.update(owner, slug, isPrivate=True)
    return make(ApiUpdateDatasetMetadataResponse, errors=errors)


def create(host, user: str, request) -> ApiCreateDatasetResponse:
    owner, slug = request.owner_slug, request.slug
    if host.datasets.exists(owner, slug):
        return make(ApiCreateDatasetResponse, status="error", error=f"The requested slug {slug!r} is already in use")
    record = {"isPrivate": bool(request.is_private), "title": request.title, "subtitle": request.subtitle,
              "description": request.description, "keywords": list(request.category_ids or []),
              "licenses": [request.license_name] if request.license_name else []}
    return host.datasets.add_version(user, owner, slug, request.files,
                                     {key: value for key, value in record.items() if key in (*METADATA_KEYS,
                                                                                            "isPrivate")})


def create_version(host, user: str, request) -> ApiCreateDatasetResponse:
    host.datasets.require(request.owner_slug, request.dataset_slug, user)
    return host.datasets.add_version(user, request.owner_slug, request.dataset_slug, request.body.files)


def create_version_by_id(host, user: str, request) -> ApiCreateDatasetResponse:
    """`id_no` in dataset-metadata.json: the same, the dataset named by its number."""
    owner, slug = host.datasets.by_id(request.id)
    host.datasets.require(owner, slug, user)
    return host.datasets.add_version(user, owner, slug, request.body.files)


def delete(host, user: str, request) -> ApiDeleteDatasetResponse:
    host.datasets.delete(user, request.owner_slug, request.dataset_slug)
    return make(ApiDeleteDatasetResponse)


def start_blob_upload(host, user: str, request) -> ApiStartBlobUploadResponse:
    token, url = host.new_upload(user, request.name or "blob")
    return make(ApiStartBlobUploadResponse, token=token, create_url=url)


DATASET_ROUTES = {**{DATASETS + name: handler for name, handler in {
    "GetDatasetStatus": status, "GetDataset": get, "ListDatasets": list_datasets, "ListDatasetFiles": list_files,
    "DownloadDataset": download, "GetDatasetMetadata": metadata, "UpdateDatasetMetadata": update_metadata,
    "CreateDataset": create, "CreateDatasetVersion": create_version, "CreateDatasetVersionById": create_version_by_id,
    "DeleteDataset": delete}.items()}, "blobs.BlobApiService/StartBlobUpload": start_blob_upload}
