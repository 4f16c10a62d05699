"""What every competition backend offers: one Protocol, its capabilities said outright rather than sniffed.

A backend is opened once per run (`open_backend`) and handed to the stages that talk to it: fetch, submit,
and the watcher's snapshot. Local competitions, Kaggle and a notebook's mounted files each say what they can
do in `capabilities`; the submission guard and the watcher read those flags, never `hasattr`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from tasks.competitions import CompetitionSpec


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do.

    `submits`: it takes submissions at all (a notebook's mount does not: Kaggle takes its submission.csv).
    `scores_later`: `send` makes a pending submission and `wait(ref)` polls for its score (Kaggle); otherwise
    `submit` scores at once (a local competition).
    `lists_submissions`: it can be asked afterwards whether a send cut off before its answer was logged reached
    it (the guard's attempt log).
    `daily_limit`: the quota to count against the local log when the server does not say (None: it always says)."""

    submits: bool = True
    scores_later: bool = False
    lists_submissions: bool = False
    daily_limit: int | None = None


@runtime_checkable
class Backend(Protocol):
    """A competition's home: where its files come from, where submissions go, what its leaderboard says."""

    name: str
    capabilities: Capabilities

    @property
    def known_spec(self) -> CompetitionSpec | None:
        """The spec when it is known without the files (given, built in, or saved), else None."""

    @property
    def spec(self) -> CompetitionSpec:
        """The spec; a SpecError that says how to get one when it is not known yet."""

    def download(self, destination: Path) -> CompetitionSpec:
        """Leave the competition's files unpacked in `destination`; return its spec (inferred from them if needed)."""

    def submit(self, path: Path, description: str = "") -> dict:
        """Send a submission and return its scored record (for `scores_later` backends: send, then wait)."""

    def submissions(self, team: str | None = None) -> list[dict]:
        """Submissions as records (ref, date, status, scores, description), newest last or first by backend."""

    def leaderboard(self, limit: int | None = None) -> list[dict]:
        """The public leaderboard, best first: rank, team, score, date (its first `limit` rows: fewer requests)."""

    def rank(self) -> int | None:
        """Our team's place on the public leaderboard (None before our first scored submission), without reading
        the whole board."""

    def limits(self) -> dict | None:
        """Today's quota (daily_limit, used, remaining, limited_by_total); None when the server does not say."""

    def data_files(self) -> list[dict]:
        """The competition's files (name, size, date): a new data version changes them."""

    @property
    def team(self) -> str:
        """Our team's name on the leaderboard."""

    def evaluation_metric(self) -> str | None:
        """The competition's own name for its metric, where the backend has one (a hint for an inferred spec)."""
