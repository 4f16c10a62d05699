"""CNN candidates on real digits at Kaggle's size (mnist-dev: 42,000 training, 18,000 test images), trained
through the kit's own member (tasks/cnn.py, `fit_member`, its cache and its inner early-stopping split), each
scored on the test set's true labels (solution.csv) beside its CV (the out-of-fold rows of the folds it fitted)
and timed.

    .venv/bin/python -m bench.mnist_cnn --data-dir /tmp/grey/data --variants deep10,small10 [--train 8000]

The competition is created in `--data-dir` from ../shared/data/mnist-dev on the first call (`--train N`: a
competition of the first N training images, `mnist-dev-N`, same test set). Every variant starts from BASE (the
deep CNN at 28 px on fold 0, a one-cycle schedule) and changes what VARIANTS says. One JSON line per variant,
also appended to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import bench.common  # noqa: F401  (quiet TensorFlow)
from bench.common import ROOT

SOURCE = ROOT.parent / "shared" / "data" / "mnist-dev"
# patience past the epochs: every variant trains to its schedule's end, choosing nothing by the rows it watches (as
# the large grey recipe does: every training row fitted). The first rows of mnist_cnn.jsonl had patience 5.
BASE = {"cnn_architecture": "deep", "cnn_size": None, "cnn_folds": 1, "images_per_fold": None, "epochs": 10,
        "schedule": "onecycle", "batch_size": 128, "learning_rate": 2e-3, "patience": 100, "cnn_filters": 32,
        "tta_shifts": 0, "pseudo_epochs": 0}
VARIANTS = {
    "smoke": {"epochs": 1, "tta_shifts": 1, "pseudo_epochs": 1, "mixup": 0.2, "cutmix": 1.0, "ema": 0.99,
              "label_smoothing": 0.1, "random_erasing": 0.5, "randaugment": 1},
    "deep10": {},
    "small10": {"cnn_architecture": "small"},
    "deep5": {"epochs": 5},
    "deep15": {"epochs": 15},
    "deep10-b64": {"batch_size": 64},
    "deep10-lr1e-3": {"learning_rate": 1e-3},
    "deep10-lr4e-3": {"learning_rate": 4e-3},
    "deep10-sgd": {"optimizer": "sgd", "learning_rate": 0.05},
    "deep10-cosine": {"schedule": "cosine"},
    "deep10-noaug": {"augmentation": 0.0},
    "deep10-aug1.5": {"augmentation": 1.5},
    "deep10-smooth": {"label_smoothing": 0.1},
    "deep10-ema": {"ema": 0.999},
    "deep10-mixup": {"mixup": 0.2},
    "deep10-cutmix": {"cutmix": 1.0},
    "deep10-erasing": {"random_erasing": 0.5},
    "deep10-randaugment": {"randaugment": 2},
    "deep10-tta": {"tta_shifts": 1},
    "deep10-pseudo": {"pseudo_epochs": 2},
    "deep10-2folds": {"cnn_folds": 2},
    "deep10-range": {"lr_range_test": True},
}


def make_competition(data_dir: Path, train: int | None) -> str:
    """mnist-dev (or its first `train` training images) as a local competition in `data_dir`; its name."""
    name = "mnist-dev" if train is None else f"mnist-dev-{train}"
    if (data_dir / "local" / name).is_dir():
        return name
    archive = SOURCE / "digit-recognizer.zip"
    data_dir.mkdir(parents=True, exist_ok=True)
    if train is not None:
        archive = subset_archive(archive, train, data_dir / f"{name}.zip")
    subprocess.run([sys.executable, "-m", "flows.cli", "local", "create", name, "--from", str(archive), "--solution",
                    str(SOURCE / "solution.csv"), "--spec", "digit-recognizer", "--data-dir", str(data_dir)],
                   check=True, capture_output=True)
    return name


def subset_archive(archive: Path, train: int, target: Path) -> Path:
    """The archive with only the first `train` rows of train.csv (test.csv and the sample submission whole)."""
    import io
    import zipfile

    import pandas as pd

    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as subset:
        for member in source.namelist():
            data = source.read(member)
            if member.endswith("train.csv"):
                data = pd.read_csv(io.BytesIO(data), nrows=train).to_csv(index=False).encode()
            subset.writestr(member, data)
    return target


def test_labels(plan) -> "np.ndarray":  # noqa: F821
    from bench.digits_default import holdout_labels
    from tasks.index import read_index

    return holdout_labels(plan.config, read_index(plan.index_dir))


def run_variant(base_plan, name: str, overrides: dict, truth) -> dict:

    from tasks.fitting import fit_member, load_member

    plan = dataclasses.replace(base_plan, train=dataclasses.replace(base_plan.train, **{**BASE, **overrides}))
    started = time.perf_counter()
    meta, oof, test = load_member(fit_member(plan, "cnn"))
    seconds = time.perf_counter() - started
    accuracy = float((test.argmax(axis=1) == truth).mean())
    return {"variant": name, "train_images": int(len(oof)), "test_accuracy": round(accuracy, 4),
            "cv": round(meta["cv_score"], 4), "gap": round(meta["cv_score"] - accuracy, 4),
            "rows_scored": meta["rows_predicted"], "epochs_per_fold": meta["epochs_per_fold"],
            "member_seconds": meta["train_seconds"], "seconds": round(seconds, 1),
            "settings": {**BASE, **overrides},
            "load": [round(x, 2) for x in __import__("os").getloadavg()]}


def run_probe(base_plan, truth, shifts=(1, 2), pseudo_epochs: int = 2, epochs: int | None = None) -> list[dict]:
    """One CNN of BASE on fold 0, and what prediction-time tricks give it side by side: test-time shifts of 1 and 2
    pixels, and a pseudo-label round (`pseudo_epochs`) after it, with and without shifts. The first round is BASE's
    training exactly (same seed and settings), so its row repeats BASE's; with `epochs`, it trains that many epochs
    to the schedule's end, as the large grey recipe does (patience = epochs: every training row fitted)."""
    import numpy as np

    from tasks import cnn
    from tasks.budget import Clock
    from tasks.fitting import member_job

    to_the_end = {"epochs": epochs, "patience": epochs} if epochs else {}
    train = dataclasses.replace(base_plan.train, **{**BASE, "pseudo_epochs": pseudo_epochs, **to_the_end})
    context = member_job(dataclasses.replace(base_plan, train=train), "cnn").context
    outputs, seen, times = context.outputs, {}, {}

    def predict(model, images):
        """Every view's probabilities, kept apart; the member gets the plain ones."""
        key = "round 2" if "round 1" in seen and len(images) == len(truth) else "round 1"
        for pixels in (0, *shifts):
            started = time.perf_counter()
            probabilities = cnn.tta_predictor(pixels, outputs)(model, images)
            seconds = time.perf_counter() - started
            if len(images) == len(truth):
                seen.setdefault(key, {})[pixels] = probabilities
                times[(key, pixels)] = seconds
        return seen[key][0] if len(images) == len(truth) else cnn.tta_predictor(0, outputs)(model, images)

    architecture = cnn.ARCHITECTURES[train.cnn_architecture]
    build = lambda shape, units: architecture(shape, units, train.cnn_filters, context.seed, train)
    fitter = cnn.pixel_member(context, build, "probe", predict=predict,
                              second_round=cnn.pseudo_label_round(context, predict))
    folds = context.folds
    started = time.perf_counter()
    _, _, history = fitter.fit_fold(np.flatnonzero(folds != 0), np.flatnonzero(folds == 0), Clock(None))
    total = time.perf_counter() - started
    rows = []
    for key, views in seen.items():
        for pixels, probabilities in views.items():
            rows.append({"variant": f"probe {key}, test shifts {pixels} px", "pseudo_labels": history.get(
                "pseudo_labels"), "test_accuracy": round(float((probabilities.argmax(1) == truth).mean()), 4),
                "test_predict_seconds": round(times[(key, pixels)], 1), "fold_seconds": round(total, 1),
                "epochs": len(history["loss"]), "settings": {**BASE, **to_the_end, "pseudo_epochs": pseudo_epochs},
                "load": [round(x, 2) for x in __import__("os").getloadavg()]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/grey/data"))
    parser.add_argument("--variants", default="deep10")
    parser.add_argument("--train", type=int, default=None, help="the first N training images only")
    parser.add_argument("--probe-epochs", type=int, default=None, help="the probe's epochs, run to the end")
    parser.add_argument("--probe-shifts", default="1,2", help="the probe's test-time shifts, in pixels")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "mnist_cnn.jsonl")
    arguments = parser.parse_args()

    from tasks import stages
    from tasks.config import Config

    competition = make_competition(arguments.data_dir, arguments.train)
    plan = stages.prepare(Config(competition=competition, data_dir=str(arguments.data_dir), submit=False,
                                 members=("cnn",)))
    truth = test_labels(plan)
    for name in arguments.variants.split(","):
        results = (run_probe(plan, truth, tuple(int(x) for x in arguments.probe_shifts.split(",")),
                             epochs=arguments.probe_epochs) if name == "probe"
                   else [run_variant(plan, name, VARIANTS[name], truth)])
        for result in results:
            print(json.dumps(result), flush=True)
            with arguments.out.open("a") as out:
                out.write(json.dumps({"competition": competition, **result}) + "\n")


if __name__ == "__main__":
    main()
