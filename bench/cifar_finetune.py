"""Fine-tuning variants on the cifar10-dev subset, side by side in one process: the `finetune` member (EfficientNet-
Lite0, the colour default's strongest) trained with each variant's TrainConfig changes, its out-of-fold rows'
accuracy (CV) and test accuracy (solution.csv) and seconds, plus the colour default's blend with the cached heads.

    .venv/bin/python -m bench.cifar_finetune --train 5000 --variants '{"base": {}, "c10": {"finetune_head_c": 10}}'

Features and heads (logistic, MLP over two views) are computed once; each variant fine-tunes anew (its settings are
in the member's cache key). Needs nothing but ../shared/data/cifar10-dev.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import bench.common  # noqa: F401  (quiet TensorFlow)
from bench.cifar_recipes import prepared_subset
from bench.common import LITE0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--variants", default='{"default": {}}', help="JSON: name -> TrainConfig changes")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "cifar-recipes")
    arguments = parser.parse_args()

    import numpy as np

    from tasks import stages
    from tasks.config import Config, FeatureConfig
    from tasks.ensemble import blend, caruana_weights, nested_cv_score
    from tasks.fitting import FittedMembers, fit_member, load_member, predicted_rows

    name, backbone = f"cifar{arguments.train}", f"file:{LITE0}"
    heads = (f"logistic@{backbone}", f"mlp@{backbone}")
    base = Config(competition=name, data_dir=str(arguments.scratch / "data"), submit=False, backbones=(backbone,),
                  members=(f"finetune@{backbone}", *heads), features=FeatureConfig(image_size=arguments.size))
    plan, index, truth = prepared_subset(arguments.train, arguments.scratch, base)
    targets, folds = index.targets(), index.split("train")["fold"].to_numpy()
    started = time.perf_counter()
    stages.run_mapped(stages.Stages(), stages.FEATURES, plan)
    head_dirs = [fit_member(plan, head) for head in heads]
    print(json.dumps({"step": "features and heads", "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    for label, changes in json.loads(arguments.variants).items():
        variant = dataclasses.replace(plan, train=dataclasses.replace(plan.train, **changes))
        started = time.perf_counter()
        directory = fit_member(variant, f"finetune@{backbone}")
        seconds = time.perf_counter() - started
        meta, oof, test = load_member(directory)
        members = [load_member(path) for path in (directory, *head_dirs)]
        rows = np.all([predicted_rows(member[1]) for member in members], axis=0)
        oofs, tests = [member[1][rows] for member in members], [member[2] for member in members]
        weights = caruana_weights(oofs, targets[rows], "accuracy")
        row_folds = folds[rows] if len(np.unique(folds[rows])) > 1 else np.arange(rows.sum()) % 2
        print(json.dumps({
            "variant": label, "changes": changes, "finetune_cv": round(meta["cv_score"], 4),
            "finetune_test": round(float((test.argmax(1) == truth).mean()), 4), "rows": int(rows.sum()),
            "blend_nested_cv": round(nested_cv_score("caruana", oofs, targets[rows], row_folds, "accuracy"), 4),
            "blend_test": round(float((blend(tests, weights).argmax(1) == truth).mean()), 4),
            "weights": [round(float(weight), 2) for weight in weights], "seconds": round(seconds, 1),
            "epochs": meta["epochs_per_fold"]}), flush=True)
    del FittedMembers


if __name__ == "__main__":
    main()
