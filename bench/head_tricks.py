"""Training tricks on the MLP head (cifar10-dev's 5,000-image subset, EfficientNet-Lite0 features at 128 px, two
views), side by side in one process: the `mlp` member fitted with each variant's TrainConfig changes, its CV (every
training row out of fold; early stopping on an inner split) and test accuracy (solution.csv) and seconds.

    .venv/bin/python -m bench.head_tricks --train 5000 [--variants base,smooth,ema,range,onecycle]

Features come from the cache bench.cifar_recipes and bench.cifar_finetune fill (the same --scratch folder);
MixUp, CutMix and the CNN's image tricks do not apply to feature vectors (tasks/tricks.py).
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

VARIANTS = {
    "base": {},
    "smooth": {"label_smoothing": 0.1},
    "ema": {"ema": 0.999},
    "range": {"lr_range_test": True},
    "onecycle": {"schedule": "onecycle", "learning_rate": 3e-3},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "cifar-recipes")
    arguments = parser.parse_args()

    from tasks import stages
    from tasks.config import Config, FeatureConfig
    from tasks.fitting import fit_member, load_member

    name, backbone = f"cifar{arguments.train}", f"file:{LITE0}"
    base = Config(competition=name, data_dir=str(arguments.scratch / "data"), submit=False, backbones=(backbone,),
                  members=(f"mlp@{backbone}",), features=FeatureConfig(image_size=arguments.size))
    plan, _, truth = prepared_subset(arguments.train, arguments.scratch, base)
    stages.run_mapped(stages.Stages(), stages.FEATURES, plan)
    for label in arguments.variants.split(","):
        changes = VARIANTS[label]
        variant = dataclasses.replace(plan, train=dataclasses.replace(plan.train, **changes))
        started = time.perf_counter()
        meta, _, test = load_member(fit_member(variant, f"mlp@{backbone}"))
        print(json.dumps({"variant": label, "changes": changes, "cv": round(meta["cv_score"], 4),
                          "test": round(float((test.argmax(1) == truth).mean()), 4),
                          "seconds": round(time.perf_counter() - started, 1),
                          "epochs": meta["epochs_per_fold"]}), flush=True)


if __name__ == "__main__":
    main()
