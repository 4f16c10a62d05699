"""A `headstart host` on 127.0.0.1 for the tests (the `hosted` and `hosted_factory` fixtures in tests/conftest.py start
it), and the environment that points the real kaggle client at it.

The client goes to http://localhost (KAGGLE_API_ENVIRONMENT=LOCALHOST, set in conftest before any
import of kaggle) through HTTP_PROXY=<host URL>; NO_PROXY=127.0.0.1 keeps Prefect's own client (and the
host's file URLs) direct.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tasks.backends.local import LocalBackend
from tasks.host.common import HostSettings
from tasks.host.server import HostServer
from tasks.host.state import CompetitionHost

USER = "alice"
# A fresh key per session: every test that might leak it greps for it.
KEY = "hs-key-" + secrets.token_hex(10)
KAGGLE_CLI = str(Path(sys.executable).with_name("kaggle"))
KERNELS = "/api/v1/kernels.KernelsApiService/"
DATASETS = "/api/v1/datasets.DatasetApiService/"
COMPETITIONS = "/api/v1/competitions.CompetitionApiService/"


def require_sandbox(problem: str | None) -> None:
    if problem is not None:
        if os.environ.get("HEADSTART_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"HEADSTART_REQUIRE_SANDBOX=1, but there is no kernel sandbox here: {problem}")
        pytest.skip(f"no kernel sandbox here: {problem}")


# Straight to the host, whatever proxy the environment names (urlopen's default opener keeps the proxies of its
# first call, and a test that pointed HTTP_PROXY at a host that has since stopped would send later calls there).
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(url: str, payload: dict | None = None, user: str = USER, key: str | None = KEY,
         method: str = "POST") -> tuple[int, dict]:
    """One request straight to a host, as the client sends an RPC (`key=None`: without credentials);
    (status, JSON answer)."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()
    body = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with DIRECT.open(request, timeout=60) as response:
            text = response.read()
            return response.status, json.loads(text) if text[:1] == b"{" else {}
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text[:1] == b"{" else {}


def wait_for_kernel(url: str, owner: str, slug: str, key: str, seconds: float = 120) -> dict:
    """GetKernelSessionStatus until the kernel is COMPLETE or ERROR; its last answer."""
    deadline = time.monotonic() + seconds
    while True:
        status, answer = call(url + KERNELS + "GetKernelSessionStatus", {"userName": owner, "kernelSlug": slug},
                              user=owner, key=key)
        assert status == 200, answer
        if answer.get("status") in ("COMPLETE", "ERROR"):
            return answer
        assert time.monotonic() < deadline, answer
        time.sleep(0.05)


@dataclass
class Hosted:
    host: CompetitionHost
    server: HostServer
    data_dir: Path
    home: Path
    env: dict = field(repr=False)  # for subprocesses: the client's environment (holds the key)

    @property
    def backend(self) -> LocalBackend:
        return self.host.backend

    @property
    def spec_file(self) -> str:
        """The served competition's spec, as a Kaggle-backend user passes it (--spec)."""
        return str(self.backend.root / "competition.json")

    def kaggle(self, *arguments, check: bool = True, **environment) -> subprocess.CompletedProcess:
        """Run the official kaggle CLI against the host."""
        result = subprocess.run([KAGGLE_CLI, *map(str, arguments)], env={**self.env, **environment},
                                capture_output=True, text=True, cwd=self.home, timeout=120)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def set_daily_limit(self, limit: int) -> None:
        settings_path = self.backend.root / "competition.json"
        settings = json.loads(settings_path.read_text())
        settings_path.write_text(json.dumps({**settings, "daily_limit": limit}))
        self.host.backend = LocalBackend(self.backend.root, board=self.backend.board)  # still the hosted board


def client_environment(url: str, home: Path, user: str = USER, key: str = KEY) -> dict:
    """What points the kaggle client at a host, as this user."""
    return {"KAGGLE_API_ENVIRONMENT": "LOCALHOST", "HTTP_PROXY": url, "http_proxy": url, "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1", "KAGGLE_USERNAME": user, "KAGGLE_KEY": key, "HOME": str(home),
            "KAGGLE_CONFIG_DIR": str(home / ".kaggle")}


def start_host(data_dir: Path, digits_store: Path, **settings) -> tuple[CompetitionHost, HostServer]:
    """A private copy of the digits competition (its quota and log are per test), served on a free port."""
    root = data_dir / "local" / "digits"
    if not root.exists():
        shutil.copytree(digits_store / "local" / "digits", root)
    host = CompetitionHost(LocalBackend(root, board="hosted"), HostSettings(**{"users": ((USER, KEY),), **settings}))
    return host, HostServer(host, "127.0.0.1", 0).start()


def hosts_for_a_test(tmp_path: Path, digits_store: Path, monkeypatch):
    """A function that starts hosts with given settings (the client environment points at the last one started),
    and the servers it started, to stop after the test (the `hosted_factory` fixture, tests/conftest.py)."""
    servers = []

    def start(**settings) -> Hosted:
        data_dir, home = tmp_path / "data", tmp_path / "home"
        home.mkdir(exist_ok=True)
        host, server = start_host(data_dir, digits_store, **settings)
        servers.append(server)
        environment = client_environment(server.url, home)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        return Hosted(host, server, data_dir, home, {**os.environ, **environment})

    return start, servers


def perfect_submission(hosted: Hosted, path: Path) -> Path:
    """The hidden solution as a submission file (a public score of 1.0)."""
    solution = hosted.backend.solution()
    solution[["ImageId", "Label"]].to_csv(path, index=False)
    return path


def labelled_submission(hosted: Hosted, path: Path, label: str) -> Path:
    """A valid submission that answers `label` everywhere (a different file per label)."""
    sample = hosted.backend.sample_submission()
    sample["Label"] = label
    sample.to_csv(path, index=False)
    return path


def assert_no_secret(*texts: str, paths: tuple[Path, ...] = ()) -> None:
    """The API key appears in none of the texts, nor in any file under the paths."""
    for text in texts:
        assert KEY not in (text or "")
    for root in paths:
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"


@dataclass
class RealHost:
    """`headstart host` started as README shows: its own process, a relative --data-dir, keys on its command line
    (where /proc/PID/cmdline shows them to anything that can read it)."""

    process: subprocess.Popen = field(repr=False)
    url: str
    cwd: Path
    keys: dict = field(repr=False)  # user -> key

    def kaggle(self, user: str, *arguments, check: bool = True) -> subprocess.CompletedProcess:
        """The official kaggle CLI as `user`, in a home of its own."""
        home = self.cwd / "homes" / user
        home.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **client_environment(self.url, home, user, self.keys[user])}
        result = subprocess.run([KAGGLE_CLI, *map(str, arguments)], env=environment, capture_output=True,
                                text=True, cwd=home, timeout=120)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def rpc(self, user: str, rpc: str, payload: dict) -> tuple[int, dict]:
        return call(self.url + rpc, payload, user=user, key=self.keys[user])

    def push(self, user: str, folder: Path, slug: str, source: str, **metadata) -> str:
        """`kaggle kernels push` of a script kernel; the CLI's output."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "kernel.py").write_text(source)
        (folder / "kernel-metadata.json").write_text(json.dumps({
            "id": f"{user}/{slug}", "title": slug, "code_file": "kernel.py", "language": "python",
            "kernel_type": "script", "enable_internet": False, **metadata}))
        return self.kaggle(user, "kernels", "push", "-p", folder).stdout

    def wait(self, user: str, slug: str, seconds: float = 120) -> dict:
        return wait_for_kernel(self.url, user, slug, self.keys[user], seconds)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def start_real_host(cwd: Path, digits_store: Path, users: dict, *options: str) -> RealHost:
    """`headstart host digits --port 0 --data-dir data` in `cwd`, each user given by `--user NAME:KEY`."""
    shutil.copytree(digits_store, cwd / "data")
    command = [sys.executable, "-m", "flows.cli", "host", "digits", "--port", "0", "--data-dir", "data",
               *[argument for user, key in users.items() for argument in ("--user", f"{user}:{key}")], *options]
    environment = {name: value for name, value in os.environ.items() if name != "HEADSTART_HOST_USERS"}
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE, text=True,
                               stderr=open(cwd / "host.stderr", "w"))
    line = process.stdout.readline()
    assert " on http://" in line, (line, (cwd / "host.stderr").read_text())
    return RealHost(process, line.split(" on ")[1].split(" ")[0], cwd, users)


def push_script(hosted, folder: Path, source: str, *options: str, **metadata) -> str:
    """`kaggle kernels push` of a script kernel named after its folder, as USER; the CLI's output."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.py").write_text(source)
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{USER}/{folder.name}", "title": folder.name, "code_file": "run.py", "language": "python",
        "kernel_type": "script", **metadata}))
    return hosted.kaggle("kernels", "push", "-p", folder, *options).stdout
