"""Kernels and datasets on a hosted competition: store pushed kernels and datasets, run kernels locally.

A pushed kernel runs in a sandbox (tasks/host/sandbox.py) with Kaggle's 2026 input layout: its
competition under `input/competitions/<slug>/`, its datasets under `input/datasets/<owner>/<slug>/`
(an uploaded zip unpacked into a folder of its name), its outputs in `working/`, told to it by
HEADSTART_KAGGLE_INPUT and HEADSTART_KAGGLE_WORKING; no credentials, and no network (internet off).
Requests and responses are kagglesdk's types (tasks/host/rpc.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
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
from kagglesdk.kernels.types.kernels_api_service import (
    ApiGetKernelResponse,
    ApiGetKernelSessionStatusResponse,
    ApiKernelBlob,
    ApiKernelMetadata,
    ApiKernelSessionOutputFile,
    ApiListKernelSessionOutputResponse,
    ApiSaveKernelResponse,
)
from kagglesdk.kernels.types.kernels_enums import KernelWorkerStatus

from tasks.archives import unpack_archive
from tasks.files import atomic_write_json
from tasks.host.common import (
    MAX_DATASET_SLUG,
    MAX_TITLE,
    MIN_DATASET_SLUG,
    MIN_KERNEL_SLUG,
    OWNER,
    HostError,
    require_name,
)
from tasks.host.outputs import unservable
from tasks.host.rpc import make
from tasks.host.sandbox import kernel_refusal, run_kernel

KERNELS = "kernels.KernelsApiService/"
DATASETS = "datasets.DatasetApiService/"


def _version_number(label) -> int | None:
    """`3`, `"3"` or `"v3"` as 3; nothing as None (the latest); anything else a 400."""
    if not label:
        return None
    digits = str(label).removeprefix("v")
    if not digits.isdigit():
        raise HostError(400, f"Invalid version {str(label)[:20]!r}: a number, or v and a number")
    return int(digits)


def notebook_to_script(notebook_text: str) -> str:
    """The code cells of a notebook, one after another."""
    cells = json.loads(notebook_text).get("cells", [])
    sources = ["".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
               for cell in cells if cell.get("cell_type") == "code"]
    return "\n\n".join(sources) + "\n"


class KernelStore:
    """kernels/<owner>/<slug>/<version>/: kernel.json, the source, input/, working/ (its output), log."""

    def __init__(self, host):
        self.host, self.threads = host, []

    def base(self, owner: str, slug: str) -> Path:
        """kernels/<owner>/<slug>/, once both are valid Kaggle names (a 400 naming the field otherwise)."""
        require_name("owner", owner, OWNER)
        require_name("kernel slug", slug, min_length=MIN_KERNEL_SLUG)
        return self.host.store / "kernels" / owner / slug

    def directory(self, owner: str, slug: str, version: int | None = None) -> Path:
        base = self.base(owner, slug)
        if version is None:
            versions = sorted(int(path.name) for path in base.glob("*") if path.name.isdigit())
            if not versions:
                raise HostError(404, f"Kernel {owner}/{slug} not found")
            version = versions[-1]
        return base / str(int(version))

    def output_dir(self, owner: str, slug: str, version: int | None = None) -> Path:
        return self.directory(owner, slug, version) / "working"

    def output_file(self, owner: str, slug: str, version, file_name: str) -> Path:
        path = self.output_dir(owner, slug, _version_number(version)) / Path(file_name).name
        if path.is_symlink() or not path.is_file():  # outputs are copied out as files; never read through a link
            raise HostError(404, f"Kernel {owner}/{slug} has no output file {file_name!r}")
        return path

    def _invalid_sources(self, request) -> dict:
        datasets = self.host.datasets
        invalid = {"invalid_competition_sources": [name for name in request.competition_data_sources
                                                   if name != self.host.backend.name],
                   "invalid_dataset_sources": [ref for ref in request.dataset_data_sources
                                               if not datasets.exists_ref(ref)]}
        return {key: value for key, value in invalid.items() if value}

    def save(self, user: str, request) -> ApiSaveKernelResponse:
        owner, _, slug = (request.slug or "").partition("/")
        if owner != user or not slug:
            raise HostError(403, f"You can only push kernels as {user}/<slug>")
        base = self.base(owner, slug)  # before anything touches the disk: `alice/../../x` is a 400
        runs = getattr(request.kernel_execution_type, "name", "") != "QUICK_SAVE" and self.host.settings.run_kernels
        refusal = kernel_refusal(self.host.settings, self.host.backend.root) if runs else None
        if refusal:
            raise HostError(403, f"Kernel not run: {refusal}")
        if len(slug) > MAX_TITLE or len(request.new_title or "") > MAX_TITLE:
            raise HostError(500, "Internal error")  # what Kaggle answers for a title or slug over 50 characters
        # As Kaggle does: sources that cannot be attached are reported, not refused; the kernel runs without them.
        invalid = self._invalid_sources(request)
        with self.host.lock:
            version = len([path for path in base.glob("*") if path.name.isdigit()]) + 1
            directory = base / str(version)
            (directory / "working").mkdir(parents=True)
        source = "notebook.ipynb" if request.kernel_type == "notebook" else "script.py"
        (directory / source).write_text(request.text or "")
        fields = {key: value for key, value in request.to_dict().items() if key != "text"}
        record = {**fields, "source": source, "version": version, "status": "QUEUED", "failureMessage": ""}
        self._write(directory, record)
        if not runs:
            self._update(directory, status="COMPLETE")
        else:
            thread = threading.Thread(target=self._run, args=(directory,), daemon=True)
            self.threads.append(thread)
            thread.start()
        url = f"{self.host.base_url}/code/{owner}/{slug}"
        return make(ApiSaveKernelResponse, ref=f"/code/{owner}/{slug}", url=url, version_number=version,
                    kernel_id=version, **invalid)

    def _write(self, directory: Path, record: dict) -> None:
        atomic_write_json(directory / "kernel.json", record)

    def _update(self, directory: Path, **changes) -> None:
        with self.host.lock:
            self._write(directory, {**json.loads((directory / "kernel.json").read_text()), **changes})

    def record(self, owner: str, slug: str, version=None) -> dict:
        return json.loads((self.directory(owner, slug, _version_number(version)) / "kernel.json").read_text())

    def _mount_inputs(self, inputs: Path, record: dict) -> Path:
        """Kaggle's 2026 layout: input/competitions/<slug>/ and input/datasets/<owner>/<slug>/, zips unpacked."""
        inputs.mkdir()
        for name in record.get("competitionDataSources", []):
            if name == self.host.backend.name:
                self.host.backend.download(inputs / "competitions" / name)
        for ref in record.get("datasetDataSources", []):
            if self.host.datasets.exists_ref(ref):
                owner, slug, version = self.host.datasets.parse_ref(ref)
                self.host.datasets.mount(owner, slug, version, inputs / "datasets" / owner / slug)
        return inputs

    def _run(self, directory: Path) -> None:
        """Run a pushed kernel to completion (in the sandbox), recording its status and a Kaggle-style JSON log."""
        record = json.loads((directory / "kernel.json").read_text())
        self._update(directory, status="RUNNING")
        try:
            failure, stdout, stderr = self._run_in_scratch(directory, record)
            self._write_log(directory, stdout, stderr)
            self._update(directory, status="COMPLETE" if not failure else "ERROR", failureMessage=failure)
        except (OSError, HostError, ValueError) as error:
            self._update(directory, status="ERROR", failureMessage=getattr(error, "message", str(error)))

    def _run_in_scratch(self, directory: Path, record: dict) -> tuple[str, str, str]:
        """Run the kernel in a scratch folder of its own (its inputs, its source, its working folder), removed
        afterwards; only its outputs are kept, copied to `working/` of its version."""
        scratch_root = self.host.store / "scratch"
        scratch_root.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch_root) as scratch:
            inputs = self._mount_inputs(Path(scratch) / "input", record)
            script = Path(scratch) / "src" / "script.py"
            script.parent.mkdir()
            source = (directory / record["source"]).read_text()
            if record["source"].endswith(".ipynb"):
                script, source = script.with_name("__notebook__.py"), notebook_to_script(source)
            script.write_text(source)
            (Path(scratch) / "working").mkdir()
            return run_kernel(script, inputs, Path(scratch) / "working", directory, self.host.settings)

    def _write_log(self, directory: Path, stdout: str, stderr: str) -> None:
        now = time.time()
        lines = [{"stream_name": stream, "time": now, "data": line + "\n"}
                 for stream, text in (("stdout", stdout), ("stderr", stderr)) for line in text.splitlines()]
        (directory / "log.json").write_text(json.dumps(lines))

    def wait_all(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)

    def status(self, user: str, request) -> ApiGetKernelSessionStatusResponse:
        record = self.record(request.user_name, request.kernel_slug, request.version_label or None)
        return make(ApiGetKernelSessionStatusResponse, status=KernelWorkerStatus[record["status"]],
                    failure_message=record.get("failureMessage", ""))

    def output(self, user: str, request) -> ApiListKernelSessionOutputResponse:
        owner, slug = request.user_name, request.kernel_slug
        directory = self.directory(owner, slug, _version_number(request.version_label))
        version, working = int(directory.name), directory / "working"
        names = [path.relative_to(working).as_posix() for path in sorted(working.rglob("*"))
                 if path.is_file() and not path.is_symlink()]
        files = [make(ApiKernelSessionOutputFile, file_name=name,
                      url=self.host.file_url(user, f"kernel-output/{owner}/{slug}/{version}/{name}"))
                 for name in names if unservable(name) is None]
        log = (directory / "log.json").read_text() if (directory / "log.json").is_file() else ""
        return make(ApiListKernelSessionOutputResponse, files=files, log=log)

    def pull(self, user: str, request) -> ApiGetKernelResponse:
        directory = self.directory(request.user_name, request.kernel_slug)
        record = json.loads((directory / "kernel.json").read_text())
        language, kernel_type = record.get("language"), record.get("kernelType")
        return make(ApiGetKernelResponse,
                    metadata=make(ApiKernelMetadata, ref=record["slug"], title=record.get("newTitle", ""),
                                  language=language, kernel_type=kernel_type,
                                  current_version_number=int(directory.name)),
                    blob=make(ApiKernelBlob, source=(directory / record["source"]).read_text(), language=language,
                              kernel_type=kernel_type, slug=record["slug"]))


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
        return sorted(int(path.name) for path in self.base(owner, slug).glob("*") if path.name.isdigit())

    def exists(self, owner: str, slug: str) -> bool:
        return bool(self.versions(owner, slug))

    @staticmethod
    def parse_ref(ref: str) -> tuple[str, str, int | None]:
        """`owner/slug` or `owner/slug/N` (a pinned version), as kernel metadata names datasets."""
        owner, _, rest = ref.partition("/")
        slug, _, version = rest.partition("/")
        return owner, slug, int(version) if version.isdigit() else None

    def exists_ref(self, ref: str) -> bool:
        owner, slug, version = self.parse_ref(ref)
        try:
            versions = self.versions(owner, slug)
        except HostError:  # not a valid name: reported as a source that cannot be attached, as Kaggle does
            return False
        return bool(versions) and (version is None or version in versions)

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

    def _require(self, owner: str, slug: str) -> None:
        if not self.exists(owner, slug):
            raise HostError(404, f"Dataset {owner}/{slug} not found")

    def status(self, user: str, request) -> ApiGetDatasetStatusResponse:
        self._require(request.owner_slug, request.dataset_slug)
        processing = self._processing(request.owner_slug, request.dataset_slug)
        return make(ApiGetDatasetStatusResponse, status=DatabundleVersionStatus.BLOBS_RECEIVED if processing
                    else DatabundleVersionStatus.READY)

    def get(self, user: str, request) -> ApiDataset:
        owner, slug = request.owner_slug, request.dataset_slug
        self._require(owner, slug)
        return make(ApiDataset, ref=f"{owner}/{slug}", url=f"{self.host.base_url}/datasets/{owner}/{slug}",
                    title=slug, owner_ref=owner, current_version_number=self.versions(owner, slug)[-1])

    def _add_version(self, user: str, owner: str, slug: str, files: list) -> ApiCreateDatasetResponse:
        if owner != user:
            raise HostError(403, f"You can only write datasets as {user}/<slug>")
        if self._processing(owner, slug):  # Kaggle refuses a new version while the last one is processed
            raise HostError(403, f"Dataset {owner}/{slug} is still processing its latest version; try again later")
        with self.host.lock:
            version = len(self.versions(owner, slug)) + 1
            target = self.base(owner, slug) / str(version) / "files"
            target.mkdir(parents=True)
        for item in files:
            upload = self.host.upload(item.token, user)
            shutil.copyfile(upload, target / upload.name)
        return make(ApiCreateDatasetResponse, ref=f"{owner}/{slug}", status="ok",
                    url=f"{self.host.base_url}/datasets/{owner}/{slug}")

    def create(self, user: str, request) -> ApiCreateDatasetResponse:
        owner, slug = request.owner_slug, request.slug
        if self.exists(owner, slug):
            return make(ApiCreateDatasetResponse, status="error",
                        error=f"The requested slug {slug!r} is already in use")
        return self._add_version(user, owner, slug, request.files)

    def create_version(self, user: str, request) -> ApiCreateDatasetResponse:
        self._require(request.owner_slug, request.dataset_slug)
        return self._add_version(user, request.owner_slug, request.dataset_slug, request.body.files)


def _start_blob_upload(host, user: str, request) -> ApiStartBlobUploadResponse:
    token, url = host.new_upload(user, request.name or "blob")
    return make(ApiStartBlobUploadResponse, token=token, create_url=url)


KERNEL_ROUTES = {
    KERNELS + "SaveKernel": lambda host, user, request: host.kernels.save(user, request),
    KERNELS + "GetKernelSessionStatus": lambda host, user, request: host.kernels.status(user, request),
    KERNELS + "ListKernelSessionOutput": lambda host, user, request: host.kernels.output(user, request),
    KERNELS + "GetKernel": lambda host, user, request: host.kernels.pull(user, request),
}
DATASET_ROUTES = {
    DATASETS + "GetDatasetStatus": lambda host, user, request: host.datasets.status(user, request),
    DATASETS + "GetDataset": lambda host, user, request: host.datasets.get(user, request),
    DATASETS + "CreateDataset": lambda host, user, request: host.datasets.create(user, request),
    DATASETS + "CreateDatasetVersion": lambda host, user, request: host.datasets.create_version(user, request),
    "blobs.BlobApiService/StartBlobUpload": _start_blob_upload,
}
