"""Shared test setup: offline, quiet, and isolated from the user's Prefect and Kaggle state."""

import os
import tempfile
from pathlib import Path

# Before anything imports TensorFlow, Prefect or kaggle.
_SANDBOX = Path(tempfile.mkdtemp(prefix="headstart-tests-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["PREFECT_HOME"] = str(_SANDBOX / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(_SANDBOX / "prefect-results")
os.environ["KAGGLE_CONFIG_DIR"] = str(_SANDBOX / "kaggle")
# The kaggle client reads this once, at import: tests only ever reach `headstart host` on 127.0.0.1
# (through HTTP_PROXY), never api.kaggle.com.
os.environ["KAGGLE_API_ENVIRONMENT"] = "LOCALHOST"
os.environ.pop("PREFECT_API_URL", None)
for _name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
    os.environ.pop(_name, None)

import prefect.main  # noqa: E402, F401  (configures logging)
import pytest  # noqa: E402

import tasks.backends.retry as _retry  # noqa: E402

# Kaggle calls that fail for now are tried again after a backoff of seconds to minutes; in tests, of milliseconds
# (a Retry-After the host sends is still waited as given). tests/test_retry.py checks the real policy.
_retry.DEFAULT = _retry.Backoff(base=0.02, cap=0.1)

# Prefect configures logging when first imported, closing the handlers that exist then. Imported later,
# inside a CliRunner (which swaps sys.stderr), it would close TensorFlow's absl handler and with it the
# stderr stream pytest captured when TensorFlow was imported. Importing it first keeps that from happening.


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server for every flow test (it takes ~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture(scope="session")
def digits_store(tmp_path_factory) -> Path:
    """A data root holding the built-in digits competition (created once per session)."""
    from tasks.backends.practice import ensure_digits
    from tasks.paths import DataPaths

    root = tmp_path_factory.mktemp("digits-data")
    ensure_digits(DataPaths(root).local("digits"))
    return root


@pytest.fixture
def hosted_factory(tmp_path, digits_store, monkeypatch):
    """Start `headstart host`s of the digits competition with given settings (tests/hosting.py); the client
    environment points at the last one started."""
    from tests.hosting import hosts_for_a_test

    start, servers = hosts_for_a_test(tmp_path, digits_store, monkeypatch)
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox() -> None:
    """Skip a test that needs the bubblewrap sandbox where there is none; with HEADSTART_REQUIRE_SANDBOX=1 (CI
    sets it) fail it instead: a security test that skips in CI protects nothing."""
    from tasks.host.sandbox import sandbox_problem
    from tests.hosting import require_sandbox

    require_sandbox(sandbox_problem())


@pytest.fixture
def hosted(hosted_factory):
    """The digits competition served to user alice, kernels marked complete without running."""
    return hosted_factory(run_kernels=False)
