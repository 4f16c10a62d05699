"""A kernel's run on Kaggle, from push to submission: push a rendered kernel with the session timeout Kaggle allows,
record the push (so that `headstart kernel collect` can finish the job after the waiting stopped, even hours
later), wait for the version, download its output, and submit it through the guard.

A code competition's submission is the kernel version itself: Kaggle runs it again on the hidden test set and scores
that run, so the guard knows it by the version and the kit it ran (not by the file it left here, which a new version
may leave byte for byte the same).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from tasks.backends.kaggle_client import call_kaggle
from tasks.backends.kernels import (
    BUNDLE_NAME,
    KAGGLE_SESSION_LIMIT,
    SPEC_FILES,
    KernelConfig,
    kernel_owner,
    kernel_slug,
    render_kernel,
)
from tasks.backends.model_export import attached_models
from tasks.errors import BackendError, ConfigError
from tasks.files import atomic_write_json, poll, sha256_file
from tasks.saved_models import check_attachable

PUSHED = "pushed.json"  # <kernel_dir>/pushed.json: the competition's last push
logger = logging.getLogger("headstart")


def push_kernel(api, folder: Path, session_timeout: float = KAGGLE_SESSION_LIMIT) -> int:
    """Push a rendered kernel, asking for `session_timeout` seconds of run; returns the new version number. Never
    retried: a retry after Kaggle accepted the push would push a second version."""
    metadata = json.loads((folder / "kernel-metadata.json").read_text())
    response = call_kaggle(api, metadata["id"], "push the kernel", api.kernels_push, str(folder),
                           timeout=str(int(session_timeout)), retried=False)
    if response.error:
        raise BackendError(f"pushing {metadata['id']} failed: {response.error}")
    invalid = {kind: list(getattr(response, f"invalid_{kind}_sources", None) or [])
               for kind in ("competition", "dataset", "kernel", "model")}
    if any(invalid.values()):  # Kaggle pushes and runs the kernel anyway, without them: it would fail there
        named = "; ".join(f"{kind} {', '.join(refs)}" for kind, refs in invalid.items() if refs)
        raise BackendError(f"pushed {metadata['id']}, but Kaggle could not attach its sources ({named}): check that "
                           "they exist and that you may use them (accepted rules, dataset access)")
    if not response.version_number:  # optional in kagglesdk's response
        raise BackendError(f"Kaggle accepted {metadata['id']} but named no version; see "
                           f"`kaggle kernels status {metadata['id']}`")
    return int(response.version_number)


def _kernel_spec(spec: str | None) -> str | None:
    """The spec as the kernel sees it: a bundled .toml under specs/, or a built-in name."""
    return f"specs/{Path(spec).name}" if spec and spec.endswith(SPEC_FILES) else spec


def push_kernel_version(config, backend, kernel: KernelConfig, kernel_dir: Path, kit: str | None = None) -> dict:
    """Render the kernel into <kernel_dir>/kernel, attached to `kit` (the published kit's pinned ref), push it, and
    record the push in <kernel_dir>/pushed.json (before anything else can fail); the record."""
    api, kernel_dir = backend.api, Path(kernel_dir)
    attached = attached_models(kernel_dir, kernel.datasets)
    if attached:  # before anything is pushed: a model Kaggle's image cannot load fails here, both versions named
        logger.info("%s", check_attachable(attached, kernel_dir.parent))
    owner = kernel_owner(api)
    folder = render_kernel(kernel_dir / "kernel", owner, config.competition, kernel, _kernel_spec(config.spec), kit)
    version = push_kernel(api, folder, kernel.session_timeout)
    bundle = kernel_dir / "bundle" / BUNDLE_NAME
    slug = kernel_slug(config.competition, kernel.slug_prefix)
    record = {"competition": config.competition, "kernel": f"{owner}/{slug}", "version": version, "bundle": kit, "kit_sha256": sha256_file(bundle) if bundle.is_file() else None,
              "session_timeout": kernel.session_timeout, "pushed": datetime.now(timezone.utc).isoformat()}
    atomic_write_json(kernel_dir / PUSHED, record)
    return record


def pushed(kernel_dir: Path, competition: str) -> dict:
    """The competition's last push, as recorded; a ConfigError saying how to make one when there is none."""
    path = Path(kernel_dir) / PUSHED
    if not path.is_file():
        raise ConfigError(f"no kernel was pushed for {competition} from here ({path} is missing); push one with "
                          f"`headstart kernel push {competition}`")
    return json.loads(path.read_text())


def kernel_status(api, ref: str) -> tuple[str, str]:
    """(status, failure message) of a kernel version `owner/slug/N`, as Kaggle reports them."""
    response = call_kaggle(api, ref, "check the kernel", api.kernels_status, ref)
    return getattr(response.status, "name", str(response.status)), response.failure_message or ""


def wait_for_kernel(api, record: dict, poll_interval: float, timeout: float) -> None:
    """Poll the pushed version's status until it completes; an error or a timeout raises with what to do next."""
    ref = f"{record['kernel']}/{record['version']}"
    last = {"status": "QUEUED"}

    def finished() -> bool | None:
        last["status"], message = kernel_status(api, ref)
        if last["status"] in ("ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED"):
            raise BackendError(f"kernel {ref} ended with {last['status']}: {message or 'Kaggle gave no message'}; see "
                               f"its log with `headstart kernel output {record['competition']}`")
        return True if last["status"] == "COMPLETE" else None

    poll(finished, poll_interval, timeout, lambda: BackendError(
        f"kernel {ref} is still {last['status']} after {timeout:.0f} s of waiting; it goes on running on Kaggle "
        f"(up to {record.get('session_timeout', KAGGLE_SESSION_LIMIT) / 3600:g} h): `headstart kernel collect "
        f"{record['competition']}` waits for it again and submits its output"))


def download_output(backend, kernel_dir: Path, record: dict) -> Path:
    """The pushed version's output (and its log), in <kernel_dir>/output/<version>/."""
    ref = f"{record['kernel']}/{record['version']}"
    output = Path(kernel_dir) / "output" / str(record["version"])
    call_kaggle(backend.api, ref, "download the kernel output", backend.api.kernels_output, ref, str(output),
                quiet=True)
    return output


def collect_kernel_output(backend, kernel: KernelConfig, kernel_dir: Path, record: dict) -> Path:
    """Wait for the pushed version to finish (or find it finished); download its output."""
    wait_for_kernel(backend.api, record, kernel.poll_interval, kernel.wait_seconds)
    return download_output(backend, kernel_dir, record)


def submission_identity(record: dict) -> str:
    """What makes a code submission the same one: the kernel version and the kit it ran."""
    kit = (record.get("kit_sha256") or "unknown")[:12]
    return f"kernel {record['kernel']} v{record['version']}, kit {kit}"


def submit_kernel_output(config, backend, output: Path, record: dict, force: bool = False) -> dict:
    """Submit the kernel's submission.csv through the guard. In a code competition it goes by CreateCodeSubmission
    (no upload), and the guard knows it by the kernel version, not by the file: a new version is sent even when
    its visible output equals the last one's, the same version never twice."""
    from tasks.backends import sample_submission, with_rank
    from tasks.backends.guard import LOG_NAME, guarded_submit

    sample = sample_submission(config, backend)  # the data may never have been downloaded here: just the sample
    ref, version = record["kernel"], record["version"]
    code = backend.is_code_competition()  # a KaggleBackend
    send = (lambda path, description: backend.send_code(ref, version, Path(path).name, description)) if code else None
    return with_rank(backend, guarded_submit(
        backend, Path(output) / "submission.csv", sample, config.paths.submissions(config.competition) / LOG_NAME,
        f"{config.message} (kernel {ref} v{version})", force, send=send, if_duplicate="previous",
        identity=submission_identity(record) if code else None))
