"""SIGTERM to a running `headstart run` (issue 12): it stops within seconds, leaves nothing half-written and no
orphan (the temporary Prefect server it started goes with it)."""

import os
import shutil
import signal
import subprocess
import time

import psutil
import pytest

from tests.factories import HEADSTART, USER_ENVIRONMENT


@pytest.mark.slow
def test_sigterm_stops_a_run_cleanly_and_leaves_no_orphan(digits_store, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(digits_store, data_dir)
    environment = {name: value for name, value in USER_ENVIRONMENT.items() if name != "PREFECT_API_URL"}
    process = subprocess.Popen([HEADSTART, "run", "digits", "--data-dir", str(data_dir), "--member", "softmax",
                                "--epochs", "200", "--folds", "5", "--no-submit"], cwd=tmp_path, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while not list(data_dir.glob("02_index/*/index.json")) and time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.5)
        time.sleep(2)  # inside the flow, training
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
