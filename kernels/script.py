"""headstart kernel: {{title}}

competition:  {{competition}} (attached under /kaggle/input)
accelerator:  {{accelerator}}
internet:     off
datasets:     {{datasets}}
models:       {{models}}

Trains with the headstart kit (attached as a dataset) and writes /kaggle/working/submission.csv.
Nothing is submitted from here.
"""

import os
import sys
import tempfile
import zipfile
from pathlib import Path

COMPETITION = {{competition_literal}}
SPEC = {{spec_literal}}
SETTINGS = {{settings_literal}}
INPUT = Path(os.environ.get("HEADSTART_KAGGLE_INPUT", "/kaggle/input"))
WORKING = Path(os.environ.get("HEADSTART_KAGGLE_WORKING", "/kaggle/working"))


def find_kit(input_root: Path) -> Path:
    """The kit bundle dataset: unpacked by Kaggle, or still a zip (then unpacked to a scratch folder)."""
    # Anywhere below the input root: /kaggle/input/<slug>/, /kaggle/input/datasets/<owner>/<slug>/, and the
    # folder Kaggle unpacks an uploaded zip into are all seen in the wild.
    for module in sorted(input_root.rglob("flows/kaggle_notebook.py")):
        return module.parent.parent
    for archive in sorted(input_root.rglob("headstart-kit.zip")):
        target = Path(tempfile.mkdtemp(prefix="headstart-kit-"))
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(target)
        return target
    raise FileNotFoundError(f"{input_root}: the headstart kit dataset is not attached")


sys.path.insert(0, str(find_kit(INPUT)))
from flows.kaggle_notebook import run_in_notebook  # noqa: E402

print(run_in_notebook(COMPETITION, INPUT, WORKING, spec=SPEC, settings=SETTINGS))
