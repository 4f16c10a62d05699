"""What the host's modules share: its error type, redirects, settings and the RPC path prefixes."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime

from tasks.errors import ConfigError

RPC_PREFIXES = ("/api/v1/", "/v1/")


class HostError(Exception):
    """An error answered as Kaggle does: HTTP status plus {"code", "message"} (or `body`, with `headers`)."""

    def __init__(self, status: int, message: str, headers: dict | None = None, body: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers, self.body = status, message, headers or {}, body


def rate_limited(seconds: float) -> HostError:
    """Kaggle's answer to too many calls: 429, Retry-After in whole seconds, and its body (kaggle-cli issue 931:
    `{"error": {"code": 429, "message": "Too many requests", "status": "RESOURCE_EXHAUSTED"}}`)."""
    wait = max(1, math.ceil(seconds))
    return HostError(429, "Too many requests", headers={"Retry-After": str(wait)},
                     body={"error": {"code": 429, "message": "Too many requests", "status": "RESOURCE_EXHAUSTED"}})


@dataclass(frozen=True)
class Redirect:
    url: str


MAX_TITLE = 50  # Kaggle refuses longer kernel titles and slugs, with a 500 that says nothing useful
# The kaggle client's own rules (KaggleApi._validate_slug_syntax, validate_kernel_string, dataset_create_new):
# lowercase letters and digits joined by single hyphens (owners may use underscores too); a kernel slug has at
# least 5 characters, a dataset slug 6 to 50. Checked before any name becomes a path.
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
OWNER = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")
MIN_KERNEL_SLUG, MIN_DATASET_SLUG, MAX_DATASET_SLUG = 5, 6, 50
NUMBER = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True)
class HostSettings:
    """Who may call, whose rules are accepted, and how kernels behave."""

    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (name, key); empty: anyone
    rules_accepted_by: tuple[str, ...] | None = None  # None: no rules to accept
    code_competition: bool = False  # submissions only from notebooks (CreateCodeSubmission)
    run_kernels: bool = True  # run pushed kernels in a subprocess; else mark them COMPLETE at once
    # What one pushed kernel may use: for a classroom on one machine, not Kaggle's 12 h and 30 GB.
    # A kernel's time limit is its own session timeout (`kaggle kernels push -t`, sessionTimeoutSeconds), as on Kaggle,
    # at most this (Kaggle's cap is 12 h); a kernel that names none gets this.
    kernel_timeout: float = 3600.0  # seconds of wall-clock time
    kernel_memory_bytes: int = 8 * 2**30  # its address space (TensorFlow and Keras need about 2.2 GiB of it)
    kernel_processes: int = 512  # processes and threads (uid 65534's, all kernels together, on a host run as root)
    kernel_output_bytes: int = 4 * 2**30  # any one file it writes, and all its output together
    kernel_tmp_bytes: int = 2**30  # its /tmp and its /dev/shm (each a tmpfs, held in memory)
    kernels_at_once: int = 2  # the others wait, QUEUED
    unsafe_kernels: bool = False  # run pushed kernels even without a sandbox (they can then read the solution)
    kernel_internet: bool = True  # a kernel pushed with enable_internet may reach the network (False: none may)
    gpu_quota_seconds: float = 30 * 3600.0  # a week's GPU time per user, as Kaggle's quota page states it
    tpu_quota_seconds: float = 20 * 3600.0
    dataset_processing_seconds: float = 0.0  # as on Kaggle, a new dataset version is not ready at once
    dataset_registration_seconds: float = 0.0  # and its number is not reported (nor mounted) until this long after
    code_scoring_seconds: float = 0.0  # a code submission stays PENDING this long (Kaggle re-runs the notebook)
    total_limit: int | None = None  # a cap on submissions over the whole competition (limitedByTotal)
    teamless: tuple[str, ...] = ()  # users not on a team yet: Kaggle answers their limits with all zeros
    max_request_bytes: int = 32 * 2**20  # an RPC's JSON body (a kernel's source travels in one)
    max_upload_bytes: int = 2 * 2**30  # one uploaded file (submission or dataset blob)
    deadline: datetime | None = None  # the competition's end (naive UTC): private scores stay hidden until then
    signed_url_seconds: float = 3600.0  # how long a file URL (download or upload) works after it is handed out
    download_bytes_per_second: float | None = None  # serve files no faster (a slow network); None: at full speed
    # Kaggle's rate limits, imitated: (RPC method, calls, seconds): more calls than that by one user within the window
    # are answered 429 with Retry-After and Kaggle's body (kaggle-cli issue 931: DownloadDataFiles, 30 min and more).
    rate_limits: tuple[tuple[str, int, float], ...] = ()


def number(text) -> int | None:
    """`text` as a whole number if it is one in ASCII digits, else None. (str.isdigit() also accepts "²", on
    which int() then fails: a 500 where Kaggle answers 400.)"""
    text = str(text)
    return int(text) if NUMBER.fullmatch(text) else None


def page_of(items: list, request, default_size: int = 20) -> tuple[list, str]:
    """One page of a list, as Kaggle pages them: `page_size` (default 20, at most 200) and an opaque
    `next_page_token` ("" on the last page); a token that is not one of ours is a 400."""
    size = max(1, min(getattr(request, "page_size", 0) or default_size, 200))
    start = number(getattr(request, "page_token", "") or "0")
    if start is None:
        raise HostError(400, f"Invalid page token {str(request.page_token)[:20]!r}")
    following = start + size
    return items[start:following], str(following) if following < len(items) else ""


def parse_rate_limits(values: list[str]) -> tuple[tuple[str, int, float], ...]:
    """`METHOD=CALLS/SECONDS` strings (e.g. `DownloadDataFiles=1/1800`) to triples."""
    limits = []
    for value in values:
        method, _, rate = value.partition("=")
        calls, _, seconds = rate.partition("/")
        if not (method and number(calls) and number(seconds)):
            raise ConfigError(f"--rate-limit {value!r}: expected METHOD=CALLS/SECONDS, e.g. DownloadDataFiles=1/1800")
        limits.append((method, int(calls), float(seconds)))
    return tuple(limits)


def may_read(user: str, owner: str, private: bool) -> bool:
    """The one access rule for kernels and datasets, in the API and in what a kernel mounts: owner, or public."""
    return user == owner or not private


def require_name(field: str, value: str | None, pattern: re.Pattern = SLUG, min_length: int = 1,
                 max_length: int | None = None) -> str:
    """`value` if it is a valid Kaggle owner or slug; else a 400 naming the field (and a short excerpt of it)."""
    text = value or ""
    allowed = "lowercase letters, digits and single hyphens" + (" or underscores" if pattern is OWNER else "")
    if not pattern.fullmatch(text):
        raise HostError(400, f"Invalid {field} {text[:60]!r}: only {allowed}, not at either end")
    if len(text) < min_length or (max_length is not None and len(text) > max_length):
        bounds = f"{min_length} to {max_length}" if max_length else f"at least {min_length}"
        raise HostError(400, f"Invalid {field} {text[:60]!r}: {bounds} characters")
    return text


def parse_users(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`NAME:KEY` strings to pairs; the error never repeats a value (it holds a key)."""
    users = []
    for position, value in enumerate(values, start=1):
        name, separator, key = value.partition(":")
        if not separator or not name or not key:
            raise ConfigError(f"--user number {position} is not NAME:KEY")
        users.append((name, key))
    return tuple(users)


