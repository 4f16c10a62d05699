"""Every RPC the host answers, in one table, and the files behind its signed URLs.

The table's names are checked against kagglesdk's own service definitions (tests/test_host.py): a route the
client cannot call fails there. A call is authenticated, then held to the host's rate limits, then answered.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from tasks.host.api import COMPETITION_ROUTES
from tasks.host.auth import ANONYMOUS, AUTH_ROUTES
from tasks.host.common import HostError, number
from tasks.host.dataset_api import DATASET_ROUTES, version_zip
from tasks.host.kernel_api import KERNEL_ROUTES
from tasks.host.models import MODEL_ROUTES
from tasks.host.state import CompetitionHost
from tasks.host.unimitated import UNIMITATED_ROUTES

ROUTES = {**COMPETITION_ROUTES, **KERNEL_ROUTES, **DATASET_ROUTES, **MODEL_ROUTES, **AUTH_ROUTES, **UNIMITATED_ROUTES}


def dispatch(host: CompetitionHost, rpc: str, caller, request, credentials_given: bool = True):
    """Answer one RPC for the caller (`caller()` authenticates them: a 401 if unknown), within the rate limits."""
    handler = ROUTES.get(rpc)
    if handler is None:
        raise HostError(404, f"{rpc} is not supported by headstart host")
    user = _optional(caller, credentials_given) if rpc in ANONYMOUS else caller()
    host.check_rate(user or "", rpc.rpartition("/")[2])
    return handler(host, user, request)


def _optional(caller, credentials_given: bool) -> str | None:
    """The caller when their credentials are good; "" when the ones they gave are not; None when they gave none."""
    try:
        return caller()
    except HostError:
        return "" if credentials_given else None


def _inside(root: Path, relative: str) -> Path | None:
    path = (root / relative).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def resolve_file(host: CompetitionHost, path: str) -> Path | None:
    """The file behind a signed file URL: the public zip, one of its members, a kernel's output, a submission's
    file, or a dataset version's file or zip."""
    parts = path.strip("/").split("/")
    backend = host.backend
    try:
        if parts[:2] == ["files", backend.name] and parts[2:] == [f"{backend.name}.zip"]:
            return backend.public_zip
        if parts[:3] == ["files", backend.name, "member"] and len(parts) > 3:
            return _zip_member(host, "/".join(parts[3:]))
        if parts[0] == "kernel-output" and len(parts) > 4 and number(parts[3]) is not None:
            return _inside(host.kernels.output_dir(parts[1], parts[2], number(parts[3])), "/".join(parts[4:]))
        if parts[0] == "submissions" and len(parts) == 3 and number(parts[1]) is not None:
            record = next((r for r in backend.submissions() if r["ref"] == number(parts[1])), None)
            return backend.stored_file(record) if record else None
        if parts[0] == "dataset-files" and len(parts) >= 5 and number(parts[3]) is not None:
            return _dataset_file(host, parts)
    except HostError:
        return None
    return None


def _dataset_file(host: CompetitionHost, parts: list[str]) -> Path | None:
    owner, slug, version = parts[1], parts[2], number(parts[3])
    if parts[4:] == [f"{slug}.zip"]:
        return version_zip(host, owner, slug, version)
    if parts[4] == "files" and len(parts) == 6:
        return _inside(host.datasets.files_dir(owner, slug, version), parts[5])
    return None


def _zip_member(host: CompetitionHost, name: str) -> Path | None:
    cache = host.store / "members"
    with zipfile.ZipFile(host.backend.public_zip) as zipped:
        if name not in zipped.namelist():
            return None
        target = _inside(cache, name)
        if target is not None and not target.is_file():
            zipped.extract(name, cache)
    return target
