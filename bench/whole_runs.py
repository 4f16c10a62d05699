"""Whole `headstart run` commands timed as a user meets them: the figures README and RESULTS quote for a run.

    .venv/bin/python -m bench.whole_runs digits        # the default digits run: fresh data folder and Prefect home
    .venv/bin/python -m bench.whole_runs time-limit    # --time-limit 3 on the full digits recipe: wall time vs limit
    .venv/bin/python -m bench.whole_runs dask          # threads against a local Dask cluster, alternated in pairs

Each command runs `headstart run` in a process of its own (Prefect's temporary server included, in a fresh Prefect
home unless said otherwise) and prints one JSON line per run: wall seconds, CV, nested CV, public score, members,
and what a time limit cut. Extra options after `--` go to every run (e.g. `-- --folds 3`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADSTART = str(Path(sys.executable).with_name("headstart"))


def timed_run(arguments: list[str], fresh_prefect: bool = True) -> dict:
    """One `headstart run --json ...` in a fresh data folder; its wall time and what its run.json says."""
    import os

    scratch = Path(tempfile.mkdtemp(prefix="whole-run-"))
    environment = {name: value for name, value in os.environ.items() if name not in ("PREFECT_API_URL",)}
    if fresh_prefect:
        environment["PREFECT_HOME"] = str(scratch / "prefect")
    started = time.perf_counter()
    done = subprocess.run([HEADSTART, "run", "--json", "--data-dir", str(scratch / "data"), *arguments],
                          env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"headstart run {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    record = json.loads(done.stdout)
    result = record.get("backend_result") or {}
    return {"arguments": arguments, "seconds": round(seconds, 1), "cv": round(record["blend_cv_score"], 4),
            "nested_cv": record["blend_nested_cv_score"] and round(record["blend_nested_cv_score"], 4),
            "public_score": result.get("public_score"), "members": record["members"],
            "rows_scored": record["blend_rows_scored"], "time_limit": record["time_limit"]}


def report(row: dict) -> None:
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("digits", "time-limit", "dask"))
    parser.add_argument("--pairs", type=int, default=2, help="dask: threads/dask pairs, alternated")
    parser.add_argument("--minutes", type=float, default=3.0, help="time-limit: the limit")
    parser.add_argument("extra", nargs="*", help="options after -- go to every run")
    arguments = parser.parse_args()
    if arguments.what == "digits":
        report(timed_run([*arguments.extra]))
    elif arguments.what == "time-limit":
        row = timed_run(["--recipe", "full", "--time-limit", str(arguments.minutes), "--no-submit", *arguments.extra])
        report({**row, "limit_seconds": 60 * arguments.minutes, "ratio": round(row["seconds"] / (60 * arguments.minutes), 3)})
    else:
        members = ["--member", "svm", "--member", "softmax", "--epochs", "10", "--no-submit", *arguments.extra]
        for pair in range(arguments.pairs):
            threads = timed_run(members, fresh_prefect=False)
            dask = timed_run([*members, "--task-runner", "dask"], fresh_prefect=False)
            report({"pair": pair + 1, "threads_seconds": threads["seconds"], "dask_seconds": dask["seconds"],
                    "dask_over_threads": round(dask["seconds"] / threads["seconds"], 2)})


if __name__ == "__main__":
    main()
