"""Probabilities (and a decision) to a competition's submission form, checked against its sample before any write.

Forms: `label` (one class name or grade), `probabilities` (one column per class), `probability` (binary: the
positive class's), `tags` (the space-separated tags that apply; none is an empty answer) and `ranked` (up to K
space-separated labels, most likely first).
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.competitions import CompetitionSpec, read_csv, shown_names
from tasks.errors import SubmissionError
from tasks.files import atomic_write_text, sha256_text
from tasks.index import TEST, read_index
from tasks.metrics import apply_decision, default_decision

DECISION_FILE = "decision.json"


def expected_columns(spec: CompetitionSpec) -> list[str]:
    if spec.submission_form == "probabilities":
        return [spec.submission_id_column, *spec.class_names]
    return [spec.submission_id_column, spec.submission_label_column]


def to_submission_frame(spec: CompetitionSpec, test_ids: np.ndarray, probabilities: np.ndarray,
                        decision: dict | None = None) -> pd.DataFrame:
    """One row per test id in the spec's form, the answers made by `decision` (tasks/decisions.py; None: the
    metric's unfitted default: argmax, 0.5 per tag, the top K, the rounded expected grade)."""
    if probabilities.shape != (len(test_ids), spec.num_classes):
        raise SubmissionError(f"probabilities have shape {probabilities.shape}, expected "
                              f"({len(test_ids)}, {spec.num_classes}): one row per test id, one column per class")
    if spec.submission_form == "probabilities":
        frame = pd.DataFrame(probabilities, columns=list(spec.class_names))
        frame.insert(0, spec.submission_id_column, test_ids)
        return frame
    if spec.submission_form == "probability":
        return _frame(spec, test_ids, probabilities[:, 1])
    names = np.asarray(spec.class_names)
    answers = apply_decision(probabilities, decision or default_decision(spec.metric, spec.num_classes, spec.task))
    if spec.submission_form == "label":
        return _frame(spec, test_ids, names[answers])
    if spec.submission_form == "tags":
        return _frame(spec, test_ids, [" ".join(names[row.astype(bool)]) for row in answers])
    return _frame(spec, test_ids, [" ".join(names[row]) for row in answers])


def _frame(spec: CompetitionSpec, test_ids: np.ndarray, answers) -> pd.DataFrame:
    return pd.DataFrame({spec.submission_id_column: test_ids, spec.submission_label_column: answers})


def validate_submission(frame: pd.DataFrame, sample: pd.DataFrame, spec: CompetitionSpec, source: str) -> None:
    """Check a submission (read as strings) against the sample: header, ids and order, rows, labels, no NaN."""
    header = list(frame.columns)
    if header != list(sample.columns) or header != expected_columns(spec):
        raise SubmissionError(f"{source}: wrong header {header}; expected {list(sample.columns)}")
    if len(frame) != len(sample):
        raise SubmissionError(f"{source}: {len(frame)} rows; expected {len(sample)}, one per test id")
    id_column = spec.submission_id_column
    ids, expected_ids = frame[id_column].astype(str).tolist(), sample[id_column].astype(str).tolist()
    if set(ids) != set(expected_ids):
        unknown = sorted(set(ids) - set(expected_ids))[:3]
        missing = sorted(set(expected_ids) - set(ids))[:3]
        raise SubmissionError(f"{source}: column {id_column!r}: ids differ from the sample submission "
                              f"(unknown {unknown}, missing {missing})")
    if ids != expected_ids:
        row = next(row for row, (got, want) in enumerate(zip(ids, expected_ids)) if got != want)
        raise SubmissionError(f"{source}: row {row + 2}: id {ids[row]!r} out of order; "
                              f"the sample submission has {expected_ids[row]!r} there")
    empty = frame.isin(["", "nan", "NaN", "None"])
    if spec.submission_form == "tags":  # no tag is an answer
        empty[spec.submission_label_column] = False
    if empty.any().any():
        row, column = (int(index) for index in np.argwhere(empty.to_numpy())[0])
        raise SubmissionError(f"{source}: row {row + 2}, column {header[column]!r}: empty or NaN value")
    if spec.submission_form == "probabilities":
        _check_probabilities(frame[list(spec.class_names)], source)
    elif spec.submission_form == "probability":
        _check_probabilities(frame[[spec.submission_label_column]], source)
    else:
        check_answers(frame[spec.submission_label_column], spec, source)


def check_answers(answers: pd.Series, spec: CompetitionSpec, source: str, most: int | None = None,
                  form: str | None = None) -> None:
    """Every answer in the form (default: the spec's): one known label or grade; known tags; at most K known labels
    (ranked). `most`: how many labels an answer may hold (default: 1 for a label, K for ranked, any for tags)."""
    form, column = form or spec.submission_form, spec.submission_label_column
    most = most or {"label": 1, "ranked": spec.top_k}.get(form)
    known, word = set(spec.class_names), {"tags": "tag", "label": "grade" if spec.task == "ordinal" else "label"}
    for row, text in enumerate(answers.astype(str)):
        if form == "label" and text in known:  # a class name may hold spaces ("Sugar beet")
            continue
        items = text.split()
        if most is not None and len(items) > most:
            wanted = "one" if most == 1 else f"at most {most} ({spec.metric}), space-separated, most likely first"
            raise SubmissionError(f"{source}: row {row + 2}, column {column!r}: {text!r} holds {len(items)} labels; "
                                  f"expected {wanted}")
        unknown = [item for item in items if item not in known]
        if unknown:
            what = word.get(form, "label")
            raise SubmissionError(f"{source}: row {row + 2}, column {column!r}: {what} {unknown[0]!r} is not one of "
                                  f"the {what}s {shown_names(spec.class_names)}")


def _check_probabilities(columns: pd.DataFrame, source: str) -> None:
    values = columns.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row, column = (int(index) for index in np.argwhere(bad)[0])
        raise SubmissionError(f"{source}: row {row + 2}, column {columns.columns[column]!r}: "
                              f"{columns.iat[row, column]!r} is not a probability in [0, 1]")


def read_submission(path: Path) -> pd.DataFrame:
    return read_csv(Path(path), [])


def render_submission(frame: pd.DataFrame, sample: pd.DataFrame, spec: CompetitionSpec, source: str) -> str:
    """The CSV text of a submission, validated as it will be read back."""
    text = frame.to_csv(index=False, float_format="%.6g")
    validate_submission(pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False), sample, spec, source)
    return text


def write_submission(frame: pd.DataFrame, sample_path: Path, spec: CompetitionSpec, directory: Path) -> Path:
    """Validate, then write atomically to `<time>-<hash>.csv`; nothing is written when invalid."""
    sample = read_csv(sample_path, [spec.submission_id_column])
    text = render_submission(frame, sample, spec, source="submission")
    digest = sha256_text(text)[:12]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return atomic_write_text(directory / f"{stamp}-{digest}.csv", text)


def write_submission_file(plan, blend_dir: Path) -> Path:
    """Turn the blend's test probabilities into a validated file in data/06_submissions/<backend>/<competition>/,
    answered by the blend's decision (fitted on its out-of-fold rows) where it has one."""
    test_ids = read_index(plan.index_dir).split(TEST)["id"].to_numpy(dtype=str)
    decision_path = Path(blend_dir) / DECISION_FILE
    decision = json.loads(decision_path.read_text()) if decision_path.is_file() else None
    frame = to_submission_frame(plan.spec, test_ids, np.load(Path(blend_dir) / "test.npy"), decision)
    return write_submission(frame, Path(plan.raw_dir) / plan.spec.sample_submission, plan.spec,
                            plan.paths.submissions(plan.competition))
