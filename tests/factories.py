"""Small competition files made by the tests themselves: digit-recognizer and cifar-10 layouts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import pandas as pd
from PIL import Image

from tasks.competitions import CIFAR_10, DIGIT_RECOGNIZER, pixel_columns

# The real command, as a user runs it.
HEADSTART = str(Path(sys.executable).with_name("headstart"))
# What a user's shell has: without the quieter logging the tests set for themselves (tests/conftest.py).
USER_ENVIRONMENT = {name: value for name, value in os.environ.items()
                    if name not in ("TF_CPP_MIN_LOG_LEVEL", "PREFECT_LOGGING_LEVEL")}

T = TypeVar("T")


def wait_until(condition: Callable[[], T], seconds: float, what: str, process: subprocess.Popen | None = None,
               interval: float = 0.1) -> T:
    """Call `condition` every `interval` seconds until it returns something true, and return that. Fail, saying
    `what` was awaited, after `seconds`, or as soon as `process` (when given) has ended, with the end of its
    output when that is a pipe."""
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout is not None else ""
            raise AssertionError(f"waiting for {what}: the process ended first (exit {process.returncode})\n"
                                 f"{str(output)[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"waiting for {what}: not within {seconds:g} s")
        time.sleep(interval)
    return result


class FakeTime:
    """A wall clock that moves only when told (`advance`): for code that takes `now=` and a test that would
    otherwise sleep for time to pass."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def write_digit_recognizer(folder: Path, num_train: int = 60, num_test: int = 20, seed: int = 0) -> pd.DataFrame:
    """train.csv, test.csv, sample_submission.csv of random 28x28 digits; returns the solution frame."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    columns = pixel_columns(DIGIT_RECOGNIZER)
    train = pd.DataFrame(rng.integers(0, 256, (num_train, 784)), columns=columns)
    train.insert(0, "label", np.arange(num_train) % 10)
    train.to_csv(folder / "train.csv", index=False)
    pd.DataFrame(rng.integers(0, 256, (num_test, 784)), columns=columns).to_csv(folder / "test.csv", index=False)
    ids = np.arange(1, num_test + 1)
    pd.DataFrame({"ImageId": ids, "Label": 0}).to_csv(folder / "sample_submission.csv", index=False)
    return pd.DataFrame({"ImageId": ids, "Label": np.arange(num_test) % 10})


def write_cifar(folder: Path, num_train: int = 30, num_test: int = 10, archives: bool = False,
                seed: int = 0) -> pd.DataFrame:
    """cifar-10's layout with tiny 8x8 PNGs (as folders, or as train.7z/test.7z); returns the solution."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = np.asarray(CIFAR_10.class_names)
    for split, count, offset in (("train", num_train, 1), ("test", num_test, 1)):
        (folder / split).mkdir(exist_ok=True)
        for image_id in range(offset, offset + count):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / split / f"{image_id}.png")
    pd.DataFrame({"id": np.arange(1, num_train + 1), "label": names[np.arange(num_train) % 10]}).to_csv(
        folder / "trainLabels.csv", index=False)
    test_ids = np.arange(1, num_test + 1)
    pd.DataFrame({"id": test_ids, "label": "cat"}).to_csv(folder / "sampleSubmission.csv", index=False)
    if archives:
        import py7zr

        for split in ("train", "test"):
            with py7zr.SevenZipFile(folder / f"{split}.7z", "w") as archive:
                archive.writeall(folder / split, split)
            shutil.rmtree(folder / split)
    return pd.DataFrame({"id": test_ids, "label": names[test_ids % 10]})


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zipped.write(path, path.relative_to(folder).as_posix())
    return archive


def kaggle_zip(tmp_path: Path, layout: str, **options) -> tuple[Path, Path]:
    """A Kaggle-style zip of a competition's public files and its solution CSV."""
    folder = tmp_path / f"{layout}-files"
    solution = (write_digit_recognizer(folder, **options) if layout == "digit-recognizer"
                else write_cifar(folder, **options))
    solution_path = tmp_path / f"{layout}-solution.csv"
    solution.to_csv(solution_path, index=False)
    return zip_folder(folder, tmp_path / f"{layout}.zip"), solution_path


def tiny_backbone_file(path: Path, seed: int = 0) -> Path:
    """A small bring-your-own backbone saved as .keras: RGB 0..255 of any size in, a feature map out."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(None, None, 3))
    features = layers.Conv2D(8, 3, strides=2)(layers.Rescaling(1 / 255)(inputs))
    features = layers.Activation("relu")(layers.BatchNormalization()(features))
    model = keras.Model(inputs, layers.Conv2D(12, 3)(features))
    model.save(path)
    return path


def write_separable_digits(folder: Path, num_train: int = 120, num_test: int = 10) -> Path:
    """digit-recognizer files with three easy classes: 0 blank, 1 a bright central square, 2 stripes;
    they differ in a way that survives pooling and small shifts, plus a little noise."""
    write_digit_recognizer(folder, num_train=num_train, num_test=num_test)
    frame = pd.read_csv(folder / "train.csv")
    labels = np.arange(num_train) % 3
    pixels = np.random.default_rng(0).integers(0, 40, (num_train, 28, 28)).astype(np.uint8)
    pixels[labels == 1, 8:20, 8:20] = 255
    pixels[labels == 2, :, ::4] = 255
    frame["label"] = labels
    frame.iloc[:, 1:] = pixels.reshape(num_train, -1)
    frame.to_csv(folder / "train.csv", index=False)
    return folder


def shapes_competition_args(tmp_path: Path, num_train: int = 150, num_test: int = 12) -> list:
    """`headstart local create shapes ...` arguments for a three-class competition of separable digits;
    the data dir is tmp_path / "data"."""
    folder = write_separable_digits(tmp_path / "files", num_train=num_train, num_test=num_test)
    pd.DataFrame({"ImageId": range(1, num_test + 1), "Label": "0"}).to_csv(tmp_path / "solution.csv", index=False)
    return ["local", "create", "shapes", "--from", zip_folder(folder, tmp_path / "shapes.zip"), "--solution",
            tmp_path / "solution.csv", "--spec", "digit-recognizer", "--data-dir", tmp_path / "data"]


def separable_digits_plan(tmp_path: Path, members: tuple[str, ...] = ("softmax",), folds: int = 2,
                          deadline: float | None = None, **config_fields):
    """A RunPlan of a small digit-recognizer competition whose classes a softmax separates, without a backend:
    what the members stage reads."""
    from tasks.config import Config
    from tasks.index import ensure_index
    from tasks.runplan import RunPlan

    raw = write_separable_digits(tmp_path / "raw")
    config = Config(data_dir=str(tmp_path / "data"), folds=folds, members=members, **config_fields)
    index_dir = ensure_index(DIGIT_RECOGNIZER, raw, config.paths.index(config.competition), folds, config.seed)
    return RunPlan(config, "test-run", DIGIT_RECOGNIZER, raw, index_dir, members, {}, ("identity",),
                   config.features, config.train, deadline=deadline)


def fit_every_fold(context, fitter):
    """A prepared member (FoldFitter) fitted on each of its context's folds in turn, in memory: its out-of-fold
    and mean test probabilities and histories, as tasks/fitting.py gathers them from a fold store."""
    from tasks.budget import Clock
    from tasks.members import MemberResult

    folds = context.folds
    oof, tests, histories = np.full((len(folds), context.num_classes), np.nan, np.float32), [], []
    for fold in np.unique(folds)[:fitter.folds]:
        valid, test, history = fitter.fit_fold(np.flatnonzero(folds != fold), np.flatnonzero(folds == fold), Clock(None))
        oof[folds == fold] = valid
        tests.append(test)
        histories.append(history)
    return MemberResult(oof, np.mean(tests, axis=0), histories)


def tiny_preset_folder(folder: Path, size: int = 32) -> Path:
    """A KerasHub preset saved to a local folder: a one-layer ViT with random weights (seeded) and its image
    converter, as `save_to_preset` writes a real one (config.json, model.weights.h5, image_converter.json)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(image_shape=(size, size, 3), patch_size=8, num_layers=1, num_heads=2,
                                            hidden_dim=16, mlp_dim=32)
    converter = keras_hub.layers.ViTImageConverter(image_size=(size, size), scale=1 / 127.5, offset=-1.0)
    folder.mkdir(parents=True, exist_ok=True)
    backbone.save_to_preset(str(folder))
    converter.save_to_preset(str(folder))
    return folder
