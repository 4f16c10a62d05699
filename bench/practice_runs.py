"""The practice competitions of issue 20 through the command line, members on the shared EfficientNet-Lite0: each
created from its zip with no --spec and run with heads (`--member logistic --member mlp`) and with the default
recipe; the blend's CV, nested CV and whole-test score beside what the training prior alone scores (chance).

    .venv/bin/python -m bench.make_practice /tmp/practice --limit 1000
    .venv/bin/python -m bench.practice_runs /tmp/practice [--recipes heads,default] [--name COMPETITION ...]

Also, for the ordinal task (issue 20 item 6, "classification with cut points, or regression: measure"), both ways
on the same Lite0 features: a logistic regression's expected grade and a ridge regression's grade, each cut into
grades at points fitted on the other folds, scored by quadratic weighted kappa.
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

from bench.common import LITE0
from tasks.backends.practice_layouts import PRACTICE

HEADSTART = str(Path(sys.executable).with_name("headstart"))
RECIPES = {"heads": ["--member", "logistic", "--member", "mlp"], "default": []}


def headstart(*arguments, data_dir: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([HEADSTART, *map(str, arguments), "--data-dir", str(data_dir)], env=environment,
                          capture_output=True, text=True)


def chance(backend, targets, folds, metric: str, task: str) -> tuple[float, float]:
    """What the training prior alone scores: nested on the training rows, and on the whole test set."""
    import numpy as np

    from tasks.decisions import nested_score
    from tasks.metrics import score
    from tasks.scoring import solution_targets

    columns = len(backend.spec.class_names)
    frequencies = targets.mean(axis=0) if targets.ndim == 2 else np.bincount(targets, minlength=columns) / len(targets)
    prior = lambda rows: np.tile(np.clip(frequencies, 1e-6, 1), (rows, 1))  # noqa: E731
    solution = backend.solution()
    truth = solution_targets(solution[backend.spec.submission_label_column], backend.spec, "solution.csv")
    return nested_score(targets, prior(len(targets)), folds, metric, task), score(truth, prior(len(truth)), metric)


def run_one(name: str, recipe: str, practice: Path, data_dir: Path) -> dict:
    from tasks.backends.local import LocalBackend
    from tasks.index import read_index
    from tasks.scoring import score_submission
    from tasks.submission import read_submission

    local = name.split("-")[0].lower()
    if not (data_dir / "local" / local / "competition.json").is_file():
        created = headstart("local", "create", local, "--from", practice / f"{name}.zip", "--solution",
                            practice / f"{name}-solution.csv", data_dir=data_dir)
        if created.returncode:
            raise SystemExit(created.stderr)
    started = time.perf_counter()
    done = headstart("run", local, "--json", "--backbone", f"file:{LITE0}", "--image-size", "128", *RECIPES[recipe],
                     data_dir=data_dir)
    if done.returncode:
        raise SystemExit(f"{name} {recipe}: {done.stderr[-3000:]}")
    seconds = time.perf_counter() - started
    record = json.loads(done.stdout)
    backend = LocalBackend(data_dir / "local" / local)
    index = read_index(data_dir / "02_index" / "local" / local)
    folds = index.split("train")["fold"].to_numpy()
    chance_cv, chance_test = chance(backend, index.targets(), folds, record["metric"], index.task)
    test = score_submission(read_submission(Path(record["submission"])), backend.solution().assign(Usage="Public"),
                            backend.spec)["public"]
    return {"competition": name, "recipe": recipe, "task": index.task, "metric": record["metric"],
            "members": {member: round(cv, 4) for member, cv in record["members"].items()},
            "cv": round(record["blend_cv_score"], 4), "nested_cv": round(record["blend_nested_cv_score"], 4),
            "test": round(test, 4), "chance_cv": round(chance_cv, 4), "chance_test": round(chance_test, 4),
            "train": int(len(folds)), "test_rows": len(backend.solution()), "seconds": round(seconds),
            "decision": record["decision"]["kind"]}


def ordinal_both_ways(data_dir: Path) -> dict:
    """Classification with cut points against regression with cut points, on the aptos practice's Lite0 features."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    from tasks.decisions import fit_cut_points
    from tasks.features import load_features
    from tasks.index import read_index
    from tasks.metrics import apply_decision, quadratic_weighted_kappa

    index = read_index(data_dir / "02_index" / "local" / "aptos2019")
    grades, folds = index.targets(), index.split("train")["fold"].to_numpy()
    features = load_features(next((data_dir / "03_features" / "local" / "aptos2019").glob("*-identity-*")))[0]
    grades_count = int(grades.max()) + 1
    results = {}
    for way in ("classification", "regression"):
        out_of_fold = np.zeros(len(grades))
        for fold in np.unique(folds):
            train, held = folds != fold, folds == fold
            scaler = StandardScaler().fit(features[train])
            x_train, x_held = scaler.transform(features[train]), scaler.transform(features[held])
            if way == "classification":
                model = LogisticRegression(C=0.1, max_iter=2000).fit(x_train, grades[train])
                probabilities = np.zeros((held.sum(), grades_count))
                probabilities[:, model.classes_] = model.predict_proba(x_held)
                out_of_fold[held] = probabilities @ np.arange(grades_count)
            else:
                out_of_fold[held] = Ridge(alpha=100.0).fit(x_train, grades[train]).predict(x_held)
        answers = np.zeros(len(grades), dtype=int)
        for fold in np.unique(folds):  # cut points fitted on the other folds' rows only
            held = folds == fold
            cuts = fit_cut_points(grades[~held], _as_probabilities(out_of_fold[~held], grades_count))
            answers[held] = apply_decision(_as_probabilities(out_of_fold[held], grades_count),
                                           {"kind": "cut_points", "cut_points": cuts})
        results[way] = round(quadratic_weighted_kappa(grades, answers), 4)
    return {"ordinal": results, "rows": int(len(grades))}


def _as_probabilities(expected, grades_count: int):
    """A grade (any real number) as two-point probabilities on its neighbouring grades, whose expectation it is: what
    the cut points act on."""
    import numpy as np

    expected = np.clip(expected, 0, grades_count - 1)
    low = np.floor(expected).astype(int)
    high = np.minimum(low + 1, grades_count - 1)
    probabilities = np.zeros((len(expected), grades_count))
    probabilities[np.arange(len(expected)), low] += 1 - (expected - low)
    probabilities[np.arange(len(expected)), high] += expected - low
    return probabilities


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("practice", type=Path)
    parser.add_argument("--recipes", default="heads,default")
    parser.add_argument("--name", action="append", choices=sorted(PRACTICE))
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "practice-runs")
    arguments = parser.parse_args()
    for name in arguments.name or list(PRACTICE):
        for recipe in arguments.recipes.split(","):
            print(json.dumps(run_one(name, recipe, arguments.practice, arguments.data_dir)), flush=True)
    if (arguments.data_dir / "02_index" / "local" / "aptos2019").is_dir():
        print(json.dumps(ordinal_both_ways(arguments.data_dir)), flush=True)


if __name__ == "__main__":
    main()
