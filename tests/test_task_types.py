"""Every task type end to end through the command line (issue 20): each practice layout created from its files
alone, run with heads on a small backbone and with the default recipe, and scored above chance: the blend's honest
(nested) CV beats what the training prior alone scores with the same decision fitted, and so does its public score."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.backends.local import LocalBackend
from tasks.backends.practice_layouts import PRACTICE, build_practice
from tasks.decisions import nested_score
from tasks.index import read_index
from tasks.metrics import higher_is_better, score
from tasks.scoring import score_submission, solution_targets
from tasks.submission import read_submission
from tests.factories import tiny_backbone_file
from tests.test_practice_layouts import SOURCES

runner = CliRunner()
QUICK = {("planet-understanding-the-amazon-from-space", "heads"), ("aptos2019-blindness-detection", "heads")}


def prior(targets: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """The training prior for every row: class frequencies, or each tag's frequency."""
    frequencies = targets.mean(axis=0) if targets.ndim == 2 else np.bincount(targets, minlength=columns) / len(targets)
    return np.tile(np.clip(frequencies, 1e-6, 1), (rows, 1))


def better(metric: str, ours: float, chance: float, margin: float = 0.02) -> bool:
    return ours > chance + margin if higher_is_better(metric) else ours < chance - margin


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_backbone_file(tmp_path_factory.mktemp("tiny") / "tiny.keras")


CASES = [pytest.param(name, recipe, marks=[] if (name, recipe) in QUICK else [pytest.mark.slow],
                      id=f"{name.split('-')[0]}-{recipe}") for name in sorted(PRACTICE) for recipe in ("heads", "default")]


@pytest.mark.parametrize("name, recipe", CASES)
def test_each_layout_and_task_runs_end_to_end_and_beats_chance(prefect_server, tmp_path, tiny, name, recipe):
    archive, solution = build_practice(name, SOURCES[PRACTICE[name][1]](), tmp_path / "zips")
    data_dir = tmp_path / "data"
    created = runner.invoke(app, ["local", "create", "practice", "--from", str(archive), "--solution", str(solution),
                                  "--data-dir", str(data_dir)])
    assert created.exit_code == 0, created.output
    members = (["--member", "logistic", "--member", "mlp"] if recipe == "heads" else ["--finetune-size", "32",
                                                                                       "--finetune-epochs", "2"])
    result = runner.invoke(app, ["run", "practice", "--data-dir", str(data_dir), "--backbone", f"file:{tiny}",
                                 "--folds", "3", "--epochs", "8", *members])
    assert result.exit_code == 0, result.output + repr(result.exception)
    record = json.loads(Path(result.output.strip().splitlines()[-1]).read_text())
    backend, metric = LocalBackend(data_dir / "local" / "practice"), record["metric"]
    index = read_index(Path(data_dir / "02_index" / "local" / "practice"))
    targets, folds = index.targets(), index.split("train")["fold"].to_numpy()
    columns = len(backend.spec.class_names)
    chance_cv = nested_score(targets, prior(targets, len(targets), columns), folds, metric, index.task)
    assert better(metric, record["blend_nested_cv_score"], chance_cv), (record["members"], chance_cv)
    # On the whole test set (public and private rows: a few dozen each here), against the prior's answers.
    assert record["backend_result"]["status"] == "complete", record["backend_result"]
    solution = backend.solution().assign(Usage="Public")
    ours = score_submission(read_submission(Path(record["submission"])), solution, backend.spec)["public"]
    chance_test = _prior_test_score(backend, solution, targets, metric)
    assert better(metric, ours, chance_test, margin=0.0), (ours, chance_test, record["decision"])
    assert record["decision"]["kind"] == {"binary": "probabilities", "multilabel": "thresholds", "ranking": "top_k",
                                          "ordinal": "cut_points"}.get(index.task, record["decision"]["kind"])


def _prior_test_score(backend: LocalBackend, solution: pd.DataFrame, targets, metric: str) -> float:
    """What answering every test row with the training prior scores (the decision: the metric's plain one)."""
    truth = solution_targets(solution[backend.spec.submission_label_column], backend.spec, "solution.csv")
    return score(truth, prior(targets, len(solution), len(backend.spec.class_names)), metric)
