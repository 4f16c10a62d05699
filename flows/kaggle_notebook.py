"""Inside a Kaggle notebook: run the stages on the mounted competition and leave submission.csv.

The rendered kernels (kernels/) call `run_in_notebook` and nothing else; the tutorial (kernels/tutorial.ipynb),
which runs the stages one at a time, opens its competition with `notebook_competition`, here or inside Kaggle. Kaggle's image has no Prefect,
and a one-shot offline run gains nothing from orchestration: the stages run as plain calls, in the one
order tasks/stages.py writes down. Nothing here imports Prefect.
"""

from __future__ import annotations

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
    """The run's Config: mounted input, no submission; `settings` are run options by name (flows/options.py, as
    `headstart kernel push` passes them: `{"member": ["cnn"], "epochs": 3}`)."""
    from flows.options import Runner, apply_options, options_from_mapping
    from tasks.config import Config

    base = Config(competition=competition, data_dir=str(data_dir), backend="kaggle", spec=spec,
                  input_dir=str(input_dir), submit=False)
    values = options_from_mapping(dict(settings or {}), "the kernel's settings")
    for name in ("backbone", "member"):  # local KerasHub presets travel in the kit bundle, under presets/
        if name in values:
            values[name] = tuple(value.replace("hub:presets/", f"hub:{KIT_ROOT}/presets/") for value in values[name])
    config, _ = apply_options(base, Runner(), values)
    return config


def _kit_spec(spec: str | None) -> str | None:
    """A bundled spec file (`specs/<name>.toml`) as a path inside the kit; a built-in name as it is."""
    return str(KIT_ROOT / spec) if spec and spec.endswith((".toml", ".json")) else spec


def notebook_competition(competition: str, data_dir: str | Path = "data", input_root: str | Path = "/kaggle/input",
                         spec: str | None = None, public_zip: str | Path | None = None,
                         solution: str | Path | None = None):
    """The Config of a notebook's competition. Inside Kaggle (`input_root` exists): its mounted files, the data
    layers in a scratch folder, weights from the attached inputs, nothing submitted. Elsewhere: a local
    competition under `data_dir`, the built-in digits, one created before, or one created now from a
    Kaggle-layout zip, its solution and `spec`."""
    from tasks.config import Config

    input_root = Path(input_root)
    if input_root.is_dir():
        scratch = Path(tempfile.mkdtemp(prefix="headstart-data-"))  # everything in /kaggle/working is output
        return notebook_config(competition, competition_input(input_root, competition), scratch, _kit_spec(spec),
                               {"weights_dir": [str(input_root)]})
    from tasks.backends import ensure_local_competition
    from tasks.paths import DataPaths

    ensure_local_competition(competition, DataPaths(Path(data_dir)), public_zip, solution, spec)
    return Config(competition=competition, data_dir=str(data_dir))


def submit_from_notebook(config, submission: str | Path, working_root: str | Path = "/kaggle/working") -> dict | None:
    """Elsewhere: send the file through the submission guard and return the backend's record. Inside Kaggle (the
    competition mounted, no internet): leave it as <working>/submission.csv, which Kaggle takes, and return None."""
    if config.input_dir:
        Path(working_root).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(submission, Path(working_root) / "submission.csv")
        return None
    from tasks.backends import backend_for, submit_file

    return submit_file(config, backend_for(config), Path(submission))


def leaderboard_frame(config):
    """The public leaderboard, best first, as a table; empty inside Kaggle, where a notebook has no internet."""
    import pandas as pd

    if config.input_dir:
        return pd.DataFrame(columns=["rank", "team", "score", "date"])
    from tasks.backends import backend_for

    return pd.DataFrame(backend_for(config).leaderboard())


def show_pictures(*paths: str | Path) -> None:
    """Show PNG files in the notebook; where there is no IPython (a notebook run as a script, as `headstart host`
    runs one) print their paths."""
    try:
        from IPython.display import Image, display
    except ImportError:
        print(*paths, sep="\n")
        return
    display(*(Image(filename=str(path)) for path in paths))


def run_in_notebook(competition: str, input_root: str | Path = "/kaggle/input",
                    working_root: str | Path = "/kaggle/working", spec: str | None = None,
                    settings: dict | None = None) -> Path:
    """Train on the mounted competition and write <working>/submission.csv (and headstart-run.json)."""
    from tasks.record import RunRecord
    from tasks.stages import compete

    input_root, working_root = Path(input_root), Path(working_root)
    spec_path = _kit_spec(spec)
    # Intermediate layers go to a scratch folder: everything in /kaggle/working becomes output.
    data_dir = Path(tempfile.mkdtemp(prefix="headstart-data-"))
    # Weights come from attached datasets and models, wherever the input root is.
    settings = {**(settings or {}), "weights_dir": [*(settings or {}).get("weights_dir", ()), str(input_root)]}
    config = notebook_config(competition, competition_input(input_root, competition), data_dir, spec_path, settings)
    run_json = Path(compete(config))
    working_root.mkdir(parents=True, exist_ok=True)
    submission = Path(RunRecord.read(run_json).submission)
    shutil.copyfile(run_json, working_root / "headstart-run.json")
    return Path(shutil.copyfile(submission, working_root / "submission.csv"))


def execute_tutorial(config, settings: dict, output: Path, timeout: int = 3600) -> Path:
    """Run kernels/tutorial.ipynb here, top to bottom, with `settings` (run options by name) as its parameters and
    the competition and data folder of `config`; write the executed notebook to `output` (atomically)."""
    import json

    from tasks.backends.notebooks import inject_parameters, options_as_parameters
    from tasks.errors import ConfigError
    from tasks.files import atomic_write_text

    try:
        import nbclient
        import nbformat
    except ImportError:
        raise ConfigError("executing the tutorial needs Jupyter's runner: pip install nbclient ipykernel "
                          "(or pip install -e \".[dev]\")") from None
    notebook = json.loads((KIT_ROOT / "kernels" / "tutorial.ipynb").read_text())
    values = {"COMPETITION": config.competition, "DATA_DIR": str(Path(config.data_dir).resolve()),
              **options_as_parameters(notebook, settings, "the tutorial")}
    notebook = inject_parameters(notebook, values, "Injected by `headstart tutorial`")
    executed = nbformat.reads(json.dumps(notebook), as_version=4)
    nbclient.NotebookClient(executed, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(KIT_ROOT / "kernels")}}).execute()
    return atomic_write_text(Path(output), nbformat.writes(executed))
