import numpy as np
import pandas as pd
import pytest

from tasks.competitions import DIGIT_RECOGNIZER, spec_from_dict
from tasks.submission import (
    SubmissionError,
    to_submission_frame,
    validate_submission,
    write_submission,
)

SAMPLE = pd.DataFrame({"ImageId": ["1", "2", "3"], "Label": ["0", "0", "0"]})


def _probabilities(labels):
    probabilities = np.full((len(labels), 10), 0.01)
    probabilities[np.arange(len(labels)), labels] = 0.91
    return probabilities


def test_label_form():
    frame = to_submission_frame(DIGIT_RECOGNIZER, np.array(["1", "2", "3"]), _probabilities([7, 0, 3]))
    assert list(frame.columns) == ["ImageId", "Label"] and list(frame["Label"]) == ["7", "0", "3"]


def test_probability_form():
    spec = spec_from_dict({**DIGIT_RECOGNIZER.to_dict(), "submission_form": "probabilities", "metric": "log_loss"})
    frame = to_submission_frame(spec, np.array(["1", "2", "3"]), _probabilities([7, 0, 3]))
    assert list(frame.columns) == ["ImageId", *map(str, range(10))]


def test_shape_mismatch():
    with pytest.raises(SubmissionError, match=r"shape \(2, 10\), expected \(3, 10\)"):
        to_submission_frame(DIGIT_RECOGNIZER, np.array(["1", "2", "3"]), _probabilities([1, 2]))


@pytest.mark.parametrize("rows, expected", [
    ({"ImageId": ["1", "2", "3"], "label": ["1", "2", "3"]}, r"wrong header \['ImageId', 'label'\]"),
    ({"ImageId": ["1", "2"], "Label": ["1", "2"]}, r"2 rows; expected 3"),
    ({"ImageId": ["1", "2", "9"], "Label": ["1", "2", "3"]}, r"ids differ .*unknown \['9'\], missing \['3'\]"),
    ({"ImageId": ["1", "3", "2"], "Label": ["1", "2", "3"]}, r"row 3: id '3' out of order"),
    ({"ImageId": ["1", "2", "3"], "Label": ["1", "", "3"]}, r"row 3, column 'Label': empty or NaN"),
    ({"ImageId": ["1", "2", "3"], "Label": ["1", "2", "cat"]}, r"row 4, column 'Label': label 'cat'"),
])
def test_invalid_submissions(rows, expected):
    with pytest.raises(SubmissionError, match=expected):
        validate_submission(pd.DataFrame(rows), SAMPLE, DIGIT_RECOGNIZER, "sub.csv")


def test_probability_out_of_range():
    spec = spec_from_dict({**DIGIT_RECOGNIZER.to_dict(), "submission_form": "probabilities", "metric": "log_loss"})
    sample = pd.DataFrame({"ImageId": ["1"], **{str(d): ["0.1"] for d in range(10)}})
    frame = sample.copy()
    frame["4"] = ["1.5"]
    with pytest.raises(SubmissionError, match=r"row 2, column '4': '1.5' is not a probability"):
        validate_submission(frame, sample, spec, "sub.csv")


def test_write_is_atomic_and_refuses_invalid(tmp_path):
    sample_path = tmp_path / "sample_submission.csv"
    SAMPLE.to_csv(sample_path, index=False)
    out = tmp_path / "out"
    good = to_submission_frame(DIGIT_RECOGNIZER, np.array(["1", "2", "3"]), _probabilities([4, 5, 6]))
    path = write_submission(good, sample_path, DIGIT_RECOGNIZER, out)
    assert path.read_text() == "ImageId,Label\n1,4\n2,5\n3,6\n"
    bad = good.iloc[::-1]
    with pytest.raises(SubmissionError, match="out of order"):
        write_submission(bad, sample_path, DIGIT_RECOGNIZER, out)
    assert sorted(p.name for p in out.iterdir()) == [path.name]  # nothing else written, no temp file left
