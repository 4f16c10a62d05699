"""`headstart host` through the unmodified kaggle CLI (a subprocess), and the host's own HTTP behaviour."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile

import pytest

from tests.hosting import (  # noqa: F401
    KEY,
    USER,
    assert_no_secret,
    client_environment,
    hosted,
    hosted_factory,
    labelled_submission,
    perfect_submission,
)

TINY_KERNEL = '''import os, shutil
from pathlib import Path
inputs = Path(os.environ.get("HEADSTART_KAGGLE_INPUT", "/kaggle/input"))
working = Path(os.environ.get("HEADSTART_KAGGLE_WORKING", "/kaggle/working"))
print("attached:", sorted(p.relative_to(inputs).as_posix() for p in inputs.glob("*/*")))
print("credentials:", sorted(name for name in os.environ if name.startswith("KAGGLE_") and "RUN_TYPE" not in name))
shutil.copyfile(inputs / "competitions" / "digits" / "sample_submission.csv", working / "submission.csv")
'''


def test_competition_commands(hosted, tmp_path):
    listed = hosted.kaggle("competitions", "list").stdout
    assert "/competitions/digits" in listed
    assert "sample_submission.csv" in hosted.kaggle("competitions", "files", "digits").stdout
    hosted.kaggle("competitions", "download", "digits", "-p", tmp_path / "download")
    with zipfile.ZipFile(tmp_path / "download" / "digits.zip") as zipped:
        assert {"train.csv", "test.csv", "sample_submission.csv"} <= set(zipped.namelist())
    submitted = hosted.kaggle("competitions", "submit", "digits", "-f",
                              perfect_submission(hosted, tmp_path / "perfect.csv"), "-m", "by the CLI").stdout
    assert "Submission ref: 1" in submitted and "4 submissions remaining today" in submitted
    listing = hosted.kaggle("competitions", "submissions", "digits").stdout
    assert "perfect.csv" in listing and "COMPLETE" in listing and "1.0" in listing
    assert USER in hosted.kaggle("competitions", "leaderboard", "digits", "--show").stdout
    hosted.kaggle("competitions", "leaderboard", "digits", "--download", "-p", tmp_path / "board")
    with zipfile.ZipFile(tmp_path / "board" / "digits.zip") as zipped:
        assert f"1,1,{USER}," in zipped.read("digits-publicleaderboard.csv").decode()
    assert "Remaining today: 4" in hosted.kaggle("competitions", "submission-limits", "digits").stdout
    assert_no_secret(listed, submitted, listing)


def test_wrong_key_is_a_401_with_a_json_body(hosted):
    result = hosted.kaggle("competitions", "list", check=False, KAGGLE_KEY="wrong-key")
    assert result.returncode == 1 and "Authentication required" in result.stdout + result.stderr
    request = urllib.request.Request(f"{hosted.server.url}/api/v1/competitions.CompetitionApiService/ListCompetitions",
                                     data=b"{}", method="POST", headers={"Authorization": "Basic YWxpY2U6d3Jvbmc="})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request)
    assert error.value.code == 401 and json.loads(error.value.read())["code"] == 401


def test_rules_not_accepted_is_a_403_and_nothing_downloads(hosted_factory, tmp_path):
    hosted = hosted_factory(rules_accepted_by=("bob",), run_kernels=False)
    result = hosted.kaggle("competitions", "download", "digits", "-p", tmp_path, check=False)
    assert result.returncode == 1 and "accept this competition's rules" in result.stdout + result.stderr
    assert not (tmp_path / "digits.zip").exists()


def test_daily_limit_is_enforced(hosted, tmp_path):
    hosted.set_daily_limit(1)
    hosted.kaggle("competitions", "submit", "digits", "-f", labelled_submission(hosted, tmp_path / "a.csv", "1"),
                  "-m", "one")
    result = hosted.kaggle("competitions", "submit", "digits", "-f",
                           labelled_submission(hosted, tmp_path / "b.csv", "2"), "-m", "two", check=False)
    assert result.returncode == 1 and "daily submission limit reached (1/1" in result.stdout + result.stderr
    assert len(hosted.backend.submissions()) == 1


def test_rejected_upload_creates_no_submission(hosted, tmp_path):
    hosted.host.fail_next(403, path_contains="/upload/")
    result = hosted.kaggle("competitions", "submit", "digits", "-f", perfect_submission(hosted, tmp_path / "p.csv"),
                           "-m", "lost", check=False)
    assert result.returncode == 1 and "Could not submit to competition" in result.stdout + result.stderr
    assert hosted.backend.submissions() == []


def test_kernel_push_runs_it_and_serves_its_output(hosted_factory, tmp_path):
    hosted = hosted_factory(run_kernels=True)
    folder = tmp_path / "kernel"
    folder.mkdir()
    (folder / "tiny.py").write_text(TINY_KERNEL)
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{USER}/tiny-kernel", "title": "tiny kernel", "code_file": "tiny.py", "language": "python",
        "kernel_type": "script", "enable_internet": False, "competition_sources": ["digits"]}))
    pushed = hosted.kaggle("kernels", "push", "-p", folder).stdout
    assert "successfully pushed" in pushed.lower() and "Kernel version 1" in pushed
    for _ in range(100):
        status = hosted.kaggle("kernels", "status", f"{USER}/tiny-kernel").stdout
        if "COMPLETE" in status or "ERROR" in status:
            break
        time.sleep(0.1)
    assert "KernelWorkerStatus.COMPLETE" in status
    hosted.kaggle("kernels", "output", f"{USER}/tiny-kernel", "-p", tmp_path / "output")
    assert (tmp_path / "output" / "submission.csv").read_text().startswith("ImageId,Label")
    log = (tmp_path / "output" / "tiny-kernel.log").read_text()
    assert "attached: ['competitions/digits']" in log and "credentials: []" in log  # no key reaches the kernel
    result = hosted.kaggle("kernels", "push", "-p", folder, check=False, KAGGLE_USERNAME="bob")
    assert result.returncode == 1  # bob is unknown: 401


def test_dataset_create_then_version(hosted, tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "weights.txt").write_text("one")
    (folder / "dataset-metadata.json").write_text(json.dumps({
        "id": f"{USER}/my-weights", "title": "my weights", "licenses": [{"name": "CC0-1.0"}]}))
    assert "ready" not in hosted.kaggle("datasets", "status", f"{USER}/my-weights", check=False).stdout
    hosted.kaggle("datasets", "create", "-p", folder)
    assert "ready" in hosted.kaggle("datasets", "status", f"{USER}/my-weights").stdout
    (folder / "weights.txt").write_text("two")
    hosted.kaggle("datasets", "version", "-p", folder, "-m", "second")
    assert (hosted.host.datasets.files_dir(USER, "my-weights") / "weights.txt").read_text() == "two"
    assert hosted.host.datasets.files_dir(USER, "my-weights").parent.name == "2"


def test_file_urls_are_signed_and_resumable(hosted):
    url = f"{hosted.server.url}/files/digits/digits.zip"
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(url)
    assert error.value.code == 404
    whole = urllib.request.urlopen(f"{url}?sig={hosted.host.signature}").read()
    ranged = urllib.request.Request(f"{url}?sig={hosted.host.signature}", headers={"Range": "bytes=100-"})
    with urllib.request.urlopen(ranged) as response:
        assert response.status == 206 and response.read() == whole[100:]


def test_headstart_host_command(digits_store, tmp_path):
    """`headstart host digits --port 0`, keys from the environment (not the command line)."""
    import shutil

    shutil.copytree(digits_store, tmp_path / "data")
    command = [sys.executable, "-m", "flows.cli", "host", "digits", "--port", "0", "--data-dir", tmp_path / "data"]
    environment = {**os.environ, "HEADSTART_HOST_USERS": f"{USER}:{KEY}"}
    process = subprocess.Popen(list(map(str, command)), env=environment, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = line.split(" on ")[1].split(" ")[0]
        home = tmp_path / "home"
        home.mkdir()
        result = subprocess.run([sys.executable.replace("python", "kaggle"), "competitions", "list"], text=True,
                                env={**os.environ, **client_environment(url, home)}, capture_output=True)
        assert result.returncode == 0 and "/competitions/digits" in result.stdout
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert_no_secret(line)
