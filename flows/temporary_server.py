"""Prefect's temporary server dies with the process that started it, however that process ends (Linux).

Prefect stops its temporary server from `atexit`, which never runs when the process is killed outright (SIGKILL,
the OOM killer): each such run left a server behind, holding a port and its memory (issue 12, 5 of 5 kills).
Linux can tie the two: prctl(PR_SET_PDEATHSIG) in the child, between fork and exec, asks the kernel to kill it
when its parent dies. Prefect has no hook for that, so its server module gets its own `subprocess`, whose Popen
adds the prctl: the smallest change that reaches the temporary server only (nothing else spawns through that
module), keeps Prefect's own command line, start-up, port retries and stop(), and costs nothing while a run goes
on. Rejected: starting and owning the server ourselves (a copy of Prefect's start-up and settings to keep in step
with every release) and a watchdog process (one more process to leave behind).
"""

from __future__ import annotations

import ctypes
import functools
import os
import queue
import signal
import subprocess
import sys
import threading
import types
from concurrent.futures import Future
from typing import Callable, TypeVar

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def tie_temporary_server_to_this_process() -> None:
    """Make the temporary Prefect server that this process may start die with it, even on SIGKILL (Linux)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or not sys.platform.startswith("linux"):
        return  # a server of the user's is not ours to stop; elsewhere Prefect's atexit stop is all there is
    from prefect.server.api import server

    if not isinstance(server.subprocess, _ServerSubprocess):
        server.subprocess = _ServerSubprocess("subprocess")


def _kill_when_parent_dies(parent_pid: int, prctl) -> None:
    """Runs in the child, between fork and exec."""
    prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent_pid:  # the parent died before the call: too late for the kernel to tell us
        os._exit(1)


class _PopenDyingWithParent(subprocess.Popen):
    """Popen whose child is killed by the kernel when this process ends. The signal comes when the *thread* that
    started the child ends, so a child is started from the main thread or from a thread that lives as long as
    the process (Prefect may start its server from a worker thread of its own, which can end before the run)."""

    def __init__(self, *args, **kwargs):
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        kwargs["preexec_fn"] = functools.partial(_kill_when_parent_dies, os.getpid(), prctl)
        start = functools.partial(super().__init__, *args, **kwargs)
        if threading.current_thread() is threading.main_thread():
            start()
        else:
            _LIFELONG_THREAD.call(start)


class _ServerSubprocess(types.ModuleType):
    """The `subprocess` module as Prefect's server module sees it: the same, except for Popen."""

    Popen = _PopenDyingWithParent

    def __getattr__(self, name: str):
        return getattr(subprocess, name)


class _LifelongThread:
    """A daemon thread that runs the calls handed to it, started on first use; it ends only with the process."""

    def __init__(self):
        self.calls: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def call(self, function: Callable[[], T]) -> T:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._serve, name="headstart-lifelong", daemon=True)
                self.thread.start()
        result: Future = Future()
        self.calls.put((function, result))
        return result.result()

    def _serve(self) -> None:
        while True:
            function, result = self.calls.get()
            try:
                result.set_result(function())
            except BaseException as error:  # handed back to the caller, whatever it is
                result.set_exception(error)


_LIFELONG_THREAD = _LifelongThread()
