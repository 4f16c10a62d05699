"""Kernels and datasets on a hosted competition: store pushed kernels and datasets, run kernels locally.

A pushed kernel runs in a subprocess with a simulated Kaggle layout: its attached competition and
datasets under `input/`, its outputs in `working/`, told to it by HEADSTART_KAGGLE_INPUT and
HEADSTART_KAGGLE_WORKING; no credentials, and the network pointed at a dead proxy (internet off).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from tasks.files import atomic_write_json
from tasks.host.common import HostError

KERNELS = "kernels.KernelsApiService/"
DATASETS = "datasets.DatasetApiService/"
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: refuses connections, as a notebook without internet


def _version_number(label) -> int | None:
    return int(str(label).lstrip("v")) if label else None


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

    def directory(self, owner: str, slug: str, version: int | None = None) -> Path:
        base = self.host.store / "kernels" / Path(owner).name / Path(slug).name
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
        if not path.is_file():
            raise HostError(404, f"Kernel {owner}/{slug} has no output file {file_name!r}")
        return path

    def _invalid_sources(self, request: dict) -> dict:
        datasets = self.host.datasets
        invalid = {"invalidCompetitionSources": [name for name in request.get("competitionDataSources", [])
                                                 if name != self.host.backend.name],
                   "invalidDatasetSources": [ref for ref in request.get("datasetDataSources", [])
                                             if not datasets.exists(*ref.split("/")[:2])]}
        return {key: value for key, value in invalid.items() if value}

    def save(self, user: str, request: dict) -> dict:
        owner, _, slug = (request.get("slug") or "").partition("/")
        if owner != user or not slug:
            raise HostError(403, f"You can only push kernels as {user}/<slug>")
        # As Kaggle does: sources that cannot be attached are reported, not refused; the kernel runs without them.
        invalid = self._invalid_sources(request)
        with self.host.lock:
            base = self.host.store / "kernels" / owner / slug
            version = len([path for path in base.glob("*") if path.name.isdigit()]) + 1
            directory = base / str(version)
            (directory / "working").mkdir(parents=True)
        source = "notebook.ipynb" if request.get("kernelType") == "notebook" else "script.py"
        (directory / source).write_text(request.get("text", ""))
        record = {**{key: value for key, value in request.items() if key != "text"}, "source": source,
                  "version": version, "status": "QUEUED", "failureMessage": ""}
        self._write(directory, record)
        if request.get("kernelExecutionType") == "QUICK_SAVE" or not self.host.settings.run_kernels:
            self._update(directory, status="COMPLETE")
        else:
            thread = threading.Thread(target=self._run, args=(directory,), daemon=True)
            self.threads.append(thread)
            thread.start()
        url = f"{self.host.base_url}/code/{owner}/{slug}"
        return {"ref": f"/code/{owner}/{slug}", "url": url, "versionNumber": version, "kernelId": version, **invalid}

    def _write(self, directory: Path, record: dict) -> None:
        atomic_write_json(directory / "kernel.json", record)

    def _update(self, directory: Path, **changes) -> None:
        with self.host.lock:
            self._write(directory, {**json.loads((directory / "kernel.json").read_text()), **changes})

    def record(self, owner: str, slug: str, version=None) -> dict:
        return json.loads((self.directory(owner, slug, _version_number(version)) / "kernel.json").read_text())

    def _mount_inputs(self, directory: Path, record: dict) -> Path:
        inputs = directory / "input"
        for name in record.get("competitionDataSources", []):
            self.host.backend.download(inputs / name)
        for ref in record.get("datasetDataSources", []):
            owner, slug, *version = ref.split("/")
            shutil.copytree(self.host.datasets.files_dir(owner, slug, int(version[0]) if version else None),
                            inputs / slug, dirs_exist_ok=True)
        return inputs

    def _environment(self, directory: Path, inputs: Path) -> dict:
        home = directory / "home"
        home.mkdir(exist_ok=True)
        keep = {name: os.environ[name] for name in ("PATH", "LANG", "TF_CPP_MIN_LOG_LEVEL") if name in os.environ}
        return {**keep, "HOME": str(home), "PYTHONUNBUFFERED": "1", "KAGGLE_KERNEL_RUN_TYPE": "Batch",
                "HEADSTART_KAGGLE_INPUT": str(inputs), "HEADSTART_KAGGLE_WORKING": str(directory / "working"),
                "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "http_proxy": DEAD_PROXY,
                "https_proxy": DEAD_PROXY, "NO_PROXY": "", "no_proxy": ""}

    def _run(self, directory: Path) -> None:
        """Run a pushed kernel to completion, recording its status and a Kaggle-style JSON log."""
        record = json.loads((directory / "kernel.json").read_text())
        self._update(directory, status="RUNNING")
        try:
            inputs = self._mount_inputs(directory, record)
            script = directory / record["source"]
            if record["source"].endswith(".ipynb"):
                script = directory / "__notebook__.py"
                script.write_text(notebook_to_script((directory / record["source"]).read_text()))
            result = subprocess.run([sys.executable, str(script)], cwd=directory / "working", capture_output=True,
                                    text=True, env=self._environment(directory, inputs),
                                    timeout=self.host.settings.kernel_timeout)
            self._write_log(directory, result.stdout, result.stderr)
            failure = "" if result.returncode == 0 else (result.stderr.strip().splitlines() or ["failed"])[-1]
            self._update(directory, status="COMPLETE" if not failure else "ERROR", failureMessage=failure)
        except (OSError, subprocess.SubprocessError, HostError, ValueError) as error:
            self._update(directory, status="ERROR", failureMessage=str(error))

    def _write_log(self, directory: Path, stdout: str, stderr: str) -> None:
        now = time.time()
        lines = [{"stream_name": stream, "time": now, "data": line + "\n"}
                 for stream, text in (("stdout", stdout), ("stderr", stderr)) for line in text.splitlines()]
        (directory / "log.json").write_text(json.dumps(lines))

    def wait_all(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)

    def status(self, user: str, request: dict) -> dict:
        record = self.record(request.get("userName", ""), request.get("kernelSlug", ""), request.get("versionLabel"))
        return {"status": record["status"], "failureMessage": record.get("failureMessage", "")}

    def output(self, user: str, request: dict) -> dict:
        owner, slug = request.get("userName", ""), request.get("kernelSlug", "")
        directory = self.directory(owner, slug, _version_number(request.get("versionLabel")))
        version, working = int(directory.name), directory / "working"
        files = [{"fileName": path.relative_to(working).as_posix(),
                  "url": self.host.file_url(f"kernel-output/{owner}/{slug}/{version}/"
                                            f"{path.relative_to(working).as_posix()}")}
                 for path in sorted(working.rglob("*")) if path.is_file()]
        log = (directory / "log.json").read_text() if (directory / "log.json").is_file() else ""
        return {"files": files, "log": log}

    def pull(self, user: str, request: dict) -> dict:
        directory = self.directory(request.get("userName", ""), request.get("kernelSlug", ""))
        record = json.loads((directory / "kernel.json").read_text())
        return {"metadata": {"ref": record["slug"], "title": record.get("newTitle", ""),
                             "language": record.get("language"), "kernelType": record.get("kernelType")},
                "blob": {"source": (directory / record["source"]).read_text(), "language": record.get("language"),
                         "kernelType": record.get("kernelType"), "slug": record["slug"]}}


class DatasetStore:
    """datasets/<owner>/<slug>/<version>/files/: what was uploaded for each version."""

    def __init__(self, host):
        self.host = host

    def base(self, owner: str, slug: str) -> Path:
        return self.host.store / "datasets" / Path(owner).name / Path(slug).name

    def exists(self, owner: str, slug: str) -> bool:
        return self.base(owner, slug).is_dir()

    def files_dir(self, owner: str, slug: str, version: int | None = None) -> Path:
        versions = sorted(int(path.name) for path in self.base(owner, slug).glob("*") if path.name.isdigit())
        if not versions or (version is not None and version not in versions):
            raise HostError(404, f"Dataset {owner}/{slug} (version {version or 'latest'}) not found")
        return self.base(owner, slug) / str(version or versions[-1]) / "files"

    def _processing(self, owner: str, slug: str) -> bool:
        """Whether the newest version is still being processed (`dataset_processing_seconds` after its upload)."""
        versions = sorted((int(path.name), path) for path in self.base(owner, slug).glob("*") if path.name.isdigit())
        if not versions:
            return False
        age = time.time() - versions[-1][1].stat().st_mtime
        return age < self.host.settings.dataset_processing_seconds

    def status(self, user: str, request: dict) -> dict:
        owner, slug = request.get("ownerSlug", ""), request.get("datasetSlug", "")
        if not self.exists(owner, slug):
            raise HostError(404, f"Dataset {owner}/{slug} not found")
        return {"status": "BLOBS_RECEIVED" if self._processing(owner, slug) else "READY"}

    def _add_version(self, user: str, owner: str, slug: str, files: list[dict]) -> dict:
        if owner != user:
            raise HostError(403, f"You can only write datasets as {user}/<slug>")
        if self._processing(owner, slug):  # Kaggle refuses a new version while the last one is processed
            raise HostError(403, f"Dataset {owner}/{slug} is still processing its latest version; try again later")
        with self.host.lock:
            version = len([path for path in self.base(owner, slug).glob("*") if path.name.isdigit()]) + 1
            target = self.base(owner, slug) / str(version) / "files"
            target.mkdir(parents=True)
        for item in files:
            upload = self.host.upload(item.get("token", ""), user)
            shutil.copyfile(upload, target / upload.name)
        return {"ref": f"{owner}/{slug}", "url": f"{self.host.base_url}/datasets/{owner}/{slug}", "status": "ok"}

    def create(self, user: str, request: dict) -> dict:
        owner, slug = request.get("ownerSlug", ""), request.get("slug", "")
        if self.exists(owner, slug):
            return {"status": "error", "error": f"The requested slug {slug!r} is already in use"}
        return self._add_version(user, owner, slug, request.get("files", []))

    def create_version(self, user: str, request: dict) -> dict:
        owner, slug = request.get("ownerSlug", ""), request.get("datasetSlug", "")
        if not self.exists(owner, slug):
            raise HostError(404, f"Dataset {owner}/{slug} not found")
        return self._add_version(user, owner, slug, request.get("body", {}).get("files", []))


def _start_blob_upload(host, user: str, request: dict) -> dict:
    return host.new_upload(user, request.get("name") or "blob")


KERNEL_ROUTES = {
    KERNELS + "SaveKernel": lambda host, user, request: host.kernels.save(user, request),
    KERNELS + "GetKernelSessionStatus": lambda host, user, request: host.kernels.status(user, request),
    KERNELS + "ListKernelSessionOutput": lambda host, user, request: host.kernels.output(user, request),
    KERNELS + "GetKernel": lambda host, user, request: host.kernels.pull(user, request),
}
DATASET_ROUTES = {
    DATASETS + "GetDatasetStatus": lambda host, user, request: host.datasets.status(user, request),
    DATASETS + "CreateDataset": lambda host, user, request: host.datasets.create(user, request),
    DATASETS + "CreateDatasetVersion": lambda host, user, request: host.datasets.create_version(user, request),
    "blobs.BlobApiService/StartBlobUpload": _start_blob_upload,
}
