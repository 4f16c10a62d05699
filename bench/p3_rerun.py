"""P3: a second `headstart run` with unchanged inputs does no backbone forward pass, and takes a
fraction of the first run's wall time. A 5,000-image colour competition, EfficientNet-Lite0 features.

    .venv/bin/python -m bench.p3_rerun [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import LITE0
from bench.photos_competition import ensure_photos


def images_extracted(data_dir: Path) -> int:
    """Backbone forward passes so far, in images: every extraction logs how many it ran."""
    logs = (data_dir / "03_features").rglob("extractions.jsonl")
    return sum(json.loads(line)["images"] for log in logs for line in log.read_text().splitlines())


def timed_run(data_dir: Path, name: str) -> dict:
    command = [sys.executable, "-m", "flows.cli", "run", name, "--data-dir", str(data_dir),
               "--backbone", f"file:{LITE0}", "--no-submit"]
    env = {**os.environ, "PREFECT_HOME": str(data_dir / ".prefect")}
    before, started = images_extracted(data_dir), time.perf_counter()
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(finished.stdout[-2000:] + finished.stderr[-3000:])
    run_json = json.loads(Path(finished.stdout.strip().splitlines()[-1]).read_text())
    return {"seconds": seconds, "forward_images": images_extracted(data_dir) - before,
            "cv_score": run_json["blend_cv_score"], "members": list(run_json["members"])}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="p3-")))
    args = parser.parse_args()
    name = ensure_photos(args.data_dir)
    first, second = timed_run(args.data_dir, name), timed_run(args.data_dir, name)
    print(json.dumps({"competition": name, "first": first, "second": second,
                      "ratio": second["seconds"] / first["seconds"]}, indent=2))
