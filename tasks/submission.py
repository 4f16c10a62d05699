"""Probabilities to a competition's submission form, checked against its sample before any write."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.competitions import CompetitionSpec, read_csv
from tasks.errors import SubmissionError
from tasks.files import atomic_write_text, sha256_text
from tasks.index import TEST, read_index


def expected_columns(spec: CompetitionSpec) -> list[str]:
    if spec.submission_form == "label":
        return [spec.submission_id_column, spec.submission_label_column]
    return [spec.submission_id_column, *spec.class_names]


def to_submission_frame(spec: CompetitionSpec, test_ids: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per test id: the most probable class name, or one probability column per class."""
    if probabilities.shape != (len(test_ids), spec.num_classes):
        raise SubmissionError(f"probabilities have shape {probabilities.shape}, expected "
                              f"({len(test_ids)}, {spec.num_classes}): one row per test id, one column per class")
    if spec.submission_form == "label":
        labels = np.asarray(spec.class_names)[probabilities.argmax(axis=1)]
        return pd.DataFrame({spec.submission_id_column: test_ids, spec.submission_label_column: labels})
    frame = pd.DataFrame(probabilities, columns=list(spec.class_names))
    frame.insert(0, spec.submission_id_column, test_ids)
    return frame


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
    if empty.any().any():
        row, column = (int(index) for index in np.argwhere(empty.to_numpy())[0])
        raise SubmissionError(f"{source}: row {row + 2}, column {header[column]!r}: empty or NaN value")
    if spec.submission_form == "label":
        _check_labels(frame[spec.submission_label_column], spec, source)
    else:
        _check_probabilities(frame[list(spec.class_names)], source)


def _check_labels(labels: pd.Series, spec: CompetitionSpec, source: str) -> None:
    unknown = ~labels.isin(spec.class_names)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise SubmissionError(f"{source}: row {row + 2}, column {spec.submission_label_column!r}: label "
                              f"{labels.iloc[row]!r} is not one of {list(spec.class_names)}")


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
    """Turn the blend's test probabilities into a validated file in data/06_submissions/<backend>/<competition>/."""
    test_ids = read_index(plan.index_dir).split(TEST)["id"].to_numpy(dtype=str)
    frame = to_submission_frame(plan.spec, test_ids, np.load(Path(blend_dir) / "test.npy"))
    return write_submission(frame, Path(plan.raw_dir) / plan.spec.sample_submission, plan.spec,
                            plan.paths.submissions(plan.competition))
