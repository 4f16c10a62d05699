"""Accuracy on real data, and the comparison that chose the default recipes.

Trains every candidate member once through `headstart run` (members are cached, so blends of any
subset come from the same predictions), then scores single members and blends by 5-fold CV and on
the competition's hidden test labels (the holdout):
- `digits` (scikit-learn's handwritten digits in digit-recognizer's layout);
- `photos-5000` (real colour patches from scikit-image's photos, made with `headstart local create --tfds`),
  with the shared EfficientNet-Lite0 backbone; a logistic probe on one view's features beside it.

    .venv/bin/python -m bench.accuracy [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from bench.common import LITE0
from bench.photos_competition import ensure_photos

CANDIDATES = {
    "digits": (["softmax", "cnn", "cnn#1", "cnn#2", "logistic", "mlp"], ["--view", "identity"], {
        "softmax": ["softmax"], "cnn": ["cnn"], "3 cnn": ["cnn", "cnn#1", "cnn#2"],
        "logistic@lite0": ["logistic@"], "mlp@lite0": ["mlp@"],
        "3 cnn + logistic@lite0": ["cnn", "cnn#1", "cnn#2", "logistic@"], "all": None}),
    "photos": (["logistic", "mlp", "cnn"], [], {
        "cnn": ["cnn"], "logistic@lite0 (2 views)": ["logistic@"], "mlp@lite0 (2 views)": ["mlp@"],
        "logistic + mlp": ["logistic@", "mlp@"], "all": None}),
}


def run(data_dir: Path, name: str, members: list[str], extra: list[str]) -> dict:
    command = [sys.executable, "-m", "flows.cli", "run", name, "--data-dir", str(data_dir), "--no-submit",
               "--backbone", f"file:{LITE0}", *[f"--member={m}" for m in members], *extra]
    env = {**os.environ, "PREFECT_HOME": str(data_dir / ".prefect")}
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(finished.stdout[-2000:] + finished.stderr[-3000:])
    return json.loads(Path(finished.stdout.strip().splitlines()[-1]).read_text())


def evaluate(data_dir: Path, name: str, record: dict, groups: dict) -> dict:
    from tasks.backends.local import LocalBackend
    from tasks.ensemble import blend, caruana_weights
    from tasks.fitting import load_member
    from tasks.index import TEST, TRAIN, read_index
    from tasks.metrics import score_probabilities
    from tasks.paths import DataPaths

    paths = DataPaths(data_dir)
    backend = LocalBackend(paths.local(name))
    index = read_index(paths.index(name))
    labels = index.split(TRAIN)["label"].to_numpy()
    solution = pd.read_csv(backend.root / "solution.csv", dtype=str).set_index(backend.spec.submission_id_column)
    truth = solution.loc[index.split(TEST)["id"], backend.spec.submission_label_column]
    truth = truth.map(backend.spec.class_names.index).to_numpy()
    members = {meta["name"]: (oof, test) for meta, oof, test in map(load_member, map(Path, record["member_dirs"]))}
    results = {}
    for label, prefixes in groups.items():
        chosen = [n for n in members if prefixes is None
                  or any(n == p or (p.endswith("@") and n.startswith(p)) for p in prefixes)]
        oofs, tests = [members[n][0] for n in chosen], [members[n][1] for n in chosen]
        weights = caruana_weights(oofs, labels, "accuracy")
        results[label] = {"members": chosen, "cv": score_probabilities(labels, blend(oofs, weights), "accuracy"),
                          "holdout": float((blend(tests, weights).argmax(1) == truth).mean())}
    return results


def probe(data_dir: Path, name: str) -> dict:
    """Baseline: a logistic probe on one view (identity) of the backbone's cached features."""
    record = run(data_dir, name, ["logistic"], ["--view", "identity"])
    return evaluate(data_dir, name, record, {"logistic probe (identity view)": None})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="accuracy-")))
    parser.add_argument("--only", choices=sorted(CANDIDATES))
    args = parser.parse_args()
    report = {}
    for key, (members, extra, groups) in CANDIDATES.items():
        if args.only and key != args.only:
            continue
        name = "digits" if key == "digits" else ensure_photos(args.data_dir)
        record = run(args.data_dir, name, members, extra)
        report[name] = evaluate(args.data_dir, name, record, groups)
        if key == "photos":
            report[name].update(probe(args.data_dir, name))
    print(json.dumps(report, indent=2))
