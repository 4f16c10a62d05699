"""Scoring a submission against a hidden solution as Kaggle does, for every task type (local competitions and
`headstart host`): the solution and the submission read into targets and answers, checked first.

A solution holds, per test id, the truth in the competition's terms: a class name (multiclass; binary: the class
name or 0/1, 1 the positive class), an integer grade (ordinal), the space-separated tags (multilabel), or the one
true label (ranking).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.competitions import CompetitionSpec, encode_labels, encode_tags, read_csv
from tasks.errors import CompetitionDataError, SubmissionError
from tasks.metrics import get_metric, score_answers, score_probabilities
from tasks.submission import check_answers, expected_columns

USAGE_COLUMN = "Usage"


def solution_targets(values: pd.Series, spec: CompetitionSpec, source: str) -> np.ndarray:
    """A solution's truth column as targets (class indices, or a tag matrix), naming the first bad row."""
    column = spec.submission_label_column
    values = values.astype(str)
    if spec.task == "binary":  # 0/1 for negative/positive, where those are not class names themselves
        mapped = values.map(dict(zip("01", spec.class_names)))
        values = values.where(values.isin(spec.class_names) | mapped.isna(), mapped)
    form = "tags" if spec.task == "multilabel" else "label"
    try:
        check_answers(values, spec, source, form=form, most=None if form == "tags" else 1)
    except SubmissionError as error:
        raise CompetitionDataError(str(error)) from None
    if form == "tags":
        return encode_tags(values, spec.class_names, Path(source), column)
    return encode_labels(values, spec.class_names, Path(source), column)


def submission_answers(submission: pd.DataFrame, spec: CompetitionSpec) -> np.ndarray:
    """A validated submission's answers: probabilities (N, C) (binary: [1 - p, p]), class indices (N,), a tag
    matrix (N, T), or ranked class indices (N, K) padded with -1."""
    column = spec.submission_label_column
    if spec.submission_form == "probabilities":
        return submission[list(spec.class_names)].to_numpy(dtype=np.float64)
    if spec.submission_form == "probability":
        positive = submission[column].to_numpy(dtype=np.float64)
        return np.stack([1 - positive, positive], axis=1)
    if spec.submission_form == "tags":
        return encode_tags(submission[column], spec.class_names, Path("submission"), column)
    lookup = {name: index for index, name in enumerate(spec.class_names)}
    if spec.submission_form == "label":
        return submission[column].map(lookup).to_numpy(dtype=np.int64)
    ranked = np.full((len(submission), spec.top_k), -1, dtype=np.int64)
    for row, text in enumerate(submission[column].astype(str)):
        labels = [lookup[label] for label in text.split()]
        ranked[row, : len(labels)] = labels
    return ranked


def score_submission(submission: pd.DataFrame, solution: pd.DataFrame, spec: CompetitionSpec) -> dict:
    """Public and private scores of a validated submission (rows aligned by id) by the spec's metric."""
    aligned = solution.set_index(spec.submission_id_column).loc[submission[spec.submission_id_column]]
    truth = solution_targets(aligned[spec.submission_label_column].reset_index(drop=True), spec, "solution.csv")
    answers = submission_answers(submission, spec)
    by_probabilities = spec.submission_form in ("probabilities", "probability")
    if not by_probabilities and get_metric(spec.metric).scores == "probabilities":
        raise SubmissionError(f"metric {spec.metric} scores probabilities; this submission holds answers")
    scores = {}
    for usage in ("Public", "Private"):
        rows = (aligned[USAGE_COLUMN] == usage).to_numpy()
        if not rows.any():
            scores[usage.lower()] = None
        elif by_probabilities:
            scores[usage.lower()] = score_probabilities(truth[rows], answers[rows], spec.metric)
        else:
            scores[usage.lower()] = score_answers(truth[rows], answers[rows], spec.metric)
    return scores


def checked_sample(sample: pd.DataFrame, spec: CompetitionSpec, source: str) -> pd.DataFrame:
    """A competition's sample submission, checked to have the spec's header."""
    if list(sample.columns) != expected_columns(spec):
        keys = "class_names" if spec.submission_form == "probabilities" else "submission_label_column"
        raise CompetitionDataError(f"{source}: wrong header {list(sample.columns)[:8]}; the spec expects "
                                   f"{expected_columns(spec)[:8]} (submission_id_column and {keys})")
    if sample.empty:
        raise CompetitionDataError(f"{source}: no rows; expected one row per test id")
    return sample


def checked_solution(path: Path, sample: pd.DataFrame, spec: CompetitionSpec, sample_source: str,
                     test_count: int | None) -> pd.DataFrame:
    """The solution CSV, its truth checked against the task and its ids against the sample submission's. Where
    they differ and the test set's size (`test_count`) sides with the solution, the sample is the one at fault."""
    id_column, label_column = spec.submission_id_column, spec.submission_label_column
    solution = read_csv(path, [id_column, label_column])
    solution_targets(solution[label_column], spec, str(path))
    ids, sample_ids = solution[id_column], sample[id_column]
    if ids.duplicated().any():
        _check_ids(path, ids, sample_ids, id_column)
    short = sample_ids.isin(set(ids)).all() and len(sample_ids) < len(ids) == test_count
    if short:
        first = ids[~ids.isin(set(sample_ids))].iloc[0]
        raise CompetitionDataError(f"{sample_source}: {len(sample_ids)} rows, but the test set has {test_count} "
                                   f"images (as {path.name} has); id {first!r} is missing from it; expected one row "
                                   "per test id")
    _check_ids(path, ids, sample_ids, id_column)
    return solution


def _check_ids(path: Path, ids: pd.Series, sample_ids: pd.Series, column: str) -> None:
    """The solution's ids are exactly the sample submission's: name the first duplicated, unknown or missing id."""
    duplicated = ids.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        first = int(np.flatnonzero((ids == ids.iloc[row]).to_numpy())[0])
        raise CompetitionDataError(f"{path}: row {row + 2}, column {column!r}: duplicate id {ids.iloc[row]!r} "
                                   f"(also at row {first + 2}); each of the sample submission's ids appears once")
    unknown = ~ids.isin(set(sample_ids))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise CompetitionDataError(f"{path}: row {row + 2}, column {column!r}: id {ids.iloc[row]!r} is not in the "
                                   "sample submission")
    missing = sample_ids[~sample_ids.isin(set(ids))]
    if len(missing):
        raise CompetitionDataError(f"{path}: column {column!r}: {len(missing)} of the sample submission's ids are "
                                   f"missing, the first {missing.iloc[0]!r}")
