from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from tasks.backends.local import LocalBackend, create_local_competition
from tasks.competitions import (
    CIFAR_10,
    DIGIT_RECOGNIZER,
    CompetitionDataError,
)
from tasks.errors import ConfigError, NotFoundError, QuotaError
from tasks.layouts import load_competition
from tests.factories import kaggle_zip


@pytest.fixture
def digit_backend(tmp_path):
    archive, solution = kaggle_zip(tmp_path, "digit-recognizer")
    return create_local_competition(tmp_path / "store" / "dr", "dr", DIGIT_RECOGNIZER, archive, solution,
                                    daily_limit=3)


def _answer(backend, tmp_path, correct=True, name="answer.csv"):
    solution = pd.read_csv(backend.root / "solution.csv")
    labels = solution["Label"] if correct else (solution["Label"] + 1) % 10
    path = tmp_path / name
    pd.DataFrame({"ImageId": solution["ImageId"], "Label": labels}).to_csv(path, index=False)
    return path


def test_create_download_and_load(digit_backend, tmp_path):
    raw = tmp_path / "raw"
    digit_backend.download(raw)
    assert (raw / "train.csv").is_file()
    usage = pd.read_csv(digit_backend.root / "solution.csv")["Usage"]
    assert set(usage) == {"Public", "Private"}
    assert load_competition(digit_backend.spec, raw).test_pixels.shape == (20, 28, 28, 1)


def test_download_skips_when_unchanged(digit_backend, tmp_path):
    raw = tmp_path / "raw"
    digit_backend.download(raw)
    (raw / "train.csv").write_text("edited")
    digit_backend.download(raw)
    assert (raw / "train.csv").read_text() == "edited"  # same zip: not unpacked again


def test_perfect_and_wrong_submissions_score(digit_backend, tmp_path):
    perfect = digit_backend.submit(_answer(digit_backend, tmp_path), "perfect")
    wrong = digit_backend.submit(_answer(digit_backend, tmp_path, correct=False, name="w.csv"), "wrong", team="b")
    assert perfect["status"] == "complete" and perfect["public_score"] == 1.0 and perfect["private_score"] == 1.0
    assert wrong["public_score"] == 0.0
    board = digit_backend.leaderboard()
    assert [row["team"] for row in board] == ["you", "b"] and board[0]["rank"] == 1


def test_invalid_submission_is_logged_as_error(digit_backend, tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"ImageId": [1, 2], "Label": [3, 4]}).to_csv(path, index=False)
    record = digit_backend.submit(path)
    assert record["status"] == "error" and "2 rows; expected 20" in record["error"]
    assert digit_backend.leaderboard() == []


def test_daily_limit(digit_backend, tmp_path):
    path = _answer(digit_backend, tmp_path)
    for _ in range(3):
        digit_backend.submit(path)
    assert digit_backend.limits()["remaining"] == 0
    with pytest.raises(QuotaError, match=r"daily submission limit reached \(3/3"):
        digit_backend.submit(path)
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    assert digit_backend.submit(path, now=tomorrow)["status"] == "complete"
    assert len(digit_backend.submissions()) == 4


@pytest.mark.parametrize("archives", [False, True])
def test_cifar_layout_zip(tmp_path, archives):
    archive, solution = kaggle_zip(tmp_path, "cifar-10", archives=archives)
    backend = create_local_competition(tmp_path / "store" / "c10", "c10", CIFAR_10, archive, solution)
    raw = tmp_path / "raw"
    backend.download(raw)
    data = load_competition(backend.spec, raw)
    assert len(data.test_images) == 10 and len(data.train_images) == 30


def test_solution_must_match_sample(tmp_path):
    archive, solution = kaggle_zip(tmp_path, "digit-recognizer")
    frame = pd.read_csv(solution)
    frame.iloc[:-1].to_csv(solution, index=False)
    root = tmp_path / "store" / "dr"
    with pytest.raises(CompetitionDataError, match=r"column 'ImageId': 1 of the sample submission's ids are missing, the first '20'"):
        create_local_competition(root, "dr", DIGIT_RECOGNIZER, archive, solution)
    assert not root.exists()  # nothing half-made


def test_solution_label_outside_classes(tmp_path):
    archive, solution = kaggle_zip(tmp_path, "digit-recognizer")
    frame = pd.read_csv(solution)
    frame.loc[3, "Label"] = 12
    frame.to_csv(solution, index=False)
    with pytest.raises(CompetitionDataError, match=r"row 5, column 'Label': label '12'"):
        create_local_competition(tmp_path / "s", "dr", DIGIT_RECOGNIZER, archive, solution)


def test_existing_competition_is_not_overwritten(digit_backend, tmp_path):
    (tmp_path / "again").mkdir()
    archive, solution = kaggle_zip(tmp_path / "again", "digit-recognizer")
    with pytest.raises(ConfigError, match="exists already"):
        create_local_competition(digit_backend.root, "dr", DIGIT_RECOGNIZER, archive, solution)


def test_missing_store_is_explained(tmp_path):
    with pytest.raises(NotFoundError, match="headstart local create"):
        LocalBackend(tmp_path / "nothing")


def test_probability_submissions_are_scored_by_log_loss():
    import numpy as np

    from tasks.backends.local import score_submission
    from tasks.competitions import spec_from_dict

    spec = spec_from_dict({**DIGIT_RECOGNIZER.to_dict(), "submission_form": "probabilities", "metric": "log_loss"})
    solution = pd.DataFrame({"ImageId": ["1", "2"], "Label": ["3", "7"], "Usage": ["Public", "Private"]})
    certain = pd.DataFrame({"ImageId": ["2", "1"], **{str(d): [float(d == 7), float(d == 3)] for d in range(10)}})
    uniform = pd.DataFrame({"ImageId": ["1", "2"], **{str(d): [0.1, 0.1] for d in range(10)}})
    assert score_submission(certain, solution, spec) == pytest.approx({"public": 0.0, "private": 0.0}, abs=1e-9)
    assert score_submission(uniform, solution, spec)["public"] == pytest.approx(np.log(10))


_BASE = {key: value for key, value in DIGIT_RECOGNIZER.to_dict().items() if key not in ("metric", "submission_form")}


def _spec(**changes):
    from tasks.competitions import spec_from_dict

    return spec_from_dict({**_BASE, "submission_id_column": "id",
                           "submission_label_column": "answer", **changes})


@pytest.mark.parametrize("changes, truth, answers, expected", [
    ({"task": "binary", "class_names": ["cat", "dog"]}, ["0", "1", "dog", "cat"], ["0.2", "0.5", "0.9", "0.6"],
     0.75),  # AUC: 3 of the 4 (positive, negative) pairs ordered right
    ({"task": "multilabel", "class_names": ["a", "b", "c"]}, ["a b", "c", "a", "b c"], ["a", "c", "a b", ""],
     (5 / 9 + 1 + 5 / 6 + 0) / 4),  # F2 per row: tp 1 fn 1; exact; tp 1 fp 1; nothing found
    ({"task": "ranking", "class_names": list("abcdef"), "metric": "map@5"}, ["a", "b", "c", "d"],
     ["a b", "c b", "d e f", "a b c d e"], (1 + 1 / 2 + 0 + 1 / 4) / 4),
    ({"task": "ordinal", "class_names": ["0", "1", "2"]}, ["0", "1", "2", "2"], ["0", "1", "2", "2"], 1.0),
])
def test_every_task_is_scored_from_its_forms(changes, truth, answers, expected):
    from tasks.backends.local import score_submission

    spec = _spec(**changes)
    ids = ["1", "2", "3", "4"]
    solution = pd.DataFrame({"id": ids, "answer": truth, "Usage": "Public"})
    scores = score_submission(pd.DataFrame({"id": ids[::-1], "answer": answers[::-1]}), solution, spec)
    assert scores == {"public": pytest.approx(expected), "private": None}
