"""A `headstart host` on 127.0.0.1 for the tests (the `hosted` and `hosted_factory` fixtures in tests/conftest.py start
it), and the environment that points the real kaggle client at it.

The client goes to http://localhost (KAGGLE_API_ENVIRONMENT=LOCALHOST, set in conftest before any
import of kaggle) through HTTP_PROXY=<host URL>; NO_PROXY=127.0.0.1 keeps Prefect's own client (and the
host's file URLs) direct.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tasks.backends.local import LocalBackend
from tasks.host.common import HostSettings
from tasks.host.server import HostServer
from tasks.host.state import CompetitionHost

USER = "alice"
# A fresh key per session: every test that might leak it greps for it.
KEY = "hs-key-" + secrets.token_hex(10)
KAGGLE_CLI = str(Path(sys.executable).with_name("kaggle"))


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
        self.host.backend = LocalBackend(self.backend.root)


def client_environment(url: str, home: Path, user: str = USER, key: str = KEY) -> dict:
    return {"KAGGLE_API_ENVIRONMENT": "LOCALHOST", "HTTP_PROXY": url, "http_proxy": url, "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1", "KAGGLE_USERNAME": user, "KAGGLE_KEY": key, "HOME": str(home),
            "KAGGLE_CONFIG_DIR": str(home / ".kaggle")}


def start_host(data_dir: Path, digits_store: Path, **settings) -> tuple[CompetitionHost, HostServer]:
    """A private copy of the digits competition (its quota and log are per test), served on a free port."""
    root = data_dir / "local" / "digits"
    if not root.exists():
        shutil.copytree(digits_store / "local" / "digits", root)
    host = CompetitionHost(LocalBackend(root), HostSettings(**{"users": ((USER, KEY),), **settings}))
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
