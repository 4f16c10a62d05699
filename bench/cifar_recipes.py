"""Recipes on real CIFAR-10 (../shared/data/cifar10-dev): CV, test accuracy and where the time goes.

Makes a local competition in Kaggle's cifar-10 layout from cifar10-dev (all 10,000 training images, or
the first N), then runs the stages through the Python API (no Prefect), timing each: index, feature
extraction per view, every member, the blends. Members and blends are scored by CV (on the rows every
member predicted) and on the 2,000 hidden test labels.

    .venv/bin/python -m bench.cifar_recipes --train 5000 [--size 96] [--members logistic,mlp,finetune,cnn]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
import zipfile
from pathlib import Path

from bench.common import LITE0, ROOT

CIFAR = ROOT.parent / "shared" / "data" / "cifar10-dev"


def subset_zip(train: int, scratch: Path) -> Path:
    """cifar-10's layout with the first `train` training images, unpacked folders instead of .7z archives."""
    import pandas as pd
    import py7zr

    raw = scratch / "raw"
    if not (raw / "train").is_dir():
        with zipfile.ZipFile(CIFAR / "cifar-10.zip") as archive:
            archive.extractall(raw)
        for name in ("train.7z", "test.7z"):
            with py7zr.SevenZipFile(raw / name) as archive:
                archive.extractall(raw)
    labels = pd.read_csv(raw / "trainLabels.csv").iloc[:train]
    path = scratch / f"cifar{train}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("trainLabels.csv", labels.to_csv(index=False))
        archive.write(raw / "sampleSubmission.csv", "sampleSubmission.csv")
        for image in labels["id"]:
            archive.write(raw / "train" / f"{image}.png", f"train/{image}.png")
        for image in sorted((raw / "test").iterdir()):
            archive.write(image, f"test/{image.name}")
    return path


def prepared_subset(train: int, scratch: Path, base):
    """The plan of a `base` Config (whose competition is the cifar10-dev subset of `train` images, made in `scratch`
    on the first call), its index, and the test set's true class indices (solution.csv)."""
    import pandas as pd

    from tasks import stages
    from tasks.backends.local import create_local_competition
    from tasks.competitions import resolve_spec
    from tasks.index import TEST, read_index

    name = base.competition
    if not (base.paths.local(name) / "competition.json").is_file():
        scratch.mkdir(parents=True, exist_ok=True)
        create_local_competition(base.paths.local(name), name, resolve_spec("cifar-10").with_slug(name),
                                 subset_zip(train, scratch), CIFAR / "solution.csv")
    plan = stages.prepare(base)
    index = read_index(plan.index_dir)
    truth = pd.read_csv(CIFAR / "solution.csv", dtype=str).set_index("id").loc[index.split(TEST)["id"], "label"]
    return plan, index, truth.map(resolve_spec("cifar-10").class_names.index).to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--size", type=int, default=96, help="backbone input size for the heads' features")
    parser.add_argument("--members", default="logistic,mlp,finetune,cnn")
    parser.add_argument("--finetune-sizes", default="96")
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "cifar-recipes")
    arguments = parser.parse_args()

    import numpy as np
    import pandas as pd

    from tasks import stages
    from tasks.backends.local import create_local_competition
    from tasks.competitions import resolve_spec
    from tasks.config import Config, FeatureConfig, TrainConfig
    from tasks.ensemble import blend, blend_weights, nested_cv_score
    from tasks.features import gather_features
    from tasks.fitting import fit_member, load_member, predicted_rows
    from tasks.index import TEST, TRAIN, read_index
    from tasks.metrics import score_probabilities

    arguments.scratch.mkdir(parents=True, exist_ok=True)
    name, data_dir = f"cifar{arguments.train}", arguments.scratch / "data"
    backbone = f"file:{LITE0}"
    base = Config(competition=name, data_dir=str(data_dir), submit=False, backbones=(backbone,),
                  members=(f"logistic@{backbone}",), features=FeatureConfig(image_size=arguments.size),
                  train=TrainConfig(finetune_epochs=arguments.finetune_epochs))
    if not (base.paths.local(name) / "competition.json").is_file():
        create_local_competition(base.paths.local(name), name, resolve_spec("cifar-10").with_slug(name),
                                 subset_zip(arguments.train, arguments.scratch), CIFAR / "solution.csv")
    seconds: dict[str, float] = {}

    def timed(label: str, work):
        started = time.perf_counter()
        result = work()
        seconds[label] = round(time.perf_counter() - started, 1)
        print(json.dumps({"step": label, "seconds": seconds[label]}), flush=True)
        return result

    plan = timed("fetch and index", lambda: stages.prepare(base))
    for view in ("identity", "flip"):
        timed(f"features {view} at {arguments.size} px",
              lambda view=view: gather_features(dataclasses.replace(plan, views=(view,))))
    index = read_index(plan.index_dir)
    labels = index.split(TRAIN)["label"].to_numpy()
    solution = pd.read_csv(CIFAR / "solution.csv", dtype=str).set_index("id")
    truth = solution.loc[index.split(TEST)["id"], "label"].map(resolve_spec("cifar-10").class_names.index).to_numpy()

    def variant(member: str, **changes):
        """The plan with one member and these changes (views, train)."""
        return dataclasses.replace(plan, members=(member,), **changes)

    members: dict[str, tuple] = {}
    runs = []
    for kind in arguments.members.split(","):
        if kind in ("logistic", "mlp"):
            runs += [(f"{kind}@lite0 (identity)", variant(f"{kind}@{backbone}", views=("identity",))),
                     (f"{kind}@lite0 (2 views)", variant(f"{kind}@{backbone}", views=("identity", "flip")))]
        elif kind == "finetune":
            runs += [(f"finetune@lite0 at {size} px", variant(
                f"finetune@{backbone}", views=("identity",),
                train=dataclasses.replace(plan.train, finetune_size=int(size))))
                     for size in arguments.finetune_sizes.split(",")]
        else:
            runs.append((kind, variant(kind)))
    for label, member_plan in runs:
        directory = timed(label, lambda: fit_member(member_plan, member_plan.members[0]))
        meta, oof, test = load_member(directory)
        members[label] = (oof, test)
        print(json.dumps({"member": label, "cv": round(meta["cv_score"], 4), "rows": meta.get("rows_predicted"),
                          "test": round(float((test.argmax(1) == truth).mean()), 4)}), flush=True)

    def score_blend(chosen: list[str]) -> dict:
        rows = np.all([predicted_rows(members[m][0]) for m in chosen], axis=0)
        oofs, tests = [members[m][0][rows] for m in chosen], [members[m][1] for m in chosen]
        folds = index.split(TRAIN)["fold"].to_numpy()[rows]
        folds = folds if len(np.unique(folds)) > 1 else np.arange(len(folds)) % 2
        started = time.perf_counter()
        weights = blend_weights("caruana", oofs, labels[rows], "accuracy")
        nested = nested_cv_score("caruana", oofs, labels[rows], folds, "accuracy")
        return {"blend": " + ".join(chosen), "cv": round(score_probabilities(labels[rows], blend(oofs, weights),
                                                                              "accuracy"), 4),
                "nested_cv": round(nested, 4), "rows": int(rows.sum()),
                "test": round(float((blend(tests, weights).argmax(1) == truth).mean()), 4),
                "weights": [round(float(w), 2) for w in weights], "seconds": round(time.perf_counter() - started, 1)}

    names = list(members)
    heads = [m for m in names if "2 views" in m]
    tuned = [m for m in names if m.startswith("finetune")]
    candidates = [heads, *([t, *heads] for t in tuned), names]
    for chosen in candidates:
        if len(chosen) > 1:
            print(json.dumps(score_blend(chosen)), flush=True)
    print(json.dumps({"seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
