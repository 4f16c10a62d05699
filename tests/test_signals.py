"""Signals to a running `headstart run` (issue 12): SIGTERM stops it within seconds with nothing half-written;
SIGTERM or SIGKILL, the temporary Prefect server it started goes with it."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from flows.temporary_server import _PopenDyingWithParent, tie_temporary_server_to_this_process
from tasks.files import sha256_file
from tests.factories import HEADSTART, USER_ENVIRONMENT, tiny_backbone_file, wait_until


@pytest.mark.slow
def test_sigterm_stops_a_run_cleanly_and_leaves_no_orphan(digits_store, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    environment = {name: value for name, value in USER_ENVIRONMENT.items() if name != "PREFECT_API_URL"}
    process = subprocess.Popen([HEADSTART, "run", "digits", "--data-dir", str(data_dir), "--member", "softmax",
                                "--epochs", "200", "--folds", "5", "--no-submit"], cwd=tmp_path, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # Inside the flow, training: the first fold is saved, the second one is being fitted.
        wait_until(lambda: list(data_dir.glob("05_predictions/*/*/members/*.folds/fold-*")), 180,
                   "the run's first fold", process, interval=0.2)
        children = psutil.Process(process.pid).children(recursive=True)
        assert children, "expected the run's temporary Prefect server as a child process"
        process.send_signal(signal.SIGTERM)  # as `kill PID` or a scheduler sends it: to the run only
        started = time.monotonic()
        output = process.communicate(timeout=30)[0]
        assert time.monotonic() - started < 10, output
        assert process.returncode != 0
        assert "Traceback" not in output, output[-3000:]
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, [child.cmdline() for child in alive]
        assert not [path for path in data_dir.rglob("*") if path.name.endswith(".tmp")]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # only what this test started: the run's own session


def _ended(process: psutil.Process) -> bool:
    """Gone, or a zombie waiting for a parent that does not reap it (pid 1 in some containers): not running."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_ended(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still running after `timeout` seconds (none: at once)."""
    try:
        wait_until(lambda: all(_ended(process) for process in processes), timeout, "the processes to end")
    except AssertionError:
        pass
    return [process for process in processes if not _ended(process)]


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # ended meanwhile
        return ""


PARENT = """
import threading, time
from flows.temporary_server import _PopenDyingWithParent
children = [_PopenDyingWithParent(["sleep", "60"])]
thread = threading.Thread(target=lambda: children.append(_PopenDyingWithParent(["sleep", "60"])))
thread.start()
thread.join()
print(*(child.pid for child in children), flush=True)
time.sleep(60)
"""


def test_a_child_dies_with_its_parent_even_when_started_from_a_thread_that_ended():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parent.parent, start_new_session=True)
    try:
        children = [psutil.Process(int(pid)) for pid in parent.stdout.readline().split()]
        assert len(children) == 2
        time.sleep(0.3)
        assert not [child for child in children if _ended(child)], "the thread's end must not kill its child"
        parent.kill()
        parent.wait()
        assert not _wait_ended(children, timeout=5)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)


@pytest.mark.slow  # ~6 s alone, to import Prefect's server module
def test_only_prefects_server_module_gets_the_popen_that_dies_with_this_process(monkeypatch):
    from prefect.server.api import server
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setattr(server, "subprocess", subprocess)  # put back after the test
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        tie_temporary_server_to_this_process()
        assert server.subprocess is subprocess  # a server of the user's is not ours
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        tie_temporary_server_to_this_process()
    assert server.subprocess.Popen is _PopenDyingWithParent and subprocess.Popen is not _PopenDyingWithParent
    assert server.subprocess.TimeoutExpired is subprocess.TimeoutExpired


@pytest.mark.slow
def test_sigkill_leaves_no_temporary_prefect_server(digits_store, tmp_path):
    """Killed outright, the run cannot stop its server from atexit: the kernel does (flows/temporary_server.py)."""
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    environment = {name: value for name, value in USER_ENVIRONMENT.items() if name != "PREFECT_API_URL"}
    environment["PREFECT_HOME"] = str(tmp_path / "prefect")  # a fresh one, as on a first run
    process = subprocess.Popen([HEADSTART, "run", "digits", "--data-dir", str(data_dir), "--member", "softmax",
                                "--no-submit"], cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    tree = []
    try:
        wait_until(lambda: [child for child in psutil.Process(process.pid).children(recursive=True)
                            if "prefect.server.api.server" in _command(child)], 180,
                   "the run's temporary Prefect server", process, interval=0.2)
        time.sleep(1)  # the server past its start
        tree = psutil.Process(process.pid).children(recursive=True)
        process.kill()
        process.wait()
        alive = _wait_ended(tree, timeout=10)
        assert not alive, [_command(child) for child in alive]
    finally:
        if process.poll() is None:
            process.kill()
        for child in tree:
            if not _ended(child):  # only what this test started (psutil checks the pid was not reused)
                child.kill()


def _stamps(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_a_run_killed_while_training_resumes_and_reuses_what_finished(digits_store, tmp_path):
    """SIGKILL once the features and the first member are done, while the second trains: the next run completes
    and leaves the finished features and member as they were (same files, same times)."""
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    backbone = tiny_backbone_file(tmp_path / "tiny.keras")
    command = [HEADSTART, "run", "digits", "--data-dir", str(data_dir), "--member", f"logistic@file:{backbone}",
               "--member", "softmax", "--epochs", "40", "--folds", "2", "--no-submit"]
    members = data_dir / "05_predictions" / "local" / "digits" / "members"
    process = subprocess.Popen(command, cwd=tmp_path, env=USER_ENVIRONMENT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    _kill_when(process, lambda: list(members.glob("*/member.json")),
               "the first member to finish")
    finished = [path.parent for path in members.glob("*/member.json")]
    assert [folder.name[:8] for folder in finished] == ["logistic"], "the kill should land mid-softmax"
    features = data_dir / "03_features" / "local" / "digits"
    before = {"features": _stamps(features), "member": _stamps(finished[0])}
    assert before["features"] and before["member"]
    time.sleep(0.05)  # a file written again would get a later mtime
    again = subprocess.run(command, cwd=tmp_path, env=USER_ENVIRONMENT, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0 and "Traceback" not in again.stderr, (again.stdout + again.stderr)[-4000:]
    assert sorted(path.parent.name[:7] for path in members.glob("*/member.json")) == ["logisti", "softmax"]
    assert {"features": _stamps(features), "member": _stamps(finished[0])} == before


def _files_under(folder: Path) -> list[str]:
    """What a run leaves under its final names: every file not in a hidden (temporary) folder."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts[:-1]))


def _large_digits(data_dir: Path, tmp_path: Path) -> None:
    """A digit-recognizer competition `digits` of ~3 MB zipped (random pixels compress poorly) for the host to serve:
    the kaggle client writes its download in 1 MB pieces, so a smaller one is never seen part-written."""
    from tasks.backends.local import create_local_competition
    from tasks.competitions import DIGIT_RECOGNIZER
    from tests.factories import kaggle_zip

    archive, solution = kaggle_zip(tmp_path, "digit-recognizer", num_train=2000, num_test=300)
    create_local_competition(data_dir / "local" / "digits", "digits", DIGIT_RECOGNIZER, archive, solution)


@pytest.mark.slow
def test_a_run_killed_while_downloading_resumes_and_leaves_no_half_file(prefect_server, hosted_factory, tmp_path):
    """SIGKILL mid-download of a `headstart host` competition (served slowly): the zip is written under a temporary
    name, so neither it nor any unpacked file ever appears half-written under its final name; the next run resumes
    the download where it stopped (a 206) and completes on exactly the served files."""
    import zipfile

    from prefect.settings import PREFECT_API_URL

    _large_digits(tmp_path / "data", tmp_path)  # hosted_factory serves what is at tmp_path/data/local/digits
    hosted = hosted_factory(run_kernels=False, download_bytes_per_second=512 * 1024)
    served, data_dir = hosted.backend.public_zip, tmp_path / "client"
    assert served.stat().st_size > 2 * 2**20
    staging = data_dir / "01_raw" / "kaggle" / ".digits.download"
    archive, partial = staging / "digits.zip", staging / "digits.zip.partial"
    command = [HEADSTART, "run", "digits", "--backend", "kaggle", "--spec", hosted.spec_file, "--data-dir",
               str(data_dir), "--member", "softmax", "--epochs", "2", "--folds", "2", "--no-submit"]
    environment = {**hosted.env, "PREFECT_API_URL": PREFECT_API_URL.value()}  # the session's server: no new one
    process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    seen = set()
    _kill_when(process, lambda: any(path.is_file() and path.stat().st_size >= 2**20 for path in (partial, archive)),
               "a download under way to kill", poll_seconds=0.01,
               on_poll=lambda: seen.update(_files_under(data_dir) + ([str(archive)] if archive.exists() else [])))
    seen.update(_files_under(data_dir) + ([str(archive)] if archive.exists() else []))
    assert seen == set(), f"files under their final names before the download finished: {seen}"
    assert 0 < partial.stat().st_size < served.stat().st_size, "the kill should land mid-download"
    gets = len([request for request in hosted.host.requests if request["method"] == "GET"])
    again = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0 and "Traceback" not in again.stderr, (again.stdout + again.stderr)[-4000:]
    statuses = [request["status"] for request in hosted.host.requests if request["method"] == "GET"]
    # The client opens the file (200) for its size and date, then asks for the rest from where it stopped (206).
    assert statuses[gets:] == [200, 206], statuses
    assert sha256_file(archive) == sha256_file(served) and not partial.exists()
    raw = data_dir / "01_raw" / "kaggle" / "digits"
    with zipfile.ZipFile(served) as zipped:
        assert all((raw / name).read_bytes() == zipped.read(name) for name in zipped.namelist())
    assert not [path for path in data_dir.rglob("*") if path.name.startswith(".unpack-") or path.suffix == ".tmp"]


def _kill_when(process, ready, what: str, poll_seconds: float = 0.05, on_poll=lambda: None) -> None:
    """SIGKILL the process once `ready()`, as the OOM killer would (no atexit, no clean-up); fail, saying `what` was
    awaited, if it ends first or four minutes pass."""
    def polled():
        on_poll()
        return ready()

    try:
        wait_until(polled, 240, what, process, interval=poll_seconds)
        process.kill()
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
