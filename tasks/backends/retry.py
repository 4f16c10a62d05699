"""Waiting out Kaggle's rate limits and passing failures: Retry-After when Kaggle gives one, else exponential backoff
with jitter, capped at minutes, and a log line for every wait that says what is waited for.

Kaggle answers a rate limit with 429, a Retry-After header and `{"error": {"code": 429, "status":
"RESOURCE_EXHAUSTED"}}` (kaggle-cli issue 931: DownloadDataFiles, for 30 minutes and more). The client's own
`KaggleApi.with_retry` honours Retry-After but wraps few calls, and its jitter is always 0 (a truncation noted in
its source, kaggle/api/kaggle_api_extended.py `_calculate_backoff_delay`). A wait longer than `max_wait` is not
sat out: the error says when to try again.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, TypeVar

from tasks.errors import TransientBackendError

T = TypeVar("T")
logger = logging.getLogger("headstart")


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries in all; the n-th wait is drawn from [d/2, d], d = min(cap, base * 2**(n-1)) ("equal
    jitter": never all at once, never much shorter than planned); a Retry-After up to `max_wait` is waited as
    given."""

    attempts: int = 5
    base: float = 4.0
    cap: float = 240.0
    max_wait: float = 600.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        planned = min(self.cap, self.base * 2 ** (attempt - 1))
        return planned / 2 + rng.uniform(0, planned / 2)


DEFAULT = Backoff()


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header's wait in seconds: a number of seconds, or an HTTP date (RFC 9110 10.2.3); None when
    absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - (now or datetime.now(timezone.utc))).total_seconds())


def with_backoff(call: Callable[[], T], what: str, policy: Backoff | None = None, sleep: Callable = time.sleep,
                 rng: random.Random | None = None) -> T:
    """`call()`, tried again after each TransientBackendError (429, 5xx, a dropped connection) up to the policy's
    attempts; each wait is logged with what it waits for. A Retry-After past `max_wait` raises at once."""
    policy, rng = policy or DEFAULT, rng or random.Random()
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except TransientBackendError as error:
            if attempt == policy.attempts:
                raise
            asked = getattr(error, "retry_after", None)
            if asked is not None and asked > policy.max_wait:
                raise TransientBackendError(f"{error}; Kaggle asks to wait {asked / 60:.0f} min before trying to "
                                            f"{what} again (Retry-After), longer than headstart waits: run again "
                                            "then") from None
            wait = asked if asked is not None else policy.delay(attempt, rng)
            reason = "as its Retry-After asks" if asked is not None else "backing off, with jitter"
            logger.warning("Kaggle could not %s (%s): waiting %.0f s, %s, before try %d of %d", what,
                           getattr(error, "status", None) or "no answer", wait, reason, attempt + 1, policy.attempts)
            sleep(wait)
    raise AssertionError("unreachable")
