"""Several processes at once on one data folder (issue 12): first use of digits, and the submission guard."""

import multiprocessing
import shutil
from pathlib import Path

import pytest

from tasks.backends import practice
from tasks.backends.guard import guarded_submit
from tasks.backends.local import LocalBackend
from tasks.backends.practice import ensure_digits
from tasks.errors import DuplicateSubmissionError

PROCESSES = 4
# fork: the children start at once with what the test process imported (spawning four interpreters that each
# import pandas and scikit-learn would take longer than the race they test).
CONTEXT = multiprocessing.get_context("fork")


def _at_once(target, *arguments) -> list[str]:
    """Run `target(*arguments)` in PROCESSES processes released together; what each returned or raised."""
    barrier, results = CONTEXT.Barrier(PROCESSES), CONTEXT.Queue()

    def worker() -> None:
        barrier.wait()
        try:
            results.put(str(target(*arguments)))
        except Exception as error:  # reported to the test, which shows it
            results.put(f"{type(error).__name__}: {error}")

    processes = [CONTEXT.Process(target=worker) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    return sorted(outcomes)


def _created(root: Path) -> str:
    return ensure_digits(root).name


def _few_digits(test_fraction: float = 0.3, seed: int = 0) -> dict:
    """digits_frames' files, 20 images each: the race is in creating the folder, not in the data."""
    return {name: frame.head(20) for name, frame in _ALL_DIGITS_FRAMES().items()}


_ALL_DIGITS_FRAMES = practice.digits_frames


def test_first_use_of_digits_from_several_processes_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(practice, "digits_frames", _few_digits)  # the forked children inherit it
    root = tmp_path / "local" / "digits"
    assert _at_once(_created, root) == ["digits"] * PROCESSES
    assert LocalBackend(root).sample_submission().shape[0] > 0
    assert [path.name for path in root.parent.iterdir() if path.name.startswith(".digits.creating")] == []


@pytest.fixture
def local_digits(tmp_path, digits_store) -> LocalBackend:
    root = tmp_path / "local" / "digits"
    shutil.copytree(digits_store / "local" / "digits", root)
    return LocalBackend(root)


def _guarded(root: Path, submission: Path, log_path: Path) -> str:
    backend = LocalBackend(root)
    sample = root / "sample.csv"
    return guarded_submit(backend, submission, sample, log_path)["status"]


def test_one_file_sent_from_several_processes_at_once_is_sent_once(local_digits, tmp_path):
    local_digits.sample_submission().to_csv(local_digits.root / "sample.csv", index=False)
    submission = tmp_path / "submission.csv"
    local_digits.sample_submission().to_csv(submission, index=False)
    outcomes = _at_once(_guarded, local_digits.root, submission, tmp_path / "log.jsonl")
    assert outcomes.count("complete") == 1 and len(local_digits.submissions()) == 1
    assert sum(outcome.startswith(DuplicateSubmissionError.__name__) for outcome in outcomes) == PROCESSES - 1
