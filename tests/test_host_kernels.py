"""What a pushed kernel gets on `headstart host`, as on Kaggle (issue 23): its models where Kaggle mounts them (and the
ones it cannot have reported), its own session timeout as its time limit, and the network when pushed with
enable_internet."""

import json
import socket
import threading

import pytest

from tests.factories import wait_until
from tests.hosting import USER
from tests.hosting import push_script as push

LISTING = '''import os
from pathlib import Path
inputs = Path(os.environ["HEADSTART_KAGGLE_INPUT"])
for path in sorted(inputs.rglob("*")):
    if path.is_file() and "models" in path.parts:
        print("model file:", path.relative_to(inputs).as_posix(), path.read_text())
'''


def finished(hosted, slug: str, seconds: float = 120) -> dict:
    """The host's record of the kernel once its run is COMPLETE or ERROR."""
    return wait_until(lambda: (record := hosted.host.kernels.record(USER, slug))["status"] in ("COMPLETE", "ERROR")
                      and record, seconds, f"kernel {slug} to end", interval=0.05)


def log_of(hosted, slug: str) -> str:
    path = hosted.host.kernels.directory(USER, slug) / "log.json"
    return "".join(line["data"] for line in json.loads(path.read_text()))


def make_model(hosted, folder) -> str:
    """alice/tiny-net with a keras variation `b0` of one file, made with `kaggle models (instances) create`."""
    folder.mkdir()
    (folder / "model-metadata.json").write_text(json.dumps({
        "ownerSlug": USER, "slug": "tiny-net", "title": "tiny net", "isPrivate": True, "description": "a model"}))
    hosted.kaggle("models", "create", "-p", folder)
    instance = folder / "b0"
    instance.mkdir()
    (instance / "weights.txt").write_text("tiny weights")
    (instance / "model-instance-metadata.json").write_text(json.dumps({
        "ownerSlug": USER, "modelSlug": "tiny-net", "instanceSlug": "b0", "framework": "keras",
        "licenseName": "Apache 2.0"}))
    hosted.kaggle("models", "instances", "create", "-p", instance)
    return f"{USER}/tiny-net/keras/b0/1"


def test_model_sources_mount_where_kaggle_mounts_them(hosted_factory, tmp_path):
    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True)
    model = make_model(hosted, tmp_path / "model")
    push(hosted, tmp_path / "with-model", LISTING, model_sources=[model, f"{USER}/tiny-net/keras/b7/1"])
    # The CLI prints no invalidModelSources (kernels_push_cli); the library has them, and the kit stops on them.
    from tasks.backends.kaggle_client import authenticated_api
    from tasks.backends.kernel_runs import push_kernel
    from tasks.errors import BackendError

    with pytest.raises(BackendError, match=r"could not attach its sources \(model alice/tiny-net/keras/b7/1\)"):
        push_kernel(authenticated_api(), tmp_path / "with-model")
    assert finished(hosted, "with-model")["status"] == "COMPLETE"  # the second push, run without the missing one
    assert "model file: models/alice/tiny-net/keras/b0/1/weights.txt tiny weights" in log_of(hosted, "with-model")


def test_a_kernels_time_limit_is_its_session_timeout(hosted_factory, tmp_path):
    """`kaggle kernels push -t 2` (sessionTimeoutSeconds): the run is stopped after 2 s, under a host limit of an
    hour; a timeout over the host's limit gets the host's."""
    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True, kernel_timeout=3600)
    push(hosted, tmp_path / "sleeper", "import time\ntime.sleep(60)\n", "-t", "2")
    record = finished(hosted, "sleeper", seconds=60)
    assert record["status"] == "ERROR" and "time limit (2 s)" in record["failureMessage"]
    assert record["ended"] - record["started"] < 30
    assert hosted.host.kernels.run_settings({"sessionTimeoutSeconds": 43200}).time_limit == 3600


CONNECT = '''import socket
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=5).close()
    print("network: reached")
except OSError as error:
    print("network: none", type(error).__name__)
'''


def test_internet_follows_enable_internet(hosted_factory, tmp_path, sandbox):
    """A kernel pushed with enable_internet reaches the network (a listener on this machine stands for it); one
    pushed without it has none, and neither has any on a host started with --no-kernel-internet."""
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: [listener.accept()[0].close() for _ in range(4)], daemon=True).start()
    source = CONNECT.replace("PORT", str(listener.getsockname()[1]))
    hosted = hosted_factory(run_kernels=True)
    push(hosted, tmp_path / "online", source, enable_internet=True)
    push(hosted, tmp_path / "offline", source, enable_internet=False)
    assert finished(hosted, "online")["status"] == "COMPLETE" and "network: reached" in log_of(hosted, "online")
    assert finished(hosted, "offline")["status"] == "COMPLETE" and "network: none" in log_of(hosted, "offline")
    closed = hosted_factory(run_kernels=True, kernel_internet=False)
    push(closed, tmp_path / "capped", source, enable_internet=True)
    assert finished(closed, "capped")["status"] == "COMPLETE" and "network: none" in log_of(closed, "capped")
    listener.close()
