"""The default `digits` recipe: time and accuracy of candidate training settings, side by side in one run.

Each variant trains three CNNs (seeds 0-2) over 5 folds on the built-in `digits` competition through the
stages (no Prefect), timing every member; then the three are blended (Caruana) and scored by CV and on the
hidden test labels (the holdout).

    .venv/bin/python -m bench.digits_default [--variants old,cosine12,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import bench.common  # noqa: F401  (quiet TensorFlow)

VARIANTS = {
    "old: 32 filters, up to 40 epochs, constant lr, patience 5": {"epochs": 40},
    "32 filters, cosine, 10 epochs": {"epochs": 10, "schedule": "cosine", "patience": 10},
    "16 filters, cosine, 10 epochs": {"epochs": 10, "schedule": "cosine", "patience": 10, "cnn_filters": 16},
    "16 filters, cosine, 15 epochs": {"epochs": 15, "schedule": "cosine", "patience": 15, "cnn_filters": 16},
    "16 filters, cosine, 6 epochs": {"epochs": 6, "schedule": "cosine", "patience": 6, "cnn_filters": 16},
    "14 px, 32 filters, up to 40 epochs": {"image_size": 14},
    "14 px, 32 filters, 20 epochs, cosine": {"image_size": 14, "epochs": 20, "schedule": "cosine", "patience": 20},
    "14 px, 32 filters, up to 15 epochs": {"image_size": 14, "epochs": 15},
    "14 px, 32 filters, up to 20 epochs": {"image_size": 14, "epochs": 20},
    "14 px, 32 filters, up to 25 epochs": {"image_size": 14, "epochs": 25},
    "14 px, 16 filters, up to 25 epochs": {"image_size": 14, "epochs": 25, "cnn_filters": 16},
}
MEMBERS = ("cnn", "cnn#1", "cnn#2")


def holdout_labels(config, index):
    import pandas as pd

    from tasks.backends import backend_for
    from tasks.index import TEST

    backend = backend_for(config)
    solution = pd.read_csv(backend.root / "solution.csv", dtype=str).set_index(backend.spec.submission_id_column)
    truth = solution.loc[index.split(TEST)["id"], backend.spec.submission_label_column]
    return truth.map(backend.spec.class_names.index).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="digits-default-")))
    parser.add_argument("--variants", default=",".join(str(i) for i in range(len(VARIANTS))),
                        help="indices into VARIANTS, comma-separated")
    parser.add_argument("--members", default=",".join(MEMBERS))
    arguments = parser.parse_args()

    from tasks import stages
    from tasks.config import Config
    from tasks.ensemble import blend, caruana_weights
    from tasks.fitting import fit_member, load_member
    from tasks.index import TRAIN, read_index
    from tasks.metrics import score_probabilities

    members = tuple(arguments.members.split(","))
    base = stages.prepare(Config(data_dir=str(arguments.data_dir), submit=False, members=members))
    index = read_index(base.index_dir)
    labels, truth = index.split(TRAIN)["label"].to_numpy(), holdout_labels(base.config, index)
    chosen = [list(VARIANTS)[int(i)] for i in arguments.variants.split(",")]
    for name in chosen:
        plan = dataclasses.replace(base, train=dataclasses.replace(base.train, **VARIANTS[name]))
        seconds, oofs, tests, singles = [], [], [], []
        for member in members:
            started = time.perf_counter()
            meta, oof, test = load_member(fit_member(plan, member))
            seconds.append(round(time.perf_counter() - started, 1))
            oofs.append(oof), tests.append(test), singles.append(round(meta["cv_score"], 4))
        weights = caruana_weights(oofs, labels, "accuracy")
        print(json.dumps({"variant": name, "member_seconds": seconds, "member_cv": singles,
                          "blend_cv": round(score_probabilities(labels, blend(oofs, weights), "accuracy"), 4),
                          "blend_holdout": round(float((blend(tests, weights).argmax(1) == truth).mean()), 4),
                          "single_holdout": round(float((tests[0].argmax(1) == truth).mean()), 4)}), flush=True)


if __name__ == "__main__":
    main()
