"""Load on `headstart host`: this tree's host (FastAPI on uvicorn) against another commit's, side by side.

    python -m bench.host_load [--baseline COMMIT]

Each host runs as the real `headstart host` command in its own process, on its own copy of the digits
competition holding 40 submissions. Phases, in turn on each host (interleaved, twice): ListSubmissions
(a page of 20) from 1, 8 and 32 concurrent clients for a fixed time; 8 parallel downloads of the
competition zip by its signed URL. Prints requests/s, latency p50/p95 and download MB/s, and the ratio.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from bench.common import baseline_tree

ROOT = Path(__file__).resolve().parents[1]
USER, KEY = "alice", "bench-key"
RPC = "/api/v1/competitions.CompetitionApiService/"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode()}


def prepare_data(data_dir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tasks.backends.practice import ensure_digits
    from tasks.paths import DataPaths

    backend = ensure_digits(DataPaths(Path(data_dir)).local("digits"), daily_limit=1000)
    submission = Path(data_dir) / "sample.csv"
    backend.sample_submission().to_csv(submission, index=False)
    for number in range(40):
        backend.submit(submission, f"bench {number}", team=USER)


def start_host(code_root: Path, data_dir: Path) -> tuple[subprocess.Popen, str]:
    environment = {**os.environ, "PYTHONPATH": str(code_root), "HEADSTART_HOST_USERS": f"{USER}:{KEY}",
                   "NO_PROXY": "127.0.0.1"}
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "host", "digits", "--port", "0", "--data-dir",
                                str(data_dir), "--no-run-kernels"], cwd=code_root, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    return process, line.split(" on ")[1].split(" ")[0]


def rpc_load(url: str, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        session, mine = requests.Session(), []
        body = json.dumps({"competitionName": "digits"})
        while time.monotonic() < stop:
            started = time.perf_counter()
            response = session.post(url + RPC + "ListSubmissions", data=body, headers=AUTH, timeout=30)
            mine.append(time.perf_counter() - started)
            if response.status_code != 200 or len(response.json()["submissions"]) != 20:
                errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {"rps": len(latencies) / elapsed, "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))], "errors": errors[0]}


def download_load(url: str, parallel: int = 8) -> dict:
    redirect = requests.post(url + RPC + "DownloadDataFiles", data=json.dumps({"competitionName": "digits"}),
                             headers=AUTH, allow_redirects=False, timeout=30)
    location = redirect.headers["Location"]
    sizes: list[int] = []

    def fetch() -> None:
        sizes.append(len(requests.get(location, timeout=60).content))

    threads = [threading.Thread(target=fetch) for _ in range(parallel)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"mb_per_s": sum(sizes) / 2**20 / (time.perf_counter() - began), "mb": sizes[0] / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="da7117c", help="the commit whose host to compare with")
    parser.add_argument("--seconds", type=float, default=5.0)
    arguments = parser.parse_args()
    work, baseline = baseline_tree(arguments.baseline, "host-load-")
    try:
        prepare_data(work / "data")
        hosts = {}
        for name, code in (("this tree", ROOT), (f"baseline {arguments.baseline}", baseline)):
            shutil.copytree(work / "data", work / f"data-{len(hosts)}")
            hosts[name] = start_host(code, work / f"data-{len(hosts)}")
        results: dict = {name: {} for name in hosts}
        for _ in range(2):  # interleaved rounds
            for name, (_, url) in hosts.items():
                for clients in (1, 8, 32):
                    results[name].setdefault(f"rpc x{clients}", []).append(rpc_load(url, clients, arguments.seconds))
                results[name].setdefault("download x8", []).append(download_load(url))
        for process, _ in hosts.values():
            process.terminate()
            process.wait(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    names = list(results)
    print(f"| phase | {names[0]} | {names[1]} | ratio |\n|---|---|---|---|")
    for phase in results[names[0]]:
        cells, values = [], []
        for name in names:
            rounds = results[name][phase]
            if phase.startswith("rpc"):
                value = statistics.median(r["rps"] for r in rounds)
                p50 = statistics.median(r["p50_ms"] for r in rounds)
                p95 = statistics.median(r["p95_ms"] for r in rounds)
                errors = sum(r["errors"] for r in rounds)
                cells.append(f"{value:.0f} req/s (p50 {p50:.1f} ms, p95 {p95:.1f} ms, {errors} errors)")
            else:
                value = statistics.median(r["mb_per_s"] for r in rounds)
                cells.append(f"{value:.0f} MB/s ({rounds[0]['mb']:.1f} MB zip)")
            values.append(value)
        print(f"| {phase} | {cells[0]} | {cells[1]} | {values[0] / values[1]:.2f} |")


if __name__ == "__main__":
    main()
