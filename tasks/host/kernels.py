"""Kernels on a hosted competition: store pushed kernels, run them locally (datasets: tasks/host/datasets.py).

A pushed kernel runs in a sandbox (tasks/host/sandbox.py) with Kaggle's 2026 input layout: its
competition under `input/competitions/<slug>/`, its datasets under `input/datasets/<owner>/<slug>/`
(an uploaded zip unpacked into a folder of its name), its outputs in `working/`, told to it by
HEADSTART_KAGGLE_INPUT and HEADSTART_KAGGLE_WORKING; no credentials, and no network (internet off). It
mounts only what its owner may read (owner, or public; the competition once its rules are accepted), the
same rule the RPCs apply; the others wait, QUEUED, while `kernels_at_once` run.
Requests and responses are kagglesdk's types (tasks/host/rpc.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

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

from tasks.files import atomic_write_json
from tasks.host.common import MAX_TITLE, MIN_KERNEL_SLUG, OWNER, HostError, may_read, number, require_name
from tasks.host.outputs import unservable
from tasks.host.rpc import make
from tasks.host.sandbox import kernel_refusal, run_kernel

KERNELS = "kernels.KernelsApiService/"


def _version_number(label) -> int | None:
    """`3`, `"3"` or `"v3"` as 3; nothing as None (the latest); anything else a 400."""
    if not label:
        return None
    version = number(str(label).removeprefix("v"))
    if version is None:
        raise HostError(400, f"Invalid version {str(label)[:20]!r}: a number, or v and a number")
    return version


def _cell_source(cell) -> str | None:
    """A code cell's source as text (a string, or a list of strings); None for a cell of another type."""
    if not isinstance(cell, dict):
        raise ValueError("the notebook has a cell that is not a JSON object")
    if cell.get("cell_type") != "code":
        return None
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        source = "".join(source)
    if not isinstance(source, str):
        raise ValueError("the notebook has a code cell whose source is not text")
    return source


def notebook_to_script(notebook_text: str) -> str:
    """The code cells of a notebook, one after another; a ValueError naming what is wrong with one that is not a
    notebook (a kernel is then an ERROR, not a thread that died)."""
    try:
        notebook = json.loads(notebook_text)
    except ValueError as error:
        raise ValueError(f"the notebook is not JSON ({error})") from None
    cells = notebook.get("cells", []) if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise ValueError("the notebook is not a JSON object with a list of cells")
    sources = [source for source in map(_cell_source, cells) if source is not None]
    return "\n\n".join(sources) + "\n"


class KernelStore:
    """kernels/<owner>/<slug>/<version>/: kernel.json, the source, working/ (its outputs, as copied out of the
    sandbox), log.json, stdout.txt and stderr.txt. While it runs, its inputs and working folder are in scratch/."""

    def __init__(self, host):
        self.host, self.threads = host, []
        self.slots = threading.BoundedSemaphore(host.settings.kernels_at_once)  # the rest wait, QUEUED
        self._recover()

    def _recover(self) -> None:
        """What a host that stopped mid-run left: its kernels are ERRORs (not RUNNING forever), its scratch gone."""
        shutil.rmtree(self.host.store / "scratch", ignore_errors=True)
        for path in self.host.store.glob("kernels/*/*/*/kernel.json"):
            if json.loads(path.read_text()).get("status") in ("QUEUED", "RUNNING"):
                self._update(path.parent, status="ERROR", failureMessage="the host stopped before this kernel ended")

    def base(self, owner: str, slug: str) -> Path:
        """kernels/<owner>/<slug>/, once both are valid Kaggle names (a 400 naming the field otherwise)."""
        require_name("owner", owner, OWNER)
        require_name("kernel slug", slug, min_length=MIN_KERNEL_SLUG)
        return self.host.store / "kernels" / owner / slug

    def directory(self, owner: str, slug: str, version: int | None = None) -> Path:
        """A version's folder (the latest when `version` is None); a 404 for one that does not exist."""
        base = self.base(owner, slug)
        if version is None:
            names = [path.name for path in base.glob("*") if (path / "kernel.json").is_file()]
            versions = sorted(number(name) for name in names if number(name) is not None)
            if not versions:
                raise HostError(404, f"Kernel {owner}/{slug} not found")
            version = versions[-1]
        if not (base / str(version) / "kernel.json").is_file():
            raise HostError(404, f"Kernel {owner}/{slug} has no version {version}")
        return base / str(version)

    def output_dir(self, owner: str, slug: str, version: int | None = None) -> Path:
        return self.directory(owner, slug, version) / "working"

    def output_file(self, owner: str, slug: str, version, file_name: str) -> Path:
        path = self.output_dir(owner, slug, _version_number(version)) / Path(file_name).name
        if path.is_symlink() or not path.is_file():  # outputs are copied out as files; never read through a link
            raise HostError(404, f"Kernel {owner}/{slug} has no output file {file_name!r}")
        return path

    def _competition_mountable(self, user: str, name: str) -> bool:
        return name == self.host.backend.name and self.host.rules_accepted(user)

    def _invalid_sources(self, user: str, request) -> dict:
        """The sources this user's kernel may not have mounted: unknown, another's private dataset, or the
        competition before its rules are accepted."""
        invalid = {"invalid_competition_sources": [name for name in request.competition_data_sources
                                                   if not self._competition_mountable(user, name)],
                   "invalid_dataset_sources": [ref for ref in request.dataset_data_sources
                                               if not self.host.datasets.mountable(user, ref)]}
        return {key: value for key, value in invalid.items() if value}

    def readable(self, user: str, owner: str, slug: str, version=None) -> Path:
        """A version's folder, once the user may read it (owner, or public): a 403 otherwise, as Kaggle answers."""
        directory = self.directory(owner, slug, _version_number(version))
        record = json.loads((directory / "kernel.json").read_text())
        if not may_read(user, owner, record.get("isPrivate", True)):  # the client sends isPrivate (default true)
            raise HostError(403, f"Permission 'kernels.get' was denied for {owner}/{slug}")
        return directory

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
        invalid = self._invalid_sources(user, request)
        with self.host.lock:
            version = len([path for path in base.glob("*") if number(path.name) is not None]) + 1
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
        """Kaggle's 2026 layout: input/competitions/<slug>/ and input/datasets/<owner>/<slug>/, zips unpacked;
        only what the kernel's owner may read (checked again: a dataset may have changed since the push)."""
        inputs.mkdir()
        user = record["slug"].partition("/")[0]
        for name in record.get("competitionDataSources", []):
            if self._competition_mountable(user, name):
                self.host.backend.download(inputs / "competitions" / name)
        for ref in record.get("datasetDataSources", []):
            if self.host.datasets.mountable(user, ref):
                owner, slug, version = self.host.datasets.parse_ref(ref)
                self.host.datasets.mount(owner, slug, version, inputs / "datasets" / owner / slug)
        return inputs

    def _run(self, directory: Path) -> None:
        """Run a pushed kernel to completion (in the sandbox), recording its status and a Kaggle-style JSON log."""
        record = json.loads((directory / "kernel.json").read_text())
        with self.slots:
            self._update(directory, status="RUNNING")
            try:
                failure, stdout, stderr = self._run_in_scratch(directory, record)
                self._write_log(directory, stdout, stderr)
                self._update(directory, status="COMPLETE" if not failure else "ERROR", failureMessage=failure)
            except (OSError, HostError, ValueError) as error:
                self._update(directory, status="ERROR", failureMessage=getattr(error, "message", str(error)))
            except Exception as error:  # a bug: still an ERROR with a message, never a kernel RUNNING forever
                self._update(directory, status="ERROR", failureMessage=f"internal error ({type(error).__name__})")

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
        directory = self.readable(user, request.user_name, request.kernel_slug, request.version_label or None)
        record = json.loads((directory / "kernel.json").read_text())
        return make(ApiGetKernelSessionStatusResponse, status=KernelWorkerStatus[record["status"]],
                    failure_message=record.get("failureMessage", ""))

    def output(self, user: str, request) -> ApiListKernelSessionOutputResponse:
        owner, slug = request.user_name, request.kernel_slug
        directory = self.readable(user, owner, slug, request.version_label)
        version, working = int(directory.name), directory / "working"
        names = [path.relative_to(working).as_posix() for path in sorted(working.rglob("*"))
                 if path.is_file() and not path.is_symlink()]
        files = [make(ApiKernelSessionOutputFile, file_name=name,
                      url=self.host.file_url(user, f"kernel-output/{owner}/{slug}/{version}/{name}"))
                 for name in names if unservable(name) is None]
        log = (directory / "log.json").read_text() if (directory / "log.json").is_file() else ""
        return make(ApiListKernelSessionOutputResponse, files=files, log=log)

    def pull(self, user: str, request) -> ApiGetKernelResponse:
        directory = self.readable(user, request.user_name, request.kernel_slug)
        record = json.loads((directory / "kernel.json").read_text())
        language, kernel_type = record.get("language"), record.get("kernelType")
        return make(ApiGetKernelResponse,
                    metadata=make(ApiKernelMetadata, ref=record["slug"], title=record.get("newTitle", ""),
                                  language=language, kernel_type=kernel_type,
                                  current_version_number=int(directory.name)),
                    blob=make(ApiKernelBlob, source=(directory / record["source"]).read_text(), language=language,
                              kernel_type=kernel_type, slug=record["slug"]))


KERNEL_ROUTES = {
    KERNELS + "SaveKernel": lambda host, user, request: host.kernels.save(user, request),
    KERNELS + "GetKernelSessionStatus": lambda host, user, request: host.kernels.status(user, request),
    KERNELS + "ListKernelSessionOutput": lambda host, user, request: host.kernels.output(user, request),
    KERNELS + "GetKernel": lambda host, user, request: host.kernels.pull(user, request),
}
