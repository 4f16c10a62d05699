"""Kaggle kernels: bundle the kit as a dataset and publish it, render a kernel from kernels/ (its runs, from push to
submission: tasks/backends/kernel_runs.py)."""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tasks.backends.kaggle_client import call_kaggle
from tasks.backends.notebooks import inject_parameters, options_as_parameters
from tasks.errors import BackendError, ConfigError, NotFoundError, UploadError
from tasks.files import atomic_write_json, poll, sha256_text
from tasks.hub import BUNDLED as BUNDLED_PRESETS
from tasks.hub import local_preset, run_presets

KIT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = KIT_ROOT / "kernels"
BUNDLE_NAME = "headstart-kit.zip"
BUNDLE_SLUG = "headstart-kit"
BUNDLED = ("tasks", "flows", "pyproject.toml")
# The dataset is private; CC0-1.0 is the license name Kaggle's API documents (the code stays Apache-2.0).
BUNDLE_LICENSE = "CC0-1.0"
# Never bundled, whatever the tree holds: caches, data, and anything that may hold credentials.
EXCLUDED = re.compile(r"(^|/)(__pycache__|\.[^/]*|data|kaggle\.json|access_token(\.txt)?|credentials\.json)(/|$)"
                      r"|\.pyc$")
SPEC_FILES = (".toml", ".json")
TEMPLATE_FILES = {"script": "script.py", "notebook": "notebook.ipynb"}
# Notebooks a `--type notebook` kernel can be: the training run, or the workshop (kernels/tutorial.ipynb), which
# takes its settings as parameters (a cell injected after its `parameters` cell) and is pushed as its own kernel.
NOTEBOOKS = {"notebook": "headstart", "tutorial": "headstart-tutorial"}
ACCELERATORS = {"none": {}, "gpu": {"enable_gpu": True}}
# Kaggle runs a notebook session for 12 hours at most (CPU and GPU); the push asks for that (sessionTimeoutSeconds,
# what `kaggle kernels push -t` sends: KaggleApi.kernels_push), and waits that long plus time in Kaggle's queue.
KAGGLE_SESSION_LIMIT = 12 * 3600.0
QUEUE_MARGIN = 3600.0


@dataclass(frozen=True)
class KernelConfig:
    """How `headstart kernel push` renders, runs and uses a kernel."""

    kernel_type: str = "script"  # or "notebook"
    notebook: str = "notebook"  # with kernel_type "notebook": which one, "notebook" or "tutorial"
    accelerator: str = "none"  # or "gpu"
    datasets: tuple[str, ...] = ()  # extra attached datasets (weights), owner/slug[/version]
    models: tuple[str, ...] = ()  # attached Kaggle models, owner/model/framework/instance/version
    settings: dict = field(default_factory=dict)  # run options inside the kernel, by name (flows/options.py)
    poll_interval: float = 30.0
    session_timeout: float = KAGGLE_SESSION_LIMIT  # the kernel's run, at most Kaggle's 12 h
    timeout: float | None = None  # how long to wait for it here; None: the session timeout and an hour of queue
    submit: bool = True

    def __post_init__(self) -> None:
        if self.kernel_type not in TEMPLATE_FILES:
            raise ConfigError(f"kernel type must be one of {sorted(TEMPLATE_FILES)}, got {self.kernel_type!r}")
        if self.notebook not in NOTEBOOKS:
            raise ConfigError(f"notebook must be one of {sorted(NOTEBOOKS)}, got {self.notebook!r}")
        if self.notebook != "notebook" and self.kernel_type != "notebook":
            raise ConfigError(f"the {self.notebook} is a notebook: push it with --type notebook")
        if self.accelerator == "tpu":
            raise ConfigError("accelerator 'tpu' is not offered: Kaggle's TPU image ships tensorflow-cpu, so the "
                              "kit would train on the CPU; use --accelerator gpu")
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(f"accelerator must be one of {sorted(ACCELERATORS)}, got {self.accelerator!r}")
        if not 60 <= self.session_timeout <= KAGGLE_SESSION_LIMIT:
            raise ConfigError(f"--session-timeout must be 60 to {KAGGLE_SESSION_LIMIT:.0f} seconds (Kaggle runs a "
                              f"session 12 hours at most), got {self.session_timeout:g}")

    @property
    def wait_seconds(self) -> float:
        return self.timeout if self.timeout is not None else self.session_timeout + QUEUE_MARGIN

    @property
    def code_file(self) -> str:
        return f"{self.notebook}.ipynb" if self.kernel_type == "notebook" else TEMPLATE_FILES[self.kernel_type]

    @property
    def slug_prefix(self) -> str:
        return NOTEBOOKS[self.notebook]


MAX_SLUG = 50  # Kaggle refuses longer kernel titles and slugs (with a misleading 500)


def kernel_slug(competition: str, prefix: str = "headstart") -> str:
    """`<prefix>-<competition>`, shortened with a hash suffix when that would pass Kaggle's 50 characters."""
    slug = f"{prefix}-{competition}"
    if len(slug) <= MAX_SLUG:
        return slug
    keep = MAX_SLUG - len(prefix) - 11  # the prefix, two dashes and 8 characters of hash
    return f"{prefix}-{competition[:keep].rstrip('-')}-{sha256_text(competition)[:8]}"


def bundle_files(root: Path = KIT_ROOT) -> list[Path]:
    """The kit's files that travel to Kaggle: tasks/, flows/ and pyproject.toml, nothing excluded."""
    files = []
    for name in BUNDLED:
        path = root / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p for p in candidates if not EXCLUDED.search(p.relative_to(root).as_posix())]
    return files


def build_bundle(destination: Path, owner: str, spec_file: Path | None = None,
                 secrets: tuple[str, ...] = (), root: Path = KIT_ROOT, presets: tuple[Path, ...] = ()) -> Path:
    """A dataset folder: dataset-metadata.json and headstart-kit.zip (the kit, plus the spec and local KerasHub
    preset folders if given, under specs/ and presets/<name>/)."""
    destination.mkdir(parents=True, exist_ok=True)
    archive = destination / BUNDLE_NAME
    with zipfile.ZipFile(archive.with_suffix(".tmp"), "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for path in bundle_files(root):
            content = path.read_bytes()
            if any(secret and secret.encode() in content for secret in secrets):
                raise UploadError(f"{path}: holds a Kaggle credential; it must not be bundled")
            zipped.writestr(path.relative_to(root).as_posix(), content)
        if spec_file is not None:
            zipped.write(spec_file, f"specs/{Path(spec_file).name}")
        for folder in presets:
            for path in sorted(Path(folder).iterdir()):
                if path.is_file():
                    zipped.write(path, f"{BUNDLED_PRESETS}/{Path(folder).name}/{path.name}")
    archive.with_suffix(".tmp").replace(archive)
    atomic_write_json(destination / "dataset-metadata.json", {
        "id": f"{owner}/{BUNDLE_SLUG}", "title": "headstart kit", "licenses": [{"name": BUNDLE_LICENSE}],
        "subtitle": "The headstart competition kit, for notebooks", "keywords": []})
    return destination


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    return text


def _render_tutorial(template: str, competition: str, spec: str | None, kernel: KernelConfig, datasets: str) -> str:
    """The tutorial runs as it is: the push's run options go in as its parameters (epochs -> EPOCHS), papermill's
    way, not as placeholders."""
    notebook = json.loads(template)
    settings = options_as_parameters(notebook, kernel.settings, "the tutorial")
    comment = (f"Injected by `headstart kernel push`: competition {competition} (attached under /kaggle/input), "
               f"accelerator {kernel.accelerator}, internet off, datasets {datasets}")
    notebook = inject_parameters(notebook, {"COMPETITION": competition, "SPEC": spec, **settings}, comment)
    return json.dumps(notebook, indent=1) + "\n"


def render_kernel(destination: Path, owner: str, competition: str, kernel: KernelConfig,
                  spec: str | None = None, kit: str | None = None) -> Path:
    """Write the kernel's code file and kernel-metadata.json into `destination`; `kit` is the kit dataset's
    ref as published, pinned to its version (`owner/headstart-kit/N`)."""
    slug, code_file = kernel_slug(competition, kernel.slug_prefix), kernel.code_file
    datasets = (kit or f"{owner}/{BUNDLE_SLUG}", *kernel.datasets)
    values = {"title": slug.replace("-", " "), "competition": competition, "accelerator": kernel.accelerator,
              "datasets": ", ".join(datasets), "models": ", ".join(kernel.models) or "none",
              "competition_literal": repr(competition), "spec_literal": repr(spec),
              "settings_literal": repr(dict(kernel.settings))}
    template = (TEMPLATES / code_file).read_text()
    if kernel.notebook == "tutorial":
        text = _render_tutorial(template, competition, spec, kernel, values["datasets"])
    elif kernel.kernel_type == "notebook":
        notebook = json.loads(template)
        for cell in notebook["cells"]:
            cell["source"] = _fill("".join(cell["source"]), values).splitlines(keepends=True)
        text = json.dumps(notebook, indent=1) + "\n"
    else:
        text = _fill(template, values)
    destination.mkdir(parents=True, exist_ok=True)
    (destination / code_file).write_text(text)
    metadata = {**json.loads((TEMPLATES / "kernel-metadata.json").read_text()),
                "id": f"{owner}/{slug}", "title": values["title"], "code_file": code_file,
                "kernel_type": kernel.kernel_type, "enable_internet": False,
                "dataset_sources": list(datasets), "competition_sources": [competition],
                "model_sources": list(kernel.models), **ACCELERATORS[kernel.accelerator]}
    atomic_write_json(destination / "kernel-metadata.json", metadata)
    return destination


def dataset_exists(api, ref: str) -> bool:
    try:
        call_kaggle(api, ref, "read the kit dataset", api.dataset_status, ref)
    except NotFoundError:
        return False
    return True


def wait_until_ready(api, ref: str, poll_interval: float = 5.0, timeout: float = 900.0) -> None:
    """Kaggle processes a new dataset version asynchronously: a kernel pushed before it is ready runs with the
    previous version or none, and a new version is refused (403) meanwhile."""
    last = {"status": "unknown"}

    def ready() -> bool | None:
        last["status"] = status = str(call_kaggle(api, ref, "check the kit dataset", api.dataset_status, ref)).lower()
        if status in ("failed", "deleted"):
            raise BackendError(f"Kaggle could not process the dataset {ref} ({status}); see its page on Kaggle")
        return True if status == "ready" else None

    poll(ready, poll_interval, timeout, lambda: BackendError(
        f"the dataset {ref} is still {last['status']} after {timeout:.0f} s; try the push again later"))


def current_version(api, ref: str) -> int:
    """The dataset's newest version number, as Kaggle reports it (GetDataset); 0 for a dataset not there yet."""
    try:
        answer = call_kaggle(api, ref, "read the kit dataset's version", api.dataset_status, ref,
                             format="json(current_version_number)")
    except NotFoundError:
        return 0
    return int(json.loads(answer).get("current_version_number") or 0)


def wait_for_version(api, ref: str, before: int, poll_interval: float = 5.0, timeout: float = 900.0) -> int:
    """The first version number above `before`, once Kaggle reports it. Neither CreateDatasetVersion nor
    GetDatasetStatus names the new version, and GetDataset reports it only once it is registered, which can be
    after the version is ready: pinning whatever it reports right after the upload could pin the previous one."""
    seen = {"version": before}

    def registered() -> int | None:
        seen["version"] = version = current_version(api, ref)
        return version if version > before else None

    return poll(registered, poll_interval, timeout, lambda: BackendError(
        f"Kaggle still reports version {seen['version']} of the dataset {ref} after {timeout:.0f} s (the upload "
        f"made version {before + 1}); try the push again later"))


def publish_bundle(api, folder: Path, ref: str, poll_interval: float = 5.0, timeout: float = 900.0) -> str:
    """Create the kit dataset, or add a version when it exists, wait until Kaggle has processed and registered it,
    and return its ref pinned to that version (`owner/slug/N`): a kernel attached to the bare slug could get
    another one."""
    if dataset_exists(api, ref):
        wait_until_ready(api, ref, poll_interval, timeout)  # a version is refused while the last is processed
        before = current_version(api, ref)
        response = call_kaggle(api, ref, "version the kit dataset", api.dataset_create_version, str(folder),
                               "headstart kit update", quiet=True, retry=False)
    else:
        before = 0
        response = call_kaggle(api, ref, "create the kit dataset", api.dataset_create_new, str(folder), quiet=True,
                               retry=False)
    if (response.status or "").lower() != "ok":
        raise BackendError(f"publishing the kit dataset {ref} failed: {response.error or response.status}")
    wait_until_ready(api, ref, poll_interval, timeout)
    return f"{ref}/{wait_for_version(api, ref, before, poll_interval, timeout)}"


def kernel_owner(api) -> str:
    owner = api.config_values.get("username")
    if not owner:
        raise BackendError("cannot tell your Kaggle user name from the credentials")
    return owner


def publish_kit(config, backend, kernel_dir: Path, poll_interval: float = 5.0) -> str:
    """Bundle the kit (and the spec file) into <kernel_dir>/bundle, publish it as a dataset, wait until ready."""
    api = backend.api
    owner = kernel_owner(api)
    spec_file = Path(config.spec) if config.spec and config.spec.endswith(SPEC_FILES) else None
    secrets = tuple(str(api.config_values.get(key) or "") for key in ("key", "token"))
    presets = tuple(folder for name in run_presets(config.backbones, config.members)
                    if (folder := local_preset(name)) is not None)
    folder = build_bundle(Path(kernel_dir) / "bundle", owner, spec_file, secrets, presets=presets)
    return publish_bundle(api, folder, f"{owner}/{BUNDLE_SLUG}", poll_interval)
