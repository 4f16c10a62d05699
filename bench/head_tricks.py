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
from bench.cifar_recipes import CIFAR, subset_zip
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

    import pandas as pd

    from tasks import stages
    from tasks.backends.local import create_local_competition
    from tasks.competitions import resolve_spec
    from tasks.config import Config, FeatureConfig
    from tasks.fitting import fit_member, load_member
    from tasks.index import TEST, read_index

    name, backbone = f"cifar{arguments.train}", f"file:{LITE0}"
    data_dir = arguments.scratch / "data"
    base = Config(competition=name, data_dir=str(data_dir), submit=False, backbones=(backbone,),
                  members=(f"mlp@{backbone}",), features=FeatureConfig(image_size=arguments.size))
    if not (base.paths.local(name) / "competition.json").is_file():
        arguments.scratch.mkdir(parents=True, exist_ok=True)
        create_local_competition(base.paths.local(name), name, resolve_spec("cifar-10").with_slug(name),
                                 subset_zip(arguments.train, arguments.scratch), CIFAR / "solution.csv")
    plan = stages.prepare(base)
    index = read_index(plan.index_dir)
    truth = pd.read_csv(CIFAR / "solution.csv", dtype=str).set_index("id").loc[index.split(TEST)["id"], "label"]
    truth = truth.map(resolve_spec("cifar-10").class_names.index).to_numpy()
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
