"""A competition's task type, submission form, classes and metric, told from its sample submission's answers and
its training labels (tasks/spec_inference.py reads those from the files).

The sample's form decides, then the training labels: one column per class is multiclass probabilities (log
loss); one probability column (values like 0.5) is binary (ROC AUC); several space-separated tags per training
image are multilabel (mean F2); several space-separated labels per sample answer where training has one are
ranking (map@K, K the labels per answer); integer labels 0..G with 3 to 6 grades are ordinal (quadratic weighted
kappa); anything else is multiclass labels (accuracy). A metric given (--metric, spec.toml or Kaggle's name)
wins, and picks between readings it decides (kappa makes integer labels grades; map@K makes labels ranked).
"""

from __future__ import annotations

import pandas as pd

from tasks.competitions import FORMS, default_metric
from tasks.metrics import get_metric

GRADES = range(3, 7)  # how many integer grades an ordinal competition has (aptos: 0..4)


class TaskUnclear(Exception):
    """The files do not say: `reason` and the spec keys that would."""

    def __init__(self, reason: str, *keys: str):
        super().__init__(reason)
        self.reason, self.keys = reason, keys


def infer_task(columns: list[str], answers: pd.Series | None, labels: pd.Series, given: dict,
               metric: str | None, single: bool = False) -> dict:
    """task, submission_form, class_names and metric (keys in `given` win; `metric` is the one given or Kaggle's,
    else None; `single`: the labels are whole names, never tags, as folder names are). Raises TaskUnclear naming
    the keys to set."""
    tags = not single and labels.astype(str).str.split().str.len().max() > 1
    count = labels_per_answer(answers, labels) or 1
    task, form = _task_and_form(columns, answers, labels, tags, count)
    task, form = given.get("task", task), given.get("submission_form", FORMS[given["task"]][0]
                                                     if "task" in given else form)
    if metric and task not in get_metric(metric).tasks:
        task, form = _task_for_metric(metric, task, form, count)
    if metric and get_metric(metric).scores == "probabilities" and form not in ("probabilities", "probability"):
        raise TaskUnclear(f"metric {metric} scores probabilities, but the sample submission has one answer column "
                          f"({', '.join(columns)}), not one probability column per class", "metric", "submission_form")
    if form == "probabilities":
        class_names = tuple(columns[1:])
    elif task == "multilabel":
        class_names = tuple(sorted({tag for text in labels.astype(str) for tag in text.split()}))
    else:
        class_names = sorted_labels(labels)
    if task == "binary" and len(class_names) != 2 and "class_names" not in given:
        raise TaskUnclear(f"the sample's one probability column means a binary task, but the training labels have "
                          f"{len(class_names)} classes", "task", "class_names")
    chosen = metric or default_metric(task, form)
    if task == "ranking" and not metric:
        chosen = f"map@{min(max(count, 1), 10)}"
    return {"task": task, "submission_form": form, "class_names": class_names, "metric": chosen}


def labels_per_answer(answers: pd.Series | None, labels: pd.Series) -> int | None:
    """The most space-separated labels in a sample answer (an answer that is a class name counts one: "Sugar beet")."""
    if answers is None or answers.empty:
        return None
    answers = answers.astype(str)
    answers = answers[~answers.isin(set(labels.astype(str)))]
    return 1 if answers.empty else int(answers.str.split().str.len().max())


def _task_and_form(columns: list[str], answers: pd.Series | None, labels: pd.Series, tags: bool,
                   count: int) -> tuple[str, str]:
    if len(columns) > 2:
        return "multiclass", "probabilities"
    if tags:
        return "multilabel", "tags"
    if count > 1:
        return "ranking", "ranked"
    if answers is not None and is_probability_column(answers):
        return "binary", "probability"
    if is_grades(labels):
        return "ordinal", "label"
    return "multiclass", "label"


def _task_for_metric(metric: str, task: str, form: str, count: int) -> tuple[str, str]:
    """The reading a given metric asks for, where the files allow it; else TaskUnclear naming metric and task."""
    wanted = get_metric(metric).tasks
    if form == "label" and task in ("multiclass", "ordinal"):
        for other in ("ordinal", "multiclass", "ranking"):
            if other in wanted:
                return other, FORMS[other][0]
    raise TaskUnclear(f"metric {metric} scores {' or '.join(wanted)} competitions, but the files read as a {task} "
                      f"one (submission form {form}{', ' + str(count) + ' labels per answer' if count > 1 else ''})",
                      "metric", "task")


def is_probability_column(answers: pd.Series) -> bool:
    """Numbers in 0..1, some not whole (a sample's 0.5): a probability, not a label."""
    numbers = pd.to_numeric(answers, errors="coerce")
    return bool(numbers.notna().all() and numbers.between(0, 1).all() and (numbers != numbers.round()).any())


def is_grades(labels: pd.Series) -> bool:
    """Whole numbers forming a run of 3 to 6 grades (0..4, 1..5): ordinal, not class names."""
    values = sorted({text.strip() for text in labels.astype(str)})
    if not all(value.lstrip("-").isdigit() for value in values):
        return False
    numbers = sorted(int(value) for value in values)
    return len(numbers) in GRADES and numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def sorted_labels(labels: pd.Series) -> tuple[str, ...]:
    """The distinct labels, sorted (as numbers where they all are)."""
    unique = set(labels.astype(str))
    numeric = all(label.lstrip("-").isdigit() for label in unique)
    return tuple(sorted(unique, key=(lambda label: (int(label), label)) if numeric else None))
