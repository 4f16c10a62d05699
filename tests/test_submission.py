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


_BASE = {key: value for key, value in DIGIT_RECOGNIZER.to_dict().items() if key not in ("metric", "submission_form")}


def _spec(**changes):
    return spec_from_dict({**_BASE, **changes})


BINARY = _spec(task="binary", class_names=["cat", "dog"], submission_label_column="label",
               submission_id_column="id")
TAGS = _spec(task="multilabel", class_names=["animal", "vehicle", "wings"], submission_id_column="image_name",
             submission_label_column="tags")
RANKED = _spec(task="ranking", class_names=["a", "b", "c", "d", "e", "f"], metric="map@3",
               submission_id_column="Image", submission_label_column="Id")
GRADES = _spec(task="ordinal", class_names=["0", "1", "2", "3", "4"], submission_id_column="id_code",
               submission_label_column="diagnosis")


def test_each_task_has_its_form_and_default_metric():
    assert (BINARY.submission_form, BINARY.metric) == ("probability", "roc_auc")
    assert (TAGS.submission_form, TAGS.metric) == ("tags", "mean_f2")
    assert (RANKED.submission_form, RANKED.top_k) == ("ranked", 3)
    assert (GRADES.submission_form, GRADES.metric) == ("label", "quadratic_weighted_kappa")


def test_binary_writes_the_positive_class_probability():
    frame = to_submission_frame(BINARY, np.array(["1", "2"]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert frame.to_dict("list") == {"id": ["1", "2"], "label": [0.1, 0.8]}


def test_tags_from_thresholds():
    probabilities = np.array([[0.9, 0.1, 0.6], [0.2, 0.3, 0.1]])
    frame = to_submission_frame(TAGS, np.array(["a", "b"]), probabilities)
    assert frame["tags"].tolist() == ["animal wings", ""]  # 0.5 by default; no tag is an answer
    fitted = {"kind": "thresholds", "thresholds": [0.5, 0.25, 0.7]}
    assert to_submission_frame(TAGS, np.array(["a", "b"]), probabilities, fitted)["tags"].tolist() == ["animal",
                                                                                                       "vehicle"]


def test_ranked_labels_most_likely_first():
    probabilities = np.array([[0.1, 0.3, 0.05, 0.4, 0.1, 0.05]])
    assert to_submission_frame(RANKED, np.array(["x.jpg"]), probabilities)["Id"].tolist() == ["d b a"]


def test_grades_from_cut_points():
    probabilities = np.array([[0.1, 0.6, 0.3, 0, 0], [0, 0, 0.2, 0.4, 0.4]])  # expected grades 1.2 and 3.2
    assert to_submission_frame(GRADES, np.array(["p", "q"]), probabilities)["diagnosis"].tolist() == ["1", "3"]
    cuts = {"kind": "cut_points", "cut_points": [0.5, 1.1, 2.5, 3.1]}
    assert to_submission_frame(GRADES, np.array(["p", "q"]), probabilities, cuts)["diagnosis"].tolist() == ["2", "4"]


@pytest.mark.parametrize("spec, answer, expected", [
    (TAGS, "animal fins", r"row 2, column 'tags': tag 'fins' is not one of the tags \['animal', 'vehicle', 'wings'\]"),
    (RANKED, "a b c d", r"row 2, column 'Id': 'a b c d' holds 4 labels; expected at most 3 \(map@3\)"),
    (RANKED, "a z", r"row 2, column 'Id': label 'z' is not one of the labels"),
    (GRADES, "7", r"row 2, column 'diagnosis': grade '7' is not one of the grades \['0', '1', '2', '3', '4'\]"),
    (GRADES, "1 2 3 4 0", r"row 2, column 'diagnosis': '1 2 3 4 0' holds 5 labels; expected one"),
    (BINARY, "1.5", r"row 2, column 'label': '1.5' is not a probability in \[0, 1\]"),
    (BINARY, "-0.1", r"row 2, column 'label': '-0.1' is not a probability"),
])
def test_answers_in_the_wrong_form(spec, answer, expected):
    sample = pd.DataFrame({spec.submission_id_column: ["1"], spec.submission_label_column: ["0"]})
    frame = sample.assign(**{spec.submission_label_column: [answer]})
    with pytest.raises(SubmissionError, match=expected):
        validate_submission(frame, sample, spec, "sub.csv")
