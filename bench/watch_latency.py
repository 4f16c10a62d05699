"""What a watch costs: `headstart watch` through `headstart host` (the Kaggle backend), with and without Prefect.

    python -m bench.watch_latency

A private copy of `digits` is served by an in-process `headstart host`; a temporary Prefect server
(prefect_test_harness) records the flows. Measured in turn, twice each: a watch that finds no move
through the flow and as plain calls (the fallback without Prefect), and a watch whose move is acted on
(a retrain of `softmax`, 2 folds, 2 epochs, and a submission; another team passes us before each).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flows.watch import run_watch, watch_once
    from tasks.backends.local import LocalBackend
    from tasks.backends.practice import ensure_digits
    from tasks.config import Config, TrainConfig
    from tasks.host.common import HostSettings
    from tasks.host.server import HostServer
    from tasks.host.state import CompetitionHost
    from tasks.paths import DataPaths
    from tasks.watch import WatchRules

    work = Path(tempfile.mkdtemp(prefix="watch-bench-"))
    data = work / "data"
    backend = ensure_digits(DataPaths(data).local("digits"), daily_limit=100)
    key = "bench-key"
    host = CompetitionHost(LocalBackend(backend.root), HostSettings(users=(("alice", key),)))
    server = HostServer(host).start()
    home = work / "home"
    home.mkdir()
    os.environ.update({"KAGGLE_API_ENVIRONMENT": "LOCALHOST", "HTTP_PROXY": server.url, "NO_PROXY": "127.0.0.1",
                       "KAGGLE_USERNAME": "alice", "KAGGLE_KEY": key, "HOME": str(home),
                       "KAGGLE_CONFIG_DIR": str(home / ".kaggle")})
    config = Config(competition="digits", data_dir=str(data), backend="kaggle",
                    spec=str(backend.root / "competition.json"), members=("softmax",), folds=2,
                    train=TrainConfig(epochs=2))
    theirs = [work / "sample.csv", work / "perfect.csv"]  # each passes the best score before it
    backend.sample_submission().to_csv(theirs[0], index=False)
    backend.solution()[["ImageId", "Label"]].to_csv(theirs[1], index=False)
    times: dict[str, list[float]] = {}

    def timed(name: str, call) -> dict:
        started = time.perf_counter()
        result = call()
        times.setdefault(name, []).append(time.perf_counter() - started)
        print(f"{name}: {times[name][-1]:.2f} s — {result['line']}", flush=True)
        return result

    try:
        with prefect_test_harness(server_startup_timeout=120):
            timed("first watch (baseline, flow)", lambda: run_watch(config))
            for round_number in range(2):
                timed("no move (flow)", lambda: run_watch(config))
                timed("no move (plain calls)", lambda: watch_once(config, WatchRules(), retrain=False))
                LocalBackend(backend.root).submit(theirs[round_number], "theirs", team=f"team-{round_number}")
                timed("move: retrain + submit (flow)", lambda: run_watch(config))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\n| watch | median wall time (2 runs) |\n|---|---|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.2f} s |")


if __name__ == "__main__":
    main()
