"""Kernels on a hosted competition: store pushed kernels and run them locally (their RPCs: tasks/host/kernel_api.py;
datasets: tasks/host/datasets.py, models: tasks/host/models.py).

A pushed kernel runs in a sandbox (tasks/host/sandbox.py) with Kaggle's 2026 input layout: its competition under
`input/competitions/<slug>/`, its datasets under `input/datasets/<owner>/<slug>/` (an uploaded zip unpacked into a
folder of its name), its models under `input/models/<owner>/<model>/<framework>/<variation>/<version>/`, its outputs
in `working/`, told to it by HEADSTART_KAGGLE_INPUT and HEADSTART_KAGGLE_WORKING; no credentials. As on Kaggle, its
time limit is the session timeout it was pushed with (`kaggle kernels push -t`, at most the host's), and it has the
network only when pushed with enable_internet (and the host allows it). It mounts only what its owner may read
(owner, or public; the competition once its rules are accepted), the same rule the RPCs apply; the others wait,
QUEUED, while `kernels_at_once` run. A code competition scores a submission from a second run of the version, with
KAGGLE_IS_COMPETITION_RERUN set (`rerun`), not from the output the first run left.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from kagglesdk.kernels.types.kernels_api_service import ApiSaveKernelResponse

from tasks.files import atomic_write_json
from tasks.host.common import MAX_TITLE, MIN_KERNEL_SLUG, OWNER, HostError, may_read, number, require_name
from tasks.host.rpc import make
from tasks.host.sandbox import KernelRun, kernel_refusal, run_kernel

KERNELS = "kernels.KernelsApiService/"
# Kaggle's environment variable in a code competition's scoring run (notebooks read it to skip training there).
RERUN_VARIABLE = "KAGGLE_IS_COMPETITION_RERUN"


def version_label(label) -> int | None:
    """A version label as Kaggle takes it, `v3`, as 3; none as None (the latest). The client always sends `v<N>`
    (KaggleApi._kernel_version_label); a bare number names no version on Kaggle: a 404 here too."""
    if not label:
        return None
    text = str(label)
    if number(text) is not None:
        raise HostError(404, f"Kernel version {text[:20]!r} not found: versions are labelled v<N>")
    version = number(text[1:]) if text.startswith("v") else None
    if version is None:
        raise HostError(400, f"Invalid version {text[:20]!r}: v and a number")
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
    """kernels/<owner>/<slug>/: `id` (the kernel's number, kept across versions) and <version>/: kernel.json, the
    source, working/ (its outputs, as copied out of the sandbox), log.json, stdout.txt and stderr.txt, and reruns/
    (a code competition's scoring runs). While one runs, its inputs and working folder are in scratch/."""

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

    def versions(self, owner: str, slug: str) -> list[int]:
        names = [path.name for path in self.base(owner, slug).glob("*") if (path / "kernel.json").is_file()]
        return sorted(number(name) for name in names if number(name) is not None)

    def directory(self, owner: str, slug: str, version: int | None = None) -> Path:
        """A version's folder (the latest when `version` is None); a 404 for one that does not exist."""
        base = self.base(owner, slug)
        if version is None:
            versions = self.versions(owner, slug)
            if not versions:
                raise HostError(404, f"Kernel {owner}/{slug} not found")
            version = versions[-1]
        if not (base / str(version) / "kernel.json").is_file():
            raise HostError(404, f"Kernel {owner}/{slug} has no version {version}")
        return base / str(version)

    def kernels(self) -> list[tuple[str, str]]:
        """Every (owner, slug) with at least one version."""
        return sorted((path.parent.parent.name, path.parent.name) for path in self.host.store.glob("kernels/*/*/id"))

    def kernel_id(self, owner: str, slug: str) -> int:
        """The kernel's number (Kaggle's `id_no`), given at its first push and kept across versions."""
        path = self.base(owner, slug) / "id"
        with self.host.lock:
            if not path.is_file():
                taken = [int(other.read_text()) for other in self.host.store.glob("kernels/*/*/id")]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(str(max(taken, default=0) + 1))
            return int(path.read_text())

    def by_id(self, kernel_id: int) -> tuple[str, str]:
        for owner, slug in self.kernels():
            if self.kernel_id(owner, slug) == kernel_id:
                return owner, slug
        raise HostError(404, f"Kernel {kernel_id} not found")

    def output_dir(self, owner: str, slug: str, version: int | None = None) -> Path:
        return self.directory(owner, slug, version) / "working"

    def output_file(self, owner: str, slug: str, version: int | None, file_name: str) -> Path:
        path = self.output_dir(owner, slug, version) / Path(file_name).name
        if path.is_symlink() or not path.is_file():  # outputs are copied out as files; never read through a link
            raise HostError(404, f"Kernel {owner}/{slug} has no output file {file_name!r}")
        return path

    def _competition_mountable(self, user: str, name: str) -> bool:
        return name == self.host.backend.name and self.host.rules_accepted(user)

    def _invalid_sources(self, user: str, request) -> dict:
        """The sources this user's kernel may not have mounted: unknown, another's private dataset or model, or the
        competition before its rules are accepted."""
        invalid = {"invalid_competition_sources": [name for name in request.competition_data_sources
                                                   if not self._competition_mountable(user, name)],
                   "invalid_dataset_sources": [ref for ref in request.dataset_data_sources
                                               if not self.host.datasets.mountable(user, ref)],
                   "invalid_model_sources": [ref for ref in request.model_data_sources
                                             if not self.host.models.mountable(user, ref)]}
        return {key: value for key, value in invalid.items() if value}

    def readable(self, user: str, owner: str, slug: str, version: int | None = None) -> Path:
        """A version's folder, once the user may read it (owner, or public): a 403 otherwise, as Kaggle answers."""
        directory = self.directory(owner, slug, version)
        record = json.loads((directory / "kernel.json").read_text())
        if not may_read(user, owner, record.get("isPrivate", True)):  # the client sends isPrivate (default true)
            raise HostError(403, f"Permission 'kernels.get' was denied for {owner}/{slug}")
        return directory

    def _target(self, user: str, request) -> tuple[str, str]:
        """Whose kernel a push writes: `id` (the client's `id_no`, which wins) or `slug`; only the caller's own."""
        owner, _, slug = (request.slug or "").partition("/")
        if request.id:
            owner, slug = self.by_id(request.id)
        if owner != user or not slug:
            raise HostError(403, f"You can only push kernels as {user}/<slug>")
        return owner, slug

    def save(self, user: str, request) -> ApiSaveKernelResponse:
        owner, slug = self._target(user, request)
        base = self.base(owner, slug)  # before anything touches the disk: `alice/../../x` is a 400
        runs = getattr(request.kernel_execution_type, "name", "") != "QUICK_SAVE" and self.host.settings.run_kernels
        refusal = kernel_refusal(self.host.settings, self.host.backend.root) if runs else None
        if refusal:
            raise HostError(403, f"Kernel not run: {refusal}")
        if len(slug) > MAX_TITLE or len(request.new_title or "") > MAX_TITLE:
            raise HostError(500, "Internal error")  # what Kaggle answers for a title or slug over 50 characters
        # As Kaggle does: sources that cannot be attached are reported, not refused; the kernel runs without them.
        invalid = self._invalid_sources(user, request)
        kernel_id = self.kernel_id(owner, slug)
        with self.host.lock:
            version = len([path for path in base.glob("*") if number(path.name) is not None]) + 1
            directory = base / str(version)
            (directory / "working").mkdir(parents=True)
        source = "notebook.ipynb" if request.kernel_type == "notebook" else "script.py"
        (directory / source).write_text(request.text or "")
        fields = {key: value for key, value in request.to_dict().items() if key not in ("text", "id")}
        record = {**fields, "slug": f"{owner}/{slug}", "source": source, "version": version, "status": "QUEUED",
                  "failureMessage": "", "pushed": time.time()}
        self._write(directory, record)
        if not runs:
            self._update(directory, status="COMPLETE")
        else:
            self._start(self._run, directory)
        url = f"{self.host.base_url}/code/{owner}/{slug}"
        return make(ApiSaveKernelResponse, ref=f"/code/{owner}/{slug}", url=url, version_number=version,
                    kernel_id=kernel_id, **invalid)

    def _start(self, target, *arguments) -> None:
        thread = threading.Thread(target=target, args=arguments, daemon=True)
        self.threads.append(thread)
        thread.start()

    def delete(self, user: str, owner: str, slug: str) -> None:
        """Remove a kernel, every version (only its owner may); its slug is free again."""
        self.directory(owner, slug)
        if owner != user:
            raise HostError(403, f"Permission 'kernels.delete' was denied for {owner}/{slug}")
        with self.host.lock:
            if any(self.record(owner, slug, version)["status"] in ("QUEUED", "RUNNING")
                   for version in self.versions(owner, slug)):
                raise HostError(400, f"Kernel {owner}/{slug} is running; delete it once it has ended")
            shutil.rmtree(self.base(owner, slug))

    def _write(self, directory: Path, record: dict) -> None:
        atomic_write_json(directory / "kernel.json", record)

    def _update(self, directory: Path, **changes) -> None:
        with self.host.lock:
            self._write(directory, {**json.loads((directory / "kernel.json").read_text()), **changes})

    def record(self, owner: str, slug: str, version: int | None = None) -> dict:
        return json.loads((self.directory(owner, slug, version) / "kernel.json").read_text())

    def _mount_inputs(self, inputs: Path, record: dict) -> Path:
        """Kaggle's 2026 layout: input/competitions/<slug>/, input/datasets/<owner>/<slug>/ (zips unpacked) and
        input/models/<owner>/<model>/<framework>/<variation>/<version>/; only what the kernel's owner may read
        (checked again: a dataset may have changed since the push)."""
        inputs.mkdir()
        user = record["slug"].partition("/")[0]
        for name in record.get("competitionDataSources", []):
            if self._competition_mountable(user, name):
                self.host.backend.download(inputs / "competitions" / name)
        for ref in record.get("datasetDataSources", []):
            if self.host.datasets.mountable(user, ref):
                owner, slug, version = self.host.datasets.parse_ref(ref)
                self.host.datasets.mount(owner, slug, version, inputs / "datasets" / owner / slug)
        for ref in record.get("modelDataSources", []):
            if self.host.models.mountable(user, ref):
                self.host.models.mount(ref, inputs / "models")
        return inputs

    def run_settings(self, record: dict, **environment) -> KernelRun:
        """Its session timeout (at most the host's limit) and whether it has the network: as it was pushed."""
        limit = self.host.settings.kernel_timeout
        requested = record.get("sessionTimeoutSeconds") or limit
        internet = bool(record.get("enableInternet")) and self.host.settings.kernel_internet
        return KernelRun(min(float(requested), limit), internet, environment)

    def _run(self, directory: Path) -> None:
        """Run a pushed kernel to completion (in the sandbox), recording its status and a Kaggle-style JSON log."""
        record = json.loads((directory / "kernel.json").read_text())
        with self.slots:
            self._update(directory, status="RUNNING", started=time.time())
            outcome = {"status": "ERROR", "failureMessage": "the run was interrupted"}
            try:
                failure, stdout, stderr = self._run_in_scratch(directory, directory, record, self.run_settings(record))
                self._write_log(directory, stdout, stderr)
                outcome = {"status": "COMPLETE" if not failure else "ERROR", "failureMessage": failure}
            except (OSError, HostError, ValueError) as error:
                outcome["failureMessage"] = getattr(error, "message", str(error))
            except Exception as error:  # a bug: still an ERROR with a message, never a kernel RUNNING forever
                outcome["failureMessage"] = f"internal error ({type(error).__name__})"
            finally:
                # In one update: whoever sees the run ended (COMPLETE or ERROR) also sees when it ended.
                self._update(directory, **outcome, ended=time.time())

    def rerun(self, owner: str, slug: str, version: int, name: str) -> tuple[str, Path]:
        """Run a version again, as a code competition scores it: the same source and sources, mounted afresh, with
        KAGGLE_IS_COMPETITION_RERUN set; (failure message or "", the folder its outputs were copied to). Without
        kernels run on this host, the version's own outputs stand in (as its push stood in for a run)."""
        directory = self.directory(owner, slug, version)
        target = directory / "reruns" / name
        target.mkdir(parents=True)
        if not self.host.settings.run_kernels:
            shutil.copytree(directory / "working", target / "working")
            return "", target / "working"
        record = json.loads((directory / "kernel.json").read_text())
        with self.slots:
            try:
                failure, stdout, stderr = self._run_in_scratch(directory, target, record,
                                                               self.run_settings(record, **{RERUN_VARIABLE: "True"}))
            except (OSError, HostError, ValueError) as error:
                failure = getattr(error, "message", str(error))
            self._write_log(target, *(self._streams(target)))
        return failure, target / "working"

    @staticmethod
    def _streams(folder: Path) -> tuple[str, str]:
        return tuple((folder / name).read_text(errors="replace") if (folder / name).is_file() else ""
                     for name in ("stdout.txt", "stderr.txt"))

    def _run_in_scratch(self, directory: Path, target: Path, record: dict, run: KernelRun) -> tuple[str, str, str]:
        """Run the kernel of `directory` in a scratch folder of its own (its inputs, its source, its working folder),
        removed afterwards; only its outputs are kept, copied to `target/working/`."""
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
            return run_kernel(script, inputs, Path(scratch) / "working", target, self.host.settings, run)

    def _write_log(self, directory: Path, stdout: str, stderr: str) -> None:
        now = time.time()
        lines = [{"stream_name": stream, "time": now, "data": line + "\n"}
                 for stream, text in (("stdout", stdout), ("stderr", stderr)) for line in text.splitlines()]
        (directory / "log.json").write_text(json.dumps(lines))

    def wait_all(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)
