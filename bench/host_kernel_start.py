"""What the kernel sandbox's hardening costs: push-to-COMPLETE time of a trivial kernel, this tree against another
commit's host, side by side.

    python -m bench.host_kernel_start [--baseline COMMIT] [--repeats N]

Each host runs as the real `headstart host` command in its own process (kernels under bubblewrap), on its own
copy of the digits competition. In turn on each host (interleaved, `repeats` rounds), two kernels are pushed by
SaveKernel over HTTP and polled every 10 ms until COMPLETE: `print('hi')` alone, and the same with the
competition attached (its files copied into the kernel's input). Prints the median seconds and the ratio.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.common import baseline_tree

ROOT = Path(__file__).resolve().parents[1]
USER, KEY = "alice", "bench-key"
KERNELS = "/api/v1/kernels.KernelsApiService/"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode()}
DIRECT = {"http": "", "https": ""}  # never through a proxy the environment names
KINDS = {"alone": [], "with the competition": ["digits"]}


def prepare_data(data_dir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tasks.backends.practice import ensure_digits
    from tasks.paths import DataPaths

    ensure_digits(DataPaths(Path(data_dir)).local("digits"))


def start_host(code_root: Path, data_dir: Path) -> tuple[subprocess.Popen, str]:
    environment = {**os.environ, "PYTHONPATH": str(code_root), "HEADSTART_HOST_USERS": f"{USER}:{KEY}"}
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", "host", "digits", "--port", "0", "--data-dir",
                                str(data_dir)], cwd=code_root, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    return process, line.split(" on ")[1].split(" ")[0]


def push_and_wait(url: str, slug: str, competitions: list[str]) -> float:
    """Seconds from SaveKernel to a COMPLETE status."""
    started = time.perf_counter()
    answer = requests.post(url + KERNELS + "SaveKernel", headers=AUTH, proxies=DIRECT, json={
        "slug": f"{USER}/{slug}", "text": "print('hi')\n", "language": "python", "kernelType": "script",
        "competitionDataSources": competitions})
    answer.raise_for_status()
    while True:
        status = requests.post(url + KERNELS + "GetKernelSessionStatus", headers=AUTH, proxies=DIRECT,
                               json={"userName": USER, "kernelSlug": slug}).json()
        if status.get("status") in ("COMPLETE", "ERROR"):
            if status["status"] != "COMPLETE":
                raise RuntimeError(f"{slug}: {status}")
            return time.perf_counter() - started
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="abf4219", help="the commit whose host to compare with")
    parser.add_argument("--repeats", type=int, default=10)
    arguments = parser.parse_args()
    work, baseline = baseline_tree(arguments.baseline, "host-kernel-start-")
    hosts = {}
    try:
        prepare_data(work / "data")
        for name, code in (("this tree", ROOT), (f"baseline {arguments.baseline}", baseline)):
            shutil.copytree(work / "data", work / f"data-{len(hosts)}")
            hosts[name] = start_host(code, work / f"data-{len(hosts)}")
        times: dict = {name: {kind: [] for kind in KINDS} for name in hosts}
        for round_number in range(arguments.repeats):
            for name, (_, url) in hosts.items():
                for kind, competitions in KINDS.items():
                    slug = f"bench-{round_number}-{len(competitions)}"
                    times[name][kind].append(push_and_wait(url, slug, competitions))
    finally:
        for process, _ in hosts.values():
            process.terminate()
            process.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)
    names = list(times)
    print(f"| kernel | {names[0]} | {names[1]} | ratio |\n|---|---|---|---|")
    for kind in KINDS:
        ours, theirs = (statistics.median(times[name][kind]) for name in names)
        print(f"| {kind} | {ours:.3f} s | {theirs:.3f} s | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
