"""Requests and waits of the Kaggle backend against `headstart host` (issue 23), before and after:

    python -m bench.kaggle_requests [--teams 5000]

1. our rank on a board of N other teams: the whole board paged (what a run and a watch did) against the
   competition's userRank plus one page (what they do now): requests and seconds;
2. the competition's files fetched a second time, unchanged: requests and bytes;
3. a 429 with Retry-After: 2 (the host's rate limit on ListSubmissions): how long the client waits, and what the
   backoff without Retry-After draws (the real policy, 1,000 draws).

The host runs in this process, the client is the unmodified kaggle library, through HTTP_PROXY as README shows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ["KAGGLE_API_ENVIRONMENT"] = "LOCALHOST"  # before anything imports kaggle
USER, KEY = "alice", "bench-key"


def crowd(root: Path, teams: int) -> None:
    rng, start = random.Random(0), datetime.now(timezone.utc) - timedelta(days=2)
    lines = [json.dumps({"ref": ref, "date": (start + timedelta(seconds=ref)).isoformat(), "team": f"team-{ref:05d}",
                         "file_name": "s.csv", "sha256": f"{ref:064x}", "description": "", "error": None,
                         "public_score": round(rng.uniform(0.5, 0.99), 5), "private_score": 0.5,
                         "status": "complete"}) for ref in range(1, teams + 1)]
    (root / "submissions.jsonl").write_text("\n".join(lines) + "\n")


def start(data: Path, **settings):
    from tasks.backends.local import LocalBackend
    from tasks.host.common import HostSettings
    from tasks.host.server import HostServer
    from tasks.host.state import CompetitionHost

    host = CompetitionHost(LocalBackend(data / "local" / "digits"),
                           HostSettings(users=((USER, KEY),), run_kernels=False, **settings))
    server = HostServer(host).start()
    os.environ.update({"HTTP_PROXY": server.url, "http_proxy": server.url, "NO_PROXY": "127.0.0.1",
                       "no_proxy": "127.0.0.1", "KAGGLE_USERNAME": USER, "KAGGLE_KEY": KEY})
    return host, server


def counted(host, since: int) -> Counter:
    return Counter(request["rpc"].split("/")[-1] for request in host.requests[since:] if request["rpc"])


def rank_requests(host, backend) -> dict:
    results = {}
    for name, call in (("whole board paged (before)", lambda: next(
            row["rank"] for row in backend.leaderboard() if row["team"] == USER)),
            ("userRank + one page (after)", lambda: (backend.rank(), backend.leaderboard(limit=20))[0])):
        since, started = len(host.requests), time.perf_counter()
        rank = call()
        results[name] = {"rank": rank, "requests": dict(counted(host, since)),
                         "seconds": round(time.perf_counter() - started, 2)}
    return results


def download_requests(host, backend, raw: Path) -> dict:
    results = {}
    for name in ("first fetch", "second fetch, unchanged"):
        since, started = len(host.requests), time.perf_counter()
        backend.download_files(raw)
        files = [request for request in host.requests[since:] if request["path"].startswith("/files/")]
        results[name] = {"requests": dict(counted(host, since)), "file downloads": len(files),
                         "seconds": round(time.perf_counter() - started, 2)}
    return results


def retry_timings() -> dict:
    from tasks.backends.kaggle import KaggleBackend, kaggle_spec
    from tasks.backends.retry import Backoff

    with tempfile.TemporaryDirectory() as scratch:
        data = prepare(Path(scratch))
        host, server = start(data, rate_limits=(("ListSubmissions", 1, 2.0),))
        try:
            backend = KaggleBackend(kaggle_spec("digits", str(data / "local" / "digits" / "competition.json")))
            backend.submissions()
            started = time.perf_counter()
            backend.submissions()
            waited = time.perf_counter() - started
        finally:
            server.stop()
    policy, rng = Backoff(), random.Random(0)
    draws = {attempt: [policy.delay(attempt, rng) for _ in range(1000)] for attempt in range(1, policy.attempts)}
    return {"429 with Retry-After 2 (s to the answer)": round(waited, 2),
            "backoff draws (s)": {f"wait {attempt}": f"{min(values):.1f}-{max(values):.1f}, mean "
                                  f"{statistics.mean(values):.1f}" for attempt, values in draws.items()},
            "longest total wait of one call (s)": round(sum(max(values) for values in draws.values()), 1)}


def prepare(scratch: Path) -> Path:
    from tasks.backends.practice import ensure_digits
    from tasks.paths import DataPaths

    data = scratch / "data"
    ensure_digits(DataPaths(data).local("digits"))
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=5000)
    teams = parser.parse_args().teams
    from tasks.backends.kaggle import KaggleBackend, kaggle_spec

    with tempfile.TemporaryDirectory() as scratch:
        data = prepare(Path(scratch))
        root = data / "local" / "digits"
        crowd(root, teams)
        host, server = start(data)
        try:
            sample = Path(scratch) / "sample.csv"
            host.backend.sample_submission().to_csv(sample, index=False)
            host.backend.submit(sample, "ours", team=USER)
            backend = KaggleBackend(kaggle_spec("digits", str(root / "competition.json")))
            report = {"board": f"{teams} other teams and ours", "rank": rank_requests(host, backend),
                      "files": download_requests(host, backend, Path(scratch) / "raw" / "digits")}
        finally:
            server.stop()
    report["retries"] = retry_timings()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
