"""Has the leaderboard moved? Snapshots of a competition's standings and files, kept as a history, and the rules
that decide whether a change is worth a retrain.

A snapshot holds the public leaderboard, our team's best public score and the competition's file
listing. Each watch writes a new snapshot (never overwriting one) under data/08_watch/<competition>/
snapshots/ and one line in decisions.jsonl. The baseline a new snapshot is compared with is the
snapshot of the last *handled* decision: no move, or a move acted on to the end. A move whose
submission was skipped (quota used) or whose retrain failed stays unhandled, so the next watch acts
on it again; a move acted on is never acted on twice, and only one watch acts at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from tasks.errors import ConfigError
from tasks.files import JsonLines, atomic_write_json, sha256_text

LOWER_IS_BETTER = {"log_loss"}
EVENT = "headstart.leaderboard.moved"
# The rows of the board a watch reads: one page (Kaggle's 20). Our rank comes from the competition's own userRank
# (one request), so a 5,000-team board is 2 requests, not 250; a team passing us below these rows shows as our rank
# falling (the rank rule), not by name.
ROWS_READ = 20


@dataclass(frozen=True)
class WatchRules:
    """When the leaderboard counts as moved (each rule can be switched off)."""

    top_delta: float | None = 0.0  # the best score of the other teams changed by more than this
    rank_drop: int | None = 1  # our rank fell by at least this many places
    data_changed: bool = True  # the competition's files changed (a new data version)
    beaten: bool = True  # a team that was not ahead of our best public score now is

    def __post_init__(self) -> None:
        if self.top_delta is not None and self.top_delta < 0:
            raise ConfigError(f"--top-delta must be 0 or more, got {self.top_delta}")
        if self.rank_drop is not None and self.rank_drop < 1:
            raise ConfigError(f"--rank-drop must be 1 or more, got {self.rank_drop}")


@dataclass(frozen=True)
class Decision:
    moved: bool
    reasons: tuple[str, ...]
    numbers: dict = field(default_factory=dict)

    def line(self) -> str:
        return "; ".join(self.reasons)


def number(value) -> str:
    """A score as people read it (5 significant digits); None stays None."""
    return "None" if value is None else f"{value:.5g}"


def _better(metric: str):
    return (lambda a, b: a < b) if metric in LOWER_IS_BETTER else (lambda a, b: a > b)


def take_snapshot(leaderboard: list[dict], submissions: list[dict], files: list[dict], team: str, metric: str,
                  now: datetime | None = None, rank: int | None = None) -> dict:
    """A snapshot from what the backend answered: the board (best first, its first rows), our submissions, the file
    listing, and our rank (given, else found among the rows)."""
    better = _better(metric)
    scores = [record["public_score"] for record in submissions if record.get("public_score") is not None]
    best = None
    for score in scores:
        best = score if best is None or better(score, best) else best
    listing = sorted((str(item["name"]), int(item.get("size") or 0), str(item.get("date") or "")) for item in files)
    return {"taken": (now or datetime.now(timezone.utc)).isoformat(), "team": team, "metric": metric,
            "leaderboard": [{"rank": row["rank"], "team": row["team"], "score": row["score"]} for row in leaderboard],
            "rank": rank if rank is not None else next((row["rank"] for row in leaderboard if row["team"] == team), None),
            "our_best": best, "files": [list(item) for item in listing],
            "files_digest": sha256_text(json.dumps(listing))[:16]}


def _rank(snapshot: dict) -> int | None:
    if snapshot.get("rank") is not None:
        return snapshot["rank"]
    return next((row["rank"] for row in snapshot["leaderboard"] if row["team"] == snapshot["team"]), None)


def _top_of_others(snapshot: dict) -> float | None:
    return next((row["score"] for row in snapshot["leaderboard"]
                 if row["team"] != snapshot["team"] and row["score"] is not None), None)


def _ahead_of(snapshot: dict, score: float | None) -> set[str]:
    if score is None:
        return set()
    better = _better(snapshot["metric"])
    return {row["team"] for row in snapshot["leaderboard"]
            if row["team"] != snapshot["team"] and row["score"] is not None and better(row["score"], score)}


def decide(previous: dict | None, current: dict, rules: WatchRules = WatchRules()) -> Decision:
    """Whether the leaderboard moved between two snapshots, and why. Our own submissions never count as a move."""
    if previous is None:
        return Decision(False, ("first snapshot: nothing to compare with yet",),
                        {"rank": _rank(current), "top": _top_of_others(current)})
    reasons, numbers = [], {}
    top_before, top_now = _top_of_others(previous), _top_of_others(current)
    numbers.update(top_before=top_before, top_now=top_now)
    if rules.top_delta is not None and top_now is not None and (
            top_before is None or abs(top_now - top_before) > rules.top_delta):
        reasons.append(f"the other teams' best score went {number(top_before)} → {number(top_now)}")
    rank_before, rank_now = _rank(previous), _rank(current)
    numbers.update(rank_before=rank_before, rank_now=rank_now)
    if rules.rank_drop is not None and rank_before is not None and rank_now is not None \
            and rank_now - rank_before >= rules.rank_drop:
        reasons.append(f"our rank fell {rank_before} → {rank_now}")
    if rules.data_changed and previous["files_digest"] != current["files_digest"]:
        before, now = {tuple(item) for item in previous["files"]}, {tuple(item) for item in current["files"]}
        changed = sorted({item[0] for item in before ^ now})
        numbers["files_changed"] = changed
        reasons.append(f"the data files changed ({', '.join(changed)})")
    if rules.beaten:
        newly = sorted(_ahead_of(current, current["our_best"]) - _ahead_of(previous, current["our_best"]))
        if newly:
            numbers["passed_us"] = newly
            reasons.append(f"{', '.join(newly)} passed our best score {number(current['our_best'])}")
    if not reasons:
        return Decision(False, ("no change worth a retrain",), numbers)
    return Decision(True, tuple(reasons), numbers)


class WatchHistory:
    """data/08_watch/<competition>/: snapshots/ (one file per watch) and decisions.jsonl."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.decisions = JsonLines(self.folder / "decisions.jsonl")

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[bool]:
        """True while this process is the only watch of the competition; False if another one is running."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".watch.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    def save_snapshot(self, snapshot: dict) -> Path:
        """A new file every time (a name never reused), written atomically."""
        folder = self.folder / "snapshots"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromisoformat(snapshot["taken"]).strftime("%Y%m%dT%H%M%S%fZ")
        number = len(list(folder.glob("*.json")))
        while (path := folder / f"{stamp}-{number:05d}.json").exists():
            number += 1
        return atomic_write_json(path, snapshot)

    def baseline(self) -> tuple[dict | None, str | None]:
        """The snapshot of the last handled decision (and its file name), or (None, None) before the first."""
        for record in reversed(self.decisions.read()):
            if record.get("handled"):
                path = self.folder / "snapshots" / record["snapshot"]
                return json.loads(path.read_text()), record["snapshot"]
        return None, None

    def record(self, snapshot_path: Path, decision: Decision, action: str, handled: bool, **details) -> dict:
        return self.decisions.append({"snapshot": Path(snapshot_path).name, "moved": decision.moved,
                                      "reasons": list(decision.reasons), "numbers": decision.numbers,
                                      "action": action, "handled": handled,
                                      "date": datetime.now(timezone.utc).isoformat(), **details})


def diff_rows(previous: dict | None, current: dict) -> list[dict]:
    """The leaderboard before and after, team by team (for the watcher's artifact)."""
    before = {row["team"]: row for row in (previous or {}).get("leaderboard", [])}
    rows = []
    for row in current["leaderboard"]:
        old = before.pop(row["team"], None)
        rows.append({"team": row["team"], "rank_before": old and old["rank"], "rank_now": row["rank"],
                     "score_before": old and old["score"], "score_now": row["score"],
                     "us": row["team"] == current["team"]})
    rows += [{"team": team, "rank_before": row["rank"], "rank_now": None, "score_before": row["score"],
              "score_now": None, "us": team == current["team"]} for team, row in before.items()]
    return rows


def rules_dict(rules: WatchRules) -> dict:
    return asdict(rules)
