"""Property-based tests (issue 12) of the CSV loader and the submission validator: whatever the rows, the
answer is the data or one HeadstartError, never another exception; valid data round-trips."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.competitions import CompetitionSpec, read_csv, read_pixels
from tasks.errors import CompetitionDataError, HeadstartError, SubmissionError
from tasks.submission import read_submission, render_submission, to_submission_frame, validate_submission

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TINY = CompetitionSpec(slug="tiny", layout="pixels_csv", class_names=("a", "b", "c"), test_csv="test.csv",
                       image_shape=(2, 2, 1), sample_submission="sample.csv", submission_id_column="id")
PIXELS = ["pixel0", "pixel1", "pixel2", "pixel3"]

cells = st.one_of(st.integers(-300, 600).map(str), st.floats(allow_nan=True).map(str),
                  st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6), st.just(""))
good_cells = st.integers(0, 255).map(str)


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "rows.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_are_a_frame_or_one_clear_error(tmp_path, data):
    try:
        read_csv(_write(tmp_path, data), ["label"])
    except HeadstartError:
        pass


@FAST
@given(st.lists(st.lists(cells, min_size=5, max_size=5), min_size=1, max_size=4))
def test_any_pixel_rows_are_pixels_or_one_clear_error(tmp_path, rows):
    text = "\n".join([",".join(["label", *PIXELS])] + [",".join(f'"{cell}"' if "," in cell or '"' in cell or "\n"
                                                                in cell else cell for cell in row) for row in rows])
    try:
        frame = read_csv(_write(tmp_path, text), ["label"], text_only=False)
        pixels = read_pixels(tmp_path / "rows.csv", frame, TINY)
    except CompetitionDataError as error:
        assert "np." not in str(error)
        return
    assert pixels.shape == (len(frame), 2, 2, 1) and pixels.dtype == np.uint8


@FAST
@given(st.lists(st.lists(good_cells, min_size=4, max_size=4), min_size=1, max_size=5))
def test_valid_pixel_rows_round_trip(tmp_path, rows):
    text = "\n".join([",".join(["label", *PIXELS])] + [",".join(["a", *row]) for row in rows])
    frame = read_csv(_write(tmp_path, text), ["label"], text_only=False)
    pixels = read_pixels(tmp_path / "rows.csv", frame, TINY)
    assert pixels.reshape(len(rows), 4).tolist() == [[int(cell) for cell in row] for row in rows]


SAMPLE = pd.DataFrame({"id": ["1", "2", "3"], "label": ["a", "a", "a"]})
submission_cells = st.one_of(st.sampled_from(["1", "2", "3", "a", "b", "c", "", "nan", "4"]),
                             st.text(max_size=4))


@FAST
@given(st.lists(st.tuples(submission_cells, submission_cells), max_size=5),
       st.sampled_from([["id", "label"], ["label", "id"], ["id", "Label"]]))
def test_any_submission_is_valid_or_one_submission_error(rows, header):
    frame = pd.DataFrame(rows, columns=header, dtype=str) if rows else pd.DataFrame(columns=header, dtype=str)
    try:
        validate_submission(frame, SAMPLE, TINY, source="submission.csv")
    except SubmissionError:
        return
    assert frame["id"].tolist() == ["1", "2", "3"] and set(frame["label"]) <= {"a", "b", "c"}


@FAST
@given(st.lists(st.lists(st.floats(0, 1, allow_nan=False), min_size=3, max_size=3), min_size=3, max_size=3))
def test_a_valid_submission_round_trips(tmp_path, probabilities):
    frame = to_submission_frame(TINY, np.array(["1", "2", "3"]), np.asarray(probabilities))
    path = _write(tmp_path, render_submission(frame, SAMPLE, TINY, source="submission"))
    read_back = read_submission(path)
    validate_submission(read_back, SAMPLE, TINY, source=path.name)
    assert read_back.equals(pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype=str, keep_default_na=False))
