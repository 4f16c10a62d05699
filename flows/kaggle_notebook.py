"""Inside a Kaggle notebook: run the stages on the mounted competition and leave submission.csv.

The rendered kernels (kernels/) call `run_in_notebook` and nothing else. Kaggle's image has no Prefect,
and a one-shot offline run gains nothing from orchestration: the stages run as plain calls, in the one
order tasks/stages.py writes down. Nothing here imports Prefect.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from tasks.errors import NotFoundError

KIT_ROOT = Path(__file__).resolve().parent.parent


def competition_input(input_root: Path, competition: str) -> Path:
    """The mounted competition folder: /kaggle/input/<slug> (or /kaggle/input/competitions/<slug>)."""
    for candidate in (input_root / competition, input_root / "competitions" / competition):
        if candidate.is_dir():
            return candidate
    attached = sorted(path.name for path in input_root.glob("*")) if input_root.is_dir() else []
    raise NotFoundError(f"{input_root}: competition {competition!r} is not attached (found {attached}); "
                        "add it to competition_sources in kernel-metadata.json")


def notebook_config(competition: str, input_dir: Path, data_dir: Path, spec: str | None, settings: dict):
    """The run's Config: mounted input, no submission; `settings` override fields (`epochs` sets train.epochs)."""
    from tasks.config import Config

    settings = dict(settings or {})
    epochs = settings.pop("epochs", None)
    for key in ("members", "backbones", "weights_dirs"):
        if key in settings:
            settings[key] = tuple(settings[key])
    config = Config(competition=competition, data_dir=str(data_dir), backend="kaggle", spec=spec,
                    input_dir=str(input_dir), submit=False, **settings)
    if epochs is not None:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=int(epochs)))
    return config


def run_in_notebook(competition: str, input_root: str | Path = "/kaggle/input",
                    working_root: str | Path = "/kaggle/working", spec: str | None = None,
                    settings: dict | None = None) -> Path:
    """Train on the mounted competition and write <working>/submission.csv (and headstart-run.json)."""
    from tasks.stages import compete

    input_root, working_root = Path(input_root), Path(working_root)
    spec_path = str(KIT_ROOT / spec) if spec and spec.endswith((".toml", ".json")) else spec
    # Intermediate layers go to a scratch folder: everything in /kaggle/working becomes output.
    data_dir = Path(tempfile.mkdtemp(prefix="headstart-data-"))
    # Weights come from attached datasets and models, wherever the input root is.
    settings = {"weights_dirs": [str(input_root)], **(settings or {})}
    config = notebook_config(competition, competition_input(input_root, competition), data_dir, spec_path, settings)
    run_json = Path(compete(config))
    working_root.mkdir(parents=True, exist_ok=True)
    submission = Path(json.loads(run_json.read_text())["submission"])
    shutil.copyfile(run_json, working_root / "headstart-run.json")
    return Path(shutil.copyfile(submission, working_root / "submission.csv"))
