"""What headstart asks of Prefect, in one place: stages as tasks, retries on network steps, quiet expected
errors, artifacts that never fail a run, and a run that survives Prefect's API going away.

Prefect with no server configured starts a temporary one per process; on a busy 2-core machine that can
take longer than Prefect's 20 s default, and under load it has stopped answering mid-run. A run's work
must not depend on it, so:
- the temporary server gets minutes, not 20 s, to start (flows/__init__.py; an explicit setting wins);
- artifacts are best effort: a failure to record one is a warning;
- if the API cannot be reached, before or during the run, the same stages run again as plain calls
  (tasks/stages.py): every finished stage is found in its content-addressed cache and reused, and the
  submission guard never sends a file twice, so nothing is redone or resent.
With `PREFECT_API_URL` set, runs go to that server. Without it, the temporary server dies with the process that
started it, however that process ends (flows/temporary_server.py).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Callable, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.temporary_server import tie_temporary_server_to_this_process
from tasks.errors import ConfigError, HeadstartError, TransientBackendError

T = TypeVar("T")
logger = logging.getLogger("headstart")


# After a call's own tries (tasks/backends/retry.py: Retry-After, or about 4, 8, 16, 32 s with jitter), a network
# step that still fails is run again this much later, with up to half as much again of jitter: minutes, not seconds.
NETWORK_DELAYS = [30, 120, 300]


def _transient(task, task_run, state) -> bool:
    """Retry condition: only rate limits, server errors and dropped connections are worth another try; says what
    is waited for."""
    try:
        state.result()
    except TransientBackendError as error:
        retry = task_run.run_count if task_run is not None else 1
        if retry <= len(NETWORK_DELAYS):
            logger.warning("%s failed for now (%s); running it again in about %d s (retry %d of %d)", task.name,
                           error, NETWORK_DELAYS[retry - 1], retry, len(NETWORK_DELAYS))
        return True
    except BaseException:
        return False
    return False


# The only retries in the kit: on the steps that talk to a competition's backend.
NETWORK_RETRIES = dict(retries=len(NETWORK_DELAYS), retry_delay_seconds=NETWORK_DELAYS, retry_jitter_factor=0.5,
                       retry_condition_fn=_transient)


def stage_task(function: Callable, network: bool = False, **options):
    """A stage as a Prefect task. Stages cache their own outputs by content (paths in, paths out), so
    Prefect's input hashing would only cost time: no Prefect cache, for every stage."""
    return task(function, cache_policy=NO_CACHE, **(NETWORK_RETRIES if network else {}), **options)


def dask_task_runner(address: str | None = None):
    """Prefect's Dask task runner: on the scheduler at `address` (its workers started with
    `--preload flows.dask_worker`), or on a local cluster of one single-threaded worker process per core. A killed
    worker is restarted by its nanny, and the task it was running is run again (Dask's own retry)."""
    from prefect_dask import DaskTaskRunner

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the cluster's start, stop and restarts: not news
    if address:
        return DaskTaskRunner(address=address)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # Prefect names a dashboard link even for a cluster started without one: not a page anybody could open.
    dask_logger = logging.getLogger("prefect.task_runner.dask")
    if not any(isinstance(existing, _NoDashboardLink) for existing in dask_logger.filters):
        dask_logger.addFilter(_NoDashboardLink())
    return DaskTaskRunner(cluster_class=local_cluster, cluster_kwargs={
        "n_workers": cores, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
        "preload": ["flows.dask_worker"]})


class _NoDashboardLink(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "dashboard is available" not in record.getMessage()


def check_dask_scheduler(address: str, timeout: float = 10.0) -> None:
    """Refuse, before Prefect starts, a scheduler address that is malformed or does not answer (Dask would wait
    30 s and end the run in a traceback)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host, port = None, None
    if parts.scheme not in ("tcp", "tls") or not host or not port:
        raise ConfigError(f"--dask-address {address!r}: expected a Dask scheduler's address, tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        raise ConfigError(f"--dask-address {address}: no Dask scheduler answers there "
                          f"({error.strerror or type(error).__name__}); start one with `dask scheduler`") from None


def local_cluster(**options):
    """A local Dask cluster whose workers report to this process's Prefect API (started when the flow ran: without
    it in their environment, each worker would start a temporary server of its own)."""
    from distributed import LocalCluster

    api_url = prefect_api_url()
    environment = {"DASK_LOGGING__DISTRIBUTED": "error", **({"PREFECT_API_URL": api_url} if api_url else {})}
    return LocalCluster(env={**options.pop("env", {}), **environment}, **options)


def prefect_api_url() -> str | None:
    """The API this process's flow run reports to: the configured one, or the temporary server's."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL

    context = FlowRunContext.get()
    client = getattr(context, "client", None)
    return PREFECT_API_URL.value() or (str(client.api_url).rstrip("/") if client is not None else None)


def _expected_error_names() -> set[str]:
    names, pending = set(), [HeadstartError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names


# How Prefect reports the end of a task or flow run that raised: "Finished in state Failed('Task run
# encountered an exception CompetitionDataError: ...')" ("...an exception: ..." for flow runs).
_FAILED_BY = re.compile(r"Finished in state Failed\(.{0,40}?encountered an exception:? (\w+):")


class ExpectedErrorFilter(logging.Filter):
    """Keeps expected errors (HeadstartError) out of Prefect's failure logging on the console, and their
    tracebacks out of the run's logs: the CLI prints the one `error:` line; the flow run's state still says
    what failed. The same for Prefect's own API going away: the fallback says so in one warning. Bugs keep
    their tracebacks."""

    def __init__(self, console: bool):
        super().__init__()
        self.console = console

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and (isinstance(error, HeadstartError) or prefect_unavailable(error)):
            record.headstart_expected = True
            record.exc_info, record.exc_text = None, None
        elif not getattr(record, "headstart_expected", False):
            match = _FAILED_BY.search(record.getMessage())
            record.headstart_expected = bool(match and match.group(1) in _expected_error_names())
        return not (self.console and record.headstart_expected)


class RepeatFilter(logging.Filter):
    """With Prefect's API gone, its event and log workers warn about every item they cannot send (one line every
    few seconds for as long as the run trains): say it once."""

    NOISY = ("prefect.events.clients", "prefect._internal.concurrency")

    def __init__(self):
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.NOISY):
            return True
        key = (record.name, record.getMessage()[:60])
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class ServerHintFilter(logging.Filter):
    """Prefect's temporary server announces itself with a second line pointing at its docs, on every run: keep the
    first line (where the server is), drop the advertisement."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Starting temporary server on") and "\n" in message:
            record.msg, record.args = message.split("\n", 1)[0], ()
        return True


def install_log_filters() -> None:
    """Put headstart's filters on Prefect's handlers (once; they are set up when prefect is imported)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    # The console handler is the root's; prefect._internal has a stream handler of its own.
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "prefect._internal"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(existing, ExpectedErrorFilter) for existing in handler.filters):
                handler.addFilter(ExpectedErrorFilter(console=isinstance(handler, PrefectConsoleHandler)))
                handler.addFilter(RepeatFilter())
                handler.addFilter(ServerHintFilter())


def best_effort(what: str, action: Callable[[], object]) -> None:
    """Record something in Prefect (an artifact); a failure to do so is a warning, never a failed run."""
    try:
        action()
    except Exception as error:  # the API may be slow or gone: the run's files hold the same facts
        logger.warning("could not record %s in Prefect (%s); the run's files under data/ have it", what,
                       type(error).__name__)


_PROGRESS_ARTIFACTS: dict[tuple, object] = {}


def progress_to_prefect(description: str, done: int, total: int) -> None:
    """A Prefect progress artifact per progress bar of a task run (tasks/progress.py calls this every 5 %)."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    if context is None:  # not inside a Prefect task (the plain fallback): nothing to record
        return
    key = (context.task_run.id, description)
    percent = 100.0 * done / max(total, 1)
    if key not in _PROGRESS_ARTIFACTS:
        _PROGRESS_ARTIFACTS[key] = None  # one try to create it, whatever happens
        _PROGRESS_ARTIFACTS[key] = create_progress_artifact(progress=percent, description=description)
    elif _PROGRESS_ARTIFACTS[key] is not None:
        update_progress_artifact(artifact_id=_PROGRESS_ARTIFACTS[key], progress=percent)


def prefect_unavailable(error: BaseException) -> bool:
    """Whether a failure came from Prefect's API (not answering, gone, or failing to start), not from a stage."""
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, HeadstartError):
            return False
        if isinstance(error, httpx.TransportError):
            return True
        if isinstance(error, PrefectHTTPStatusError) and error.response.status_code >= 500:
            return True
        if isinstance(error, RuntimeError) and "Prefect API server" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def run_or_fall_back(flow_call: Callable[[], T], plain_call: Callable[[], T], what: str) -> T:
    """Run `flow_call`; if Prefect's API cannot be reached, run `plain_call` (the same stages, no Prefect).

    `plain_call` finds every stage the flow finished in its cache, so it redoes nothing (a flow that finished
    its work but could not report its final state leaves `plain_call` only the finding)."""
    install_log_filters()
    tie_temporary_server_to_this_process()
    try:
        return flow_call()
    except Exception as error:
        if not prefect_unavailable(error):
            raise
        _detach_from_api()
        logger.warning("Prefect's API did not answer (%s: %s); running %s without orchestration: finished "
                       "stages are reused from their caches", type(error).__name__, str(error)[:200], what)
        return plain_call()


def _detach_from_api() -> None:
    """With the API gone, stop sending it logs and events: each would be retried and fail, filling stderr
    while the run goes on, and holding the process for minutes at exit."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler, APILogWorker

    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", "headstart"):
        target = logging.getLogger(name)
        for handler in list(target.handlers):
            if isinstance(handler, APILogHandler):
                target.removeHandler(handler)
    for service in (EventsWorker, APILogWorker):
        try:  # Prefect's internals: at worst the queued items are retried at exit, as without this
            for instance in list(service._instances.values()):
                while not instance._queue.empty():
                    instance._queue.get_nowait()
        except Exception:  # a best-effort clean-up must not fail the run
            pass
