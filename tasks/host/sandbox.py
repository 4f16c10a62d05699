"""Where a pushed kernel runs: a bubblewrap sandbox that shows it only its inputs and a scratch folder.

Inside, the kernel sees the operating system and the Python that runs it (read-only), its inputs at
/kaggle/input (read-only), its output folder at /kaggle/working, an empty /tmp, no network and a
scrubbed environment, as on Kaggle. Nothing else of the host's disk is there: not the hidden solution,
not the host's store, not the user's home. Time, memory and file sizes are limited outside it.
Without bubblewrap a kernel could read every file the host can, so the host then refuses to run one
unless it was started with --unsafe-kernels.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tasks.host.common import HostError, HostSettings

KAGGLE_INPUT, KAGGLE_WORKING, KAGGLE_SOURCE = "/kaggle/input", "/kaggle/working", "/kaggle/src"
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: refuses connections, as a notebook without internet
LOG_TAIL = 2**20  # the most of a kernel's stdout or stderr kept for its log
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "ssl", "ca-certificates",
             "passwd", "group", "nsswitch.conf", "hosts", "fonts", "mime.types")  # never shadow or the like
NO_SANDBOX = ("this host has no sandbox for pushed kernels ({reason}), and without one a kernel runs as the "
              "host's user and can read the hidden solution; install bubblewrap (apt-get install bubblewrap) or "
              "start the host with --unsafe-kernels to run them anyway")

# Sets the limits, then becomes the command: a preexec_fn is unsafe in a process with threads (the host's).
_LAUNCHER = ("import os, resource, sys\n"
             "memory, file_size = int(sys.argv[1]), int(sys.argv[2])\n"
             "resource.setrlimit(resource.RLIMIT_AS, (memory, memory))\n"
             "resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))\n"
             "os.execvp(sys.argv[3], sys.argv[3:])\n")


def python_roots() -> list[Path]:
    """The folders that make up the Python running the host (a venv and the installation it comes from)."""
    roots = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent]
    unique = []
    for root in roots:
        if root not in unique and not any(root.is_relative_to(parent) for parent in unique):
            unique.append(root)
    return unique


def read_only_roots() -> list[Path]:
    """Every host folder the sandbox shows (read-only) besides the kernel's own inputs."""
    system = [Path("/usr")] + [Path("/", name) for name in ("bin", "lib", "lib64", "lib32", "sbin")
                               if Path("/", name).is_dir() and not Path("/", name).is_symlink()]
    etc = [Path("/etc", name) for name in ETC_FILES if Path("/etc", name).exists()]
    return system + etc + [root for root in python_roots() if not root.is_relative_to("/usr")]


def bwrap_command(command: list[str], inputs: Path, working: Path, source: Path) -> list[str]:
    """`command` inside bubblewrap: the OS and Python read-only, inputs and source read-only, working writable."""
    arguments = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev",
                 "--tmpfs", "/tmp"]
    for name in ("bin", "lib", "lib64", "lib32", "sbin"):
        if Path("/", name).is_symlink():
            arguments += ["--symlink", os.readlink(Path("/", name)), f"/{name}"]
    for root in read_only_roots():
        arguments += ["--ro-bind", str(root), str(root)]
    arguments += ["--ro-bind", str(inputs), KAGGLE_INPUT, "--bind", str(working), KAGGLE_WORKING,
                  "--ro-bind", str(source), f"{KAGGLE_SOURCE}/{source.name}", "--chdir", KAGGLE_WORKING]
    return arguments + ["--"] + command


def limited(command: list[str], memory_bytes: int, file_bytes: int) -> list[str]:
    """`command` under an address-space limit and a limit on the size of any file it writes."""
    return [sys.executable, "-c", _LAUNCHER, str(memory_bytes), str(file_bytes), *command]


@functools.cache
def sandbox_problem() -> str | None:
    """Why pushed kernels cannot be sandboxed here (None: they can): no bwrap, or bwrap not allowed to run."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    probe = bwrap_command(["true"], scratch, scratch, Path(shutil.which("true") or "/bin/true"))
    try:
        result = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        return f"bwrap does not run: {error}"
    if result.returncode != 0:
        return f"bwrap cannot make a sandbox here: {(result.stderr.strip().splitlines() or ['no reason'])[-1]}"
    return None


def exposed(secret: Path) -> Path | None:
    """The read-only folder that would show `secret` (e.g. the competition's folder) to a kernel; None if none."""
    secret = Path(secret).resolve()
    return next((root for root in read_only_roots() if secret.is_relative_to(root.resolve())), None)


def kernel_refusal(settings: HostSettings, competition_root: Path) -> str | None:
    """Why this host must not run a pushed kernel (None: it may)."""
    problem = sandbox_problem()
    if problem is not None:
        return None if settings.unsafe_kernels else NO_SANDBOX.format(reason=problem)
    shown = exposed(competition_root)
    if shown is not None and not settings.unsafe_kernels:
        return (f"the kernel sandbox shows {shown} read-only, and that holds the competition's hidden solution "
                f"({competition_root}); keep the data folder outside the system and Python folders")
    return None


def kernel_environment(inputs: str, working: str, home: str) -> dict:
    """All a kernel's environment: no credentials, the input and output folders, the network off."""
    keep = {name: os.environ[name] for name in ("PATH", "LANG", "TF_CPP_MIN_LOG_LEVEL") if name in os.environ}
    return {**keep, "HOME": home, "PYTHONUNBUFFERED": "1", "KAGGLE_KERNEL_RUN_TYPE": "Batch",
            "HEADSTART_KAGGLE_INPUT": inputs, "HEADSTART_KAGGLE_WORKING": working,
            "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "http_proxy": DEAD_PROXY,
            "https_proxy": DEAD_PROXY, "NO_PROXY": "", "no_proxy": ""}


def _command(script: Path, inputs: Path, working: Path, home: Path) -> tuple[list[str], dict]:
    """The kernel's command and environment: in the sandbox when there is one, else as the host's user."""
    if sandbox_problem() is None:
        command = bwrap_command([sys.executable, f"{KAGGLE_SOURCE}/{script.name}"], inputs, working, script)
        return command, kernel_environment(KAGGLE_INPUT, KAGGLE_WORKING, "/tmp")
    home.mkdir(exist_ok=True)
    return [sys.executable, str(script)], kernel_environment(str(inputs), str(working), str(home))


def _tail(path: Path) -> str:
    with open(path, "rb") as stream:
        stream.seek(max(0, path.stat().st_size - LOG_TAIL))
        return stream.read().decode("utf-8", errors="replace")


def run_kernel(script: Path, inputs: Path, working: Path, scratch: Path, settings: HostSettings) -> tuple[str, str, str]:
    """Run a kernel's script to its end within the settings' limits: (failure message or "", stdout, stderr).
    Its stdout and stderr go to files in `scratch` (never into memory whole)."""
    command, environment = _command(script, inputs, working, scratch / "home")
    streams = scratch / "stdout.txt", scratch / "stderr.txt"
    try:
        with open(streams[0], "wb") as stdout, open(streams[1], "wb") as stderr:
            result = subprocess.run(limited(command, settings.kernel_memory_bytes, settings.kernel_output_bytes),
                                    cwd=working, stdout=stdout, stderr=stderr, env=environment,
                                    timeout=settings.kernel_timeout)
    except subprocess.TimeoutExpired:
        raise HostError(500, f"the kernel ran over its time limit ({settings.kernel_timeout:g} s)") from None
    out, err = _tail(streams[0]), _tail(streams[1])
    written = sum(path.stat().st_size for path in working.rglob("*") if path.is_file())
    if written > settings.kernel_output_bytes:
        shutil.rmtree(working)
        working.mkdir()
        return f"the kernel wrote {written} bytes, over the limit of {settings.kernel_output_bytes}", out, err
    failure = "" if result.returncode == 0 else (err.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
    return failure, out, err
