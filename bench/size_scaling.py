"""The default recipe's time against the number of training images (issue 10: 1k, 8k, 40k; issue 21: 1k, 8k, 42k).

`--source mnist` (issue 21, the default): real digits, the first N of mnist-dev's 42,000 training images with all
its 18,000 test images (bench/mnist_cnn.py makes them); the test accuracy is the submission's on all 18,000.
`--source photos` (issue 10): digit-recognizer-layout competitions (28x28 grey pixels in train.csv/test.csv) from
cifar10-dev's photos in grey — the 10,000 images, each also shifted by a few pixels and mirrored to reach 40,000
— with 1,000 test images. Each is timed as `headstart run NAME --no-submit` with the default recipe (one process
per run, a fresh Prefect home, Prefect included), reporting the wall time, each member's epochs and the CV.

    .venv/bin/python -m bench.size_scaling [--source mnist] [--sizes 1000,8000,42000]
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

NUM_TEST = 1000


def grey_photos(count: int, scratch: Path):
    """`count` 28x28 grey images and labels from cifar10-dev's training photos (shifted and mirrored copies
    after the first 10,000)."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from bench.cifar_recipes import subset_zip

    subset_zip(10, scratch)  # unpacks the photos once
    raw = scratch / "raw"
    labels = pd.read_csv(raw / "trainLabels.csv")
    classes = sorted(labels["label"].unique())
    base = np.stack([np.asarray(Image.open(raw / "train" / f"{i}.png").convert("L").resize((28, 28), Image.BILINEAR))
                     for i in labels["id"]])
    targets = labels["label"].map(classes.index).to_numpy()
    rng = np.random.default_rng(0)
    copies, copy_labels = [base], [targets]
    while sum(len(c) for c in copies) < count:
        shifted = np.roll(base, tuple(rng.integers(-3, 4, 2)), axis=(1, 2))
        copies.append(shifted[:, :, ::-1] if len(copies) % 2 else shifted)
        copy_labels.append(targets)
    return np.concatenate(copies)[:count], np.concatenate(copy_labels)[:count]


def write_competition(name: str, count: int, scratch: Path, data_dir: Path) -> None:
    import pandas as pd

    from tests.factories import zip_folder

    images, labels = grey_photos(count + NUM_TEST, scratch)
    folder = scratch / name
    folder.mkdir(parents=True, exist_ok=True)
    columns = [f"pixel{i}" for i in range(784)]
    train = pd.DataFrame(images[:count].reshape(count, -1), columns=columns)
    train.insert(0, "label", labels[:count])
    train.to_csv(folder / "train.csv", index=False)
    pd.DataFrame(images[count:].reshape(NUM_TEST, -1), columns=columns).to_csv(folder / "test.csv", index=False)
    ids = range(1, NUM_TEST + 1)
    pd.DataFrame({"ImageId": ids, "Label": 0}).to_csv(folder / "sample_submission.csv", index=False)
    pd.DataFrame({"ImageId": ids, "Label": labels[count:]}).to_csv(scratch / f"{name}-solution.csv", index=False)
    subprocess.run([sys.executable, "-m", "flows.cli", "local", "create", name, "--from",
                    str(zip_folder(folder, scratch / f"{name}.zip")), "--solution", str(scratch / f"{name}-solution.csv"),
                    "--spec", "digit-recognizer", "--data-dir", str(data_dir)], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", choices=("mnist", "photos"), default="mnist")
    parser.add_argument("--sizes", default="1000,8000,42000")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "size-scaling")
    parser.add_argument("--extra", default="", help="more `headstart run` options, space-separated")
    arguments = parser.parse_args()
    for size in map(int, arguments.sizes.split(",")):
        # A fresh data folder and Prefect home for each run (the competition created, nothing cached): a newcomer's.
        fresh = Path(tempfile.mkdtemp(prefix=f"{size}-", dir=arguments.scratch.mkdir(parents=True, exist_ok=True)
                                      or arguments.scratch))
        data_dir, name = fresh / "data", f"grey{size}"
        if arguments.source == "mnist":
            from bench.mnist_cnn import make_competition

            name = make_competition(data_dir, None if size == 42_000 else size)
        else:
            write_competition(name, size, arguments.scratch, data_dir)
        command = [sys.executable, "-m", "flows.cli", "run", name, "--data-dir", str(data_dir), "--no-submit",
                   *arguments.extra.split()]
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "PREFECT_HOME": str(fresh / ".prefect")})
        seconds = time.perf_counter() - started
        if finished.returncode != 0:
            raise RuntimeError(finished.stdout[-2000:] + finished.stderr[-3000:])
        record = json.loads(Path(finished.stdout.strip().splitlines()[-1]).read_text())
        members = {meta["name"]: meta for meta in (json.loads((Path(d) / "member.json").read_text())
                                                   for d in record["member_dirs"])}
        print(json.dumps({"train_images": size, "seconds": round(seconds, 1), "cv": round(record["blend_cv_score"], 4),
                          "nested_cv": record["blend_nested_cv_score"], "rows_scored": record["blend_rows_scored"],
                          "test_accuracy": test_accuracy(record, arguments.source), "budget": record["plan"].get(
                              "budget"), "load": [round(x, 2) for x in os.getloadavg()],
                          "members": record["members"],
                          "member_seconds": {name: meta.get("train_seconds") for name, meta in members.items()},
                          "epochs_per_fold": {name: meta["epochs_per_fold"] for name, meta in members.items()}}),
              flush=True)


def test_accuracy(record: dict, source: str) -> float | None:
    """The submission's accuracy on all of mnist-dev's 18,000 test images (None for the photos)."""
    if source != "mnist":
        return None
    import pandas as pd

    from bench.mnist_cnn import SOURCE

    truth = pd.read_csv(SOURCE / "solution.csv").set_index("ImageId")["Label"]
    submitted = pd.read_csv(record["submission"]).set_index("ImageId")["Label"]
    return round(float((submitted == truth.loc[submitted.index]).mean()), 4)


if __name__ == "__main__":
    main()
