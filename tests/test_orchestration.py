"""Prefect never takes a run down: quiet expected errors, a busy machine, an API that is gone or goes away."""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.orchestration import ExpectedErrorFilter, RepeatFilter, prefect_unavailable, run_or_fall_back
from tasks.errors import CompetitionDataError
from tests.factories import HEADSTART, USER_ENVIRONMENT, wait_until

QUICK_RUN = ["--member", "softmax", "--epochs", "2", "--folds", "2"]


def record(message: str, error: BaseException | None = None, name: str = "prefect.task_runs") -> logging.LogRecord:
    exc_info = (type(error), error, error.__traceback__) if error else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, None, exc_info)


def test_expected_errors_leave_the_console_and_their_tracebacks_the_logs():
    console, api = ExpectedErrorFilter(console=True), ExpectedErrorFilter(console=False)
    failed = record("Task run failed with exception: CompetitionDataError('x')", CompetitionDataError("x"))
    assert api.filter(failed) and failed.exc_info is None  # the run's log keeps the line, not the traceback
    assert not console.filter(failed)
    finished = record("Finished in state Failed('Task run encountered an exception CompetitionDataError: x')")
    assert not console.filter(finished)
    flow_finished = record("Finished in state Failed('Flow run encountered an exception: SpecError: x')")
    assert not console.filter(flow_finished)
    bug = record("Task run failed with exception: KeyError('x')", KeyError("x"))
    assert console.filter(bug) and bug.exc_info is not None  # a bug keeps its traceback
    assert console.filter(record("Finished in state Failed('Task run encountered an exception KeyError: x')"))


def test_an_unreachable_api_is_said_once():
    repeat = RepeatFilter()
    noisy = [record(f"Service 'EventsWorker' failed to process item Event(occurred={n})", name="prefect._internal"
                    ".concurrency") for n in range(5)]
    assert [repeat.filter(item) for item in noisy] == [True, False, False, False, False]
    assert all(repeat.filter(record("Finished in state Completed()")) for _ in range(3))


def test_what_counts_as_prefect_being_unavailable():
    try:
        try:
            raise httpx.ConnectError("All connection attempts failed")
        except httpx.ConnectError as inner:
            raise RuntimeError("engine failed") from inner
    except RuntimeError as wrapped:
        assert prefect_unavailable(wrapped)
    assert prefect_unavailable(RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server."))
    assert not prefect_unavailable(CompetitionDataError("train.csv: row 4"))
    assert not prefect_unavailable(KeyError("a bug"))


def test_fall_back_to_plain_stages_only_when_prefect_is_unavailable(caplog):
    def no_server():
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")

    with caplog.at_level(logging.WARNING, logger="headstart"):
        assert run_or_fall_back(no_server, lambda: "plain", "the run") == "plain"
    assert "running the run without orchestration" in caplog.text

    def bug():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_or_fall_back(bug, lambda: "plain", "the run")


def headstart_run(data_dir: Path, cwd: Path, **environment) -> subprocess.CompletedProcess:
    return subprocess.run([HEADSTART, "run", *QUICK_RUN, "--data-dir", str(data_dir)], capture_output=True, text=True,
                          cwd=cwd, timeout=900, env={**USER_ENVIRONMENT, **environment})


def assert_completed(result: subprocess.CompletedProcess) -> Path:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Traceback" not in output and not [line for line in output.splitlines() if line.startswith("error:")], \
        output[-4000:]
    run_json = Path(result.stdout.strip().splitlines()[-1])
    assert run_json.name == "run.json" and run_json.is_file()
    return run_json


@pytest.mark.slow  # 16 s: a whole run with its API gone
def test_a_run_completes_when_the_prefect_api_is_unreachable(tmp_path):
    """PREFECT_API_URL names a server that is not there: the stages run without Prefect, one warning says so."""
    result = headstart_run(tmp_path / "data", tmp_path, PREFECT_API_URL="http://127.0.0.1:9/api",
                           PREFECT_CLIENT_MAX_RETRIES="1")
    assert_completed(result)
    assert (result.stdout + result.stderr).count("Prefect's API did not answer") == 1


class BusyCores:
    """Both cores kept busy by processes that stop by themselves (after `seconds`) or when the test ends."""

    def __init__(self, seconds: float = 900, count: int = 2):
        code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
        self.processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_run_completes_on_a_busy_machine_with_a_fresh_prefect_home(tmp_path):
    """Prefect's temporary server on a fresh database (migrations) while both cores are busy: over Prefect's
    20 s default startup timeout here; the run must still complete, through Prefect."""
    with BusyCores():
        started = time.monotonic()
        result = headstart_run(tmp_path / "data", tmp_path, PREFECT_HOME=str(tmp_path / "prefect"))
        seconds = time.monotonic() - started
    assert_completed(result)
    assert "Beginning flow run" in result.stderr  # it ran through Prefect, not the fallback
    assert "Prefect's API did not answer" not in result.stderr
    print(f"busy-machine run: {seconds:.0f} s")


def _child_server(parent: int) -> int | None:
    """The pid of the temporary Prefect server that process `parent` started, if it is running."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
        if ppid == parent and b"prefect.server.api.server" in command:
            return int(stat.parent.name)
    return None


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_run_completes_when_prefect_dies_mid_run(tmp_path):
    """The temporary server is killed once the run is indexing and training: the run still ends with its
    submission and run.json, one warning, no traceback, and no duplicate submission."""
    data_dir = tmp_path / "data"
    process = subprocess.Popen([HEADSTART, "run", "--member", "softmax", "--member", "cnn", "--epochs", "3",
                                "--folds", "2", "--data-dir", str(data_dir)], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**USER_ENVIRONMENT, "PREFECT_HOME": str(tmp_path / "prefect")})
    try:
        wait_until((data_dir / "02_index" / "local" / "digits" / "index.json").is_file, 300, "the run's index",
                   process, interval=0.5)
        server = _child_server(process.pid)
        if server is None:
            process.kill()
            pytest.fail("no temporary Prefect server under the run: " + "".join(process.communicate()[1])[-3000:])
        os.kill(server, 9)
        started = time.monotonic()
        stdout, stderr = process.communicate(timeout=1100)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    print(f"after the kill the run took {time.monotonic() - started:.0f} s")
    run_json = assert_completed(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    assert run_json.parent.parent.name == "digits"
    log = [json.loads(line) for line in (data_dir / "06_submissions" / "local" / "digits" / "log.jsonl").open()]
    # Sent once: one attempt logged as sending and one outcome, whatever the fallback re-ran; and the local
    # competition itself holds one submission.
    assert [record["status"] for record in log] == ["sending", "complete"], log
    from tasks.backends.local import LocalBackend

    assert len(LocalBackend(data_dir / "local" / "digits").submissions()) == 1
