"""The state a host shares between its request threads: the competition, uploads, kernels, datasets."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from tasks.backends.local import LocalBackend
from tasks.files import atomic_write_json
from tasks.host.auth import Tokens
from tasks.host.common import HostError, HostSettings, number, rate_limited
from tasks.host.datasets import DatasetStore
from tasks.host.kernels import KernelStore
from tasks.host.models import ModelStore

TOKEN = re.compile(r"[0-9a-f]{32}")  # what new_upload hands out: nothing else names an upload


class CompetitionHost:
    """State shared by the request threads: the competition, uploads, kernels, datasets, test hooks."""

    def __init__(self, backend: LocalBackend, settings: HostSettings = HostSettings(), store: Path | None = None):
        self.backend, self.settings = backend, settings
        # Absolute: bwrap and the kernel's subprocess run in other working directories than the host's.
        self.store = (Path(store) if store else backend.root / "host").absolute()
        self.lock = threading.RLock()
        self.submit_lock = threading.Lock()  # a submission and the limits it is checked against
        self.base_url = ""
        self.secret = secrets.token_bytes(32)  # signs file URLs (per user, file and purpose), as Kaggle's are
        self.requests: list[dict] = []  # method, path, rpc and status of each request: never headers
        self._faults: list[list] = []
        self._calls: dict[tuple[str, str], list[float]] = {}  # recent calls per (user, method), for rate limits
        self.tokens = Tokens()  # what `kaggle auth login` was given (tasks/host/auth.py)
        self.kernels, self.datasets, self.models = KernelStore(self), DatasetStore(self), ModelStore(self)

    # Test hooks.
    def fail_next(self, status: int, count: int = 1, path_contains: str = "", retry_after: float | None = None
                  ) -> None:
        """Answer the next `count` requests whose path contains `path_contains` with `status` (a 429 with
        `retry_after` as Kaggle sends it: Retry-After and its RESOURCE_EXHAUSTED body)."""
        with self.lock:
            self._faults.append([status, count, path_contains, retry_after])

    def take_fault(self, path: str) -> HostError | None:
        with self.lock:
            for fault in self._faults:
                if fault[1] > 0 and fault[2] in path:
                    fault[1] -= 1
                    if fault[0] == 429 and fault[3] is not None:
                        return rate_limited(fault[3])
                    return HostError(fault[0], f"Injected failure ({fault[0]})")
        return None

    def check_rate(self, user: str, method: str) -> None:
        """A 429 (with Retry-After) for a call past the host's rate limit on `method` (HostSettings.rate_limits)."""
        for limited_method, calls, seconds in self.settings.rate_limits:
            if limited_method != method:
                continue
            now = time.monotonic()
            with self.lock:
                recent = [moment for moment in self._calls.get((user, method), []) if now - moment < seconds]
                if len(recent) >= calls:
                    self._calls[(user, method)] = recent
                    raise rate_limited(seconds - (now - recent[0]))
                self._calls[(user, method)] = recent + [now]

    def rpcs(self) -> list[str]:
        return [request["rpc"] for request in self.requests if request.get("rpc")]

    # Checks.
    def authenticate(self, basic: tuple[str, str] | None, bearer: str | None) -> str:
        """The calling user: Basic auth with a legacy API key, a Bearer access token equal to a user's key, or one
        `kaggle auth login` was given."""
        users = dict(self.settings.users)
        name, key = basic or ("", "")
        if bearer and (logged_in := self.tokens.user_of(bearer)):
            return logged_in
        if bearer:
            name = next((user for user, user_key in users.items() if secrets.compare_digest(user_key, bearer)), "")
            key = users.get(name, "")
        if not users and (name or bearer):
            return name or "you"
        if name in users and secrets.compare_digest(users[name], key):
            return name
        raise HostError(401, "Unauthenticated: unknown user or wrong API key")

    def has_entered(self, user: str) -> bool:
        """Whether the user is on a team: Kaggle answers the submission limits of one who is not with zeros."""
        return user not in self.settings.teamless

    def rules_accepted(self, user: str) -> bool:
        """Whether the user may download the competition's files, submit, and have them mounted in a kernel."""
        accepted = self.settings.rules_accepted_by
        return accepted is None or user in accepted

    def require_rules(self, user: str) -> None:
        if not self.rules_accepted(user):
            raise HostError(403, f"You must accept this competition's rules before you can download its files or "
                                 f"submit ({self.backend.name})")

    def competition(self, name: str | None) -> LocalBackend:
        if name != self.backend.name:
            raise HostError(404, f"Competition {name!r} not found (this host serves {self.backend.name!r})")
        return self.backend

    def file_url(self, user: str, path: str, purpose: str = "download") -> str:
        """A URL to `path` that works for this user, this purpose and `signed_url_seconds` only."""
        expires = int(time.time() + self.settings.signed_url_seconds)
        query = urlencode({"user": user, "expires": expires,
                           "sig": sign_url(self.secret, purpose, user, path, expires)})
        return f"{self.base_url}/{quote(path)}?{query}"

    def signed_user(self, path: str, purpose: str, query) -> str | None:
        """The user a URL to `path` was signed for (its query: user, expires, sig); None if it was not signed
        for this path and purpose; a 403 once it has expired."""
        user, expires_text, signature = (query.get(name, "") for name in ("user", "expires", "sig"))
        expires = number(expires_text)
        if expires is None:
            return None
        expected = sign_url(self.secret, purpose, user, path, expires)
        if not secrets.compare_digest(signature, expected):
            return None
        if time.time() > expires:
            raise HostError(403, "This signed URL has expired: ask for a new one")
        return user

    # Uploads (submissions, dataset blobs): a token, then a PUT of the raw bytes. The host's record of an upload
    # (who, under which name) lives apart from the uploaded bytes, where no upload's name can reach it.
    def new_upload(self, user: str, file_name: str) -> tuple[str, str]:
        """A blob token and the signed URL to PUT the file's bytes to."""
        token = secrets.token_hex(16)
        (self.store / "uploads" / "files" / token).mkdir(parents=True)
        record = self.store / "uploads" / "records" / f"{token}.json"
        record.parent.mkdir(exist_ok=True)
        atomic_write_json(record, {"user": user, "file_name": upload_name(file_name)})
        return token, self.file_url(user, f"upload/{token}", purpose="upload")

    def _upload_path(self, token: str, user: str | None) -> Path | None:
        """Where a token's bytes are (or will be) stored; None for a token never handed out (to `user`)."""
        if not TOKEN.fullmatch(token or ""):
            return None
        record_path = self.store / "uploads" / "records" / f"{token}.json"
        if not record_path.is_file():
            return None
        record = json.loads(record_path.read_text())
        directory = (self.store / "uploads" / "files" / token).resolve()
        path = (directory / upload_name(record["file_name"])).resolve()
        if path.parent != directory or (user is not None and record["user"] != user):
            return None
        return path

    def upload(self, token: str, user: str | None = None) -> Path:
        """The uploaded file of a token (and, when `user` is given, checked to be theirs)."""
        path = self._upload_path(token, user)
        if path is None or not path.is_file():
            raise HostError(400, f"Blob token {str(token)[:40]!r} has no completed upload")
        return path

    def upload_target(self, token: str, user: str) -> Path | None:
        """Where this user's PUT to this token's URL lands; None for a token never handed out to them."""
        return self._upload_path(token, user)


def sign_url(secret: bytes, purpose: str, user: str, path: str, expires: int) -> str:
    """HMAC-SHA256 of what a URL grants: one purpose, to one user, on one path, until `expires` (Unix seconds)."""
    message = "\n".join((purpose, user, path, str(expires))).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def upload_name(file_name: str) -> str:
    """The base name an upload is stored under (never `..`, `.` or empty)."""
    name = Path(file_name).name
    return name if name not in ("", ".", "..") else "upload"
