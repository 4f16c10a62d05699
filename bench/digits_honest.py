"""The default digits CNN under honest out-of-fold predictions (an inner split chooses its epochs): variants side by
side, one process, the same data, so their ratios hold on a busy machine.

    python -m bench.digits_honest [--variants base,cosine,...] [--data-dir DIR]

Prints, per variant: the CNN's CV (out-of-fold, honest), its training seconds and epochs per fold; and the default
blend's nested CV with the SVM beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "base": {},
    "cosine": {"schedule": "cosine"},
    "epochs60": {"epochs": 60},
    "lr2e-3": {"learning_rate": 2e-3},
    "patience10": {"patience": 10},
    "stop0.05": {"stop_fraction": 0.05},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="base,cosine,epochs60,patience10")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", default="0")
    arguments = parser.parse_args()
    from tasks import stages
    from tasks.backends.practice import ensure_digits
    from tasks.config import Config, TrainConfig
    from tasks.paths import DataPaths
    from tasks.record import RunRecord

    root = Path(arguments.data_dir or tempfile.mkdtemp(prefix="digits-honest-"))
    ensure_digits(DataPaths(root).local("digits"))
    rows = []
    for name in arguments.variants.split(","):
        for seed in (int(value) for value in arguments.seeds.split(",")):
            train = dataclasses.replace(TrainConfig(cnn_size=14), **VARIANTS[name])
            config = Config(data_dir=str(root), submit=False, members=("svm", f"cnn#{seed}" if seed else "cnn"),
                            train=train)
            started = time.monotonic()
            record = RunRecord.read(stages.compete(config))
            seconds = time.monotonic() - started
            cnn = next(member for member in record.members if member.startswith("cnn"))
            rows.append({"variant": name, "seed": seed, "cnn_cv": round(record.members[cnn], 4),
                         "svm_cv": round(record.members["svm"], 4), "blend_nested_cv": round(record.blend_nested_cv_score, 4),
                         "blend_cv": round(record.blend_cv_score, 4), "seconds": round(seconds, 1)})
            print(json.dumps(rows[-1]), flush=True)
    print("| variant | seed | cnn CV | svm CV | blend CV (nested) | seconds |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['variant']} | {row['seed']} | {row['cnn_cv']} | {row['svm_cv']} | {row['blend_cv']} "
              f"({row['blend_nested_cv']}) | {row['seconds']} |")


if __name__ == "__main__":
    main()
