"""The state a host shares between its request threads: the competition, uploads, kernels, datasets."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from pathlib import Path

from tasks.backends.local import LocalBackend
from tasks.host.common import HostError, HostSettings
from tasks.host.kernels import DatasetStore, KernelStore


class CompetitionHost:
    """State shared by the request threads: the competition, uploads, kernels, datasets, test hooks."""

    def __init__(self, backend: LocalBackend, settings: HostSettings = HostSettings(), store: Path | None = None):
        self.backend, self.settings = backend, settings
        self.store = Path(store) if store else backend.root / "host"
        self.lock = threading.RLock()
        self.base_url = ""
        self.signature = secrets.token_urlsafe(12)  # file URLs carry it, as Kaggle's signed URLs do
        self.requests: list[dict] = []  # method, path, rpc and status of each request: never headers
        self._faults: list[list] = []
        self.kernels, self.datasets = KernelStore(self), DatasetStore(self)

    # Test hooks.
    def fail_next(self, status: int, count: int = 1, path_contains: str = "") -> None:
        """Answer the next `count` requests whose path contains `path_contains` with `status`."""
        with self.lock:
            self._faults.append([status, count, path_contains])

    def take_fault(self, path: str) -> int | None:
        with self.lock:
            for fault in self._faults:
                if fault[1] > 0 and fault[2] in path:
                    fault[1] -= 1
                    return fault[0]
        return None

    def rpcs(self) -> list[str]:
        return [request["rpc"] for request in self.requests if request.get("rpc")]

    # Checks.
    def authenticate(self, header: str | None) -> str:
        """The calling user, from Basic auth (or a Bearer token equal to a user's key)."""
        users = dict(self.settings.users)
        scheme, _, credentials = (header or "").partition(" ")
        name, key = "", ""
        if scheme == "Basic":
            try:
                name, _, key = base64.b64decode(credentials.encode()).decode(errors="replace").partition(":")
            except ValueError:  # not base64
                name = ""
        elif scheme == "Bearer":
            name = next((user for user, user_key in users.items() if secrets.compare_digest(user_key, credentials)), "")
            key = users.get(name, "")
        if not users and name:
            return name
        if name in users and secrets.compare_digest(users[name], key):
            return name
        raise HostError(401, "Unauthenticated: unknown user or wrong API key")

    def require_rules(self, user: str) -> None:
        accepted = self.settings.rules_accepted_by
        if accepted is not None and user not in accepted:
            raise HostError(403, f"You must accept this competition's rules before you can download its files or "
                                 f"submit ({self.backend.name})")

    def competition(self, name: str | None) -> LocalBackend:
        if name != self.backend.name:
            raise HostError(404, f"Competition {name!r} not found (this host serves {self.backend.name!r})")
        return self.backend

    def file_url(self, path: str) -> str:
        return f"{self.base_url}/{path}?sig={self.signature}"

    # Uploads (submissions, dataset blobs): a token, then a PUT of the raw bytes.
    def new_upload(self, user: str, file_name: str) -> dict:
        token = secrets.token_hex(16)
        directory = self.store / "uploads" / token
        directory.mkdir(parents=True)
        (directory / "upload.json").write_text(json.dumps({"user": user, "file_name": Path(file_name).name}))
        return {"token": token, "createUrl": self.file_url(f"upload/{token}")}

    def upload(self, token: str, user: str | None = None) -> Path:
        """The uploaded file of a token (and, when `user` is given, checked to be theirs)."""
        directory = self.store / "uploads" / Path(token).name
        meta_path = directory / "upload.json"
        if not token or not meta_path.is_file():
            raise HostError(400, f"Unknown blob token {token!r}")
        meta = json.loads(meta_path.read_text())
        path = directory / meta["file_name"]
        if (user is not None and meta["user"] != user) or not path.is_file():
            raise HostError(400, f"Blob token {token!r} has no completed upload")
        return path

    def receive_upload(self, token: str, body: bytes, content_range: str | None) -> int:
        directory = self.store / "uploads" / Path(token).name
        if not (directory / "upload.json").is_file():
            return 404
        target = directory / json.loads((directory / "upload.json").read_text())["file_name"]
        if content_range and content_range.startswith("bytes */"):  # a resume probe
            return 200 if target.is_file() else 404
        partial = target.with_suffix(target.suffix + ".part")
        partial.write_bytes(body)
        partial.replace(target)
        return 200
