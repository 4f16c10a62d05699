"""Where a pushed kernel runs: a bubblewrap sandbox that shows it only its inputs and a scratch folder.

Inside, the kernel runs as uid 65534 with no capabilities and no way to gain one, in its own pid, ipc,
network and (for a host not run as root) user namespace. It sees the operating system and the Python
that runs it, read-only, its inputs at /kaggle/input (read-only), its output folder at /kaggle/working,
an empty /tmp, no network and a scrubbed environment, as on Kaggle; every other mount is read-only,
and it holds no privilege to remount one. Nothing else of the host's disk is there: not the hidden
solution, not the host's store, not the user's home. Time, memory and file sizes are limited outside
it, by a launcher that runs without site-packages, so nothing a kernel writes runs outside.
Without bubblewrap a kernel could read every file the host can, so the host then refuses to run one
unless it was started with --unsafe-kernels.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tasks.host.common import HostSettings
from tasks.host.outputs import OutputLimit, copy_outputs

KAGGLE_INPUT, KAGGLE_WORKING, KAGGLE_SOURCE = "/kaggle/input", "/kaggle/working", "/kaggle/src"
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: refuses connections, as a notebook without internet
LOG_TAIL = 2**20  # the most of a kernel's stdout or stderr kept for its log
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "ssl", "ca-certificates",
             "passwd", "group", "nsswitch.conf", "hosts", "fonts", "mime.types")  # never shadow or the like
NO_SANDBOX = ("this host has no sandbox for pushed kernels ({reason}), and without one a kernel runs as the "
              "host's user and can read the hidden solution; install bubblewrap (apt-get install bubblewrap) or "
              "start the host with --unsafe-kernels to run them anyway")

KERNEL_UID = 65534  # "nobody": a kernel's uid and gid inside the sandbox, and on the host when the host runs as root

# Outside the sandbox, as the host's user: set the limits, then become bwrap. Run by `python -I -S`: no
# site-packages (no .pth file), no PYTHON* variables, no user site, so nothing a kernel could write runs here.
_LIMITS = ("import os, resource, sys\n"
           "memory, file_size, processes = map(int, sys.argv[1:4])\n"
           "resource.setrlimit(resource.RLIMIT_AS, (memory, memory))\n"
           "resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))\n"
           "resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))\n"
           "os.nice(10)  # the host's own requests come first\n"
           "os.execvp(sys.argv[4], sys.argv[4:])\n")
OUTPUT_CHECK_SECONDS = 1.0  # how often a running kernel's time and output are checked
# Inside the sandbox of a host run as root, before the kernel starts: become KERNEL_UID, which clears every
# capability, and forbid gaining privileges again (setuid programs, file capabilities). bwrap's own user namespace
# would not do: as root it maps the kernel's uid to the host's root, whose files the kernel would then own.
_DROP = ("import ctypes, os, sys\n"
         "uid = int(sys.argv[1])\n"
         "os.setgroups([])\n"
         "os.setresgid(uid, uid, uid)\n"
         "os.setresuid(uid, uid, uid)\n"
         "if ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0):  # PR_SET_NO_NEW_PRIVS\n"
         "    raise OSError(ctypes.get_errno(), 'prctl(PR_SET_NO_NEW_PRIVS) failed')\n"
         "os.execv(sys.argv[2], sys.argv[2:])\n")


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


def _isolation(internet: bool = False) -> list[str]:
    """bwrap's namespaces and privileges. As root, no user namespace (see _DROP) and only the two capabilities
    _DROP needs to become KERNEL_UID; otherwise a user namespace in which the kernel is KERNEL_UID, which may not
    make another. Without internet, a network namespace of its own (no interface but loopback)."""
    arguments = ["bwrap", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid",
                 *([] if internet else ["--unshare-net"]), "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() == 0:
        return arguments + ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return arguments + ["--unshare-user", "--uid", str(KERNEL_UID), "--gid", str(KERNEL_UID), "--disable-userns",
                        "--cap-drop", "ALL"]


def _binds(mounts: list[tuple[Path, str, bool]]) -> list[str]:
    """Bind each (host path, sandbox path, writable); the folders above each sandbox path are made first, open to
    all (bwrap would copy the host's modes, and a kernel that is not root could not pass /root to its Python)."""
    arguments, made = [], {"/"}
    for source, target, writable in mounts:
        for parent in reversed(Path(target).parents):
            if str(parent) not in made:
                made.add(str(parent))
                arguments += ["--perms", "0755", "--dir", str(parent)]
        arguments += ["--bind" if writable else "--ro-bind", str(Path(source).absolute()), target]
    return arguments


def bwrap_command(command: list[str], inputs: Path, working: Path, source: Path, tmp_bytes: int,
                  internet: bool = False) -> list[str]:
    """`command` inside bubblewrap: the OS and Python read-only, inputs and source read-only, working writable,
    /tmp and /dev/shm small tmpfs; every other mount read-only, and nothing to remount them with; the network only
    with `internet`."""
    arguments = _isolation(internet)
    for name in ("bin", "lib", "lib64", "lib32", "sbin"):
        if Path("/", name).is_symlink():
            arguments += ["--symlink", os.readlink(Path("/", name)), f"/{name}"]
    mounts = [(root, str(root), False) for root in read_only_roots()]
    mounts += [(inputs, KAGGLE_INPUT, False), (source, f"{KAGGLE_SOURCE}/{source.name}", False),
               (working, KAGGLE_WORKING, True)]
    arguments += _binds(mounts) + ["--proc", "/proc", "--dev", "/dev"]
    for scratch in ("/tmp", "/dev/shm"):
        arguments += ["--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", scratch]
    arguments += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", KAGGLE_WORKING, "--"]
    if os.geteuid() == 0:
        command = [sys.executable, "-I", "-S", "-c", _DROP, str(KERNEL_UID), *command]
    return arguments + command


def limited(command: list[str], settings: HostSettings) -> list[str]:
    """`command` under the settings' limits: address space, the size of any file it writes, processes."""
    limits = settings.kernel_memory_bytes, settings.kernel_output_bytes, settings.kernel_processes
    return [sys.executable, "-I", "-S", "-c", _LIMITS, *map(str, limits), *command]


@functools.cache
def sandbox_problem() -> str | None:
    """Why pushed kernels cannot be sandboxed here (None: they can): no bwrap, or bwrap not allowed to run."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    with tempfile.TemporaryDirectory(prefix="headstart-probe-") as scratch:
        folder = Path(scratch)
        (folder / "probe.py").write_text("pass\n")
        prepare_run(folder, folder, folder / "probe.py")
        probe = bwrap_command([sys.executable, f"{KAGGLE_SOURCE}/probe.py"], folder, folder, folder / "probe.py",
                              2**20)
        try:
            result = subprocess.run(probe, capture_output=True, text=True, timeout=30, cwd="/")
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


def kernel_environment(inputs: str, working: str, home: str, internet: bool = False, extra: dict | None = None
                       ) -> dict:
    """All a kernel's environment: no credentials, the input and output folders, the network off unless `internet`
    (then no proxy at all: the host's own, which the client's environment may name, is not the kernel's)."""
    keep = {name: os.environ[name] for name in ("PATH", "LANG", "TF_CPP_MIN_LOG_LEVEL") if name in os.environ}
    proxy = "" if internet else DEAD_PROXY
    return {**keep, "HOME": home, "PYTHONUNBUFFERED": "1", "KAGGLE_KERNEL_RUN_TYPE": "Batch",
            "HEADSTART_KAGGLE_INPUT": inputs, "HEADSTART_KAGGLE_WORKING": working,
            "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy,
            "https_proxy": proxy, "NO_PROXY": "", "no_proxy": "", **(extra or {})}


def prepare_run(inputs: Path, working: Path, script: Path) -> None:
    """Let the kernel's uid read its inputs and script and write its working folder (it is not the host's user
    when the host runs as root)."""
    for folder, _, files in os.walk(inputs):
        os.chmod(folder, 0o755)
        for path in (os.path.join(folder, name) for name in files):
            if not os.path.islink(path):  # chmod would change the link's target
                os.chmod(path, 0o644)
    os.chmod(script, 0o644)
    if os.geteuid() == 0:
        os.chown(working, KERNEL_UID, KERNEL_UID)


@dataclass(frozen=True)
class KernelRun:
    """What one run of a kernel may do: its time limit (seconds), the network, and environment variables of its own
    (a code competition's scoring run has KAGGLE_IS_COMPETITION_RERUN)."""

    time_limit: float
    internet: bool = False
    environment: dict = field(default_factory=dict)


def _command(script: Path, inputs: Path, working: Path, home: Path, tmp_bytes: int, run: KernelRun
             ) -> tuple[list[str], dict]:
    """The kernel's command and environment: in the sandbox when there is one, else as the host's user."""
    if sandbox_problem() is None:
        prepare_run(inputs, working, script)
        command = bwrap_command([sys.executable, f"{KAGGLE_SOURCE}/{script.name}"], inputs, working, script,
                                tmp_bytes, run.internet)
        return command, kernel_environment(KAGGLE_INPUT, KAGGLE_WORKING, "/tmp", run.internet, run.environment)
    home.mkdir(exist_ok=True)
    return [sys.executable, str(script)], kernel_environment(str(inputs), str(working), str(home), run.internet,
                                                             run.environment)


def _tail(path: Path) -> str:
    with open(path, "rb") as stream:
        stream.seek(max(0, path.stat().st_size - LOG_TAIL))
        return stream.read().decode("utf-8", errors="replace")


def _folder_bytes(folder: Path) -> int:
    """The bytes of the files under `folder`, links not followed (an unreadable folder counts nothing)."""
    return sum(os.lstat(os.path.join(root, name)).st_size for root, _, files in os.walk(folder) for name in files)


def _wait(process: subprocess.Popen, working: Path, settings: HostSettings, time_limit: float) -> str:
    """Wait for a kernel to end; kill it once past its time limit or its output limit: why ("" if it ended)."""
    deadline = time.monotonic() + time_limit
    while True:
        try:
            process.wait(timeout=max(0.0, min(OUTPUT_CHECK_SECONDS, deadline - time.monotonic())))
            return ""
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() >= deadline:
            reason = f"the kernel ran over its time limit ({time_limit:g} s)"
        elif _folder_bytes(working) > settings.kernel_output_bytes:
            reason = f"the kernel wrote over the limit of {settings.kernel_output_bytes} bytes of output"
        else:
            continue
        process.kill()  # bwrap: with it go the kernel and everything in its pid namespace
        process.wait()
        return reason


def run_kernel(script: Path, inputs: Path, working: Path, directory: Path, settings: HostSettings, run: KernelRun
               ) -> tuple[str, str, str]:
    """Run a kernel's script to its end within the settings' limits and the run's, then copy its outputs from
    `working` to `directory/working`: (failure message or "", stdout, stderr). Its stdout and stderr go to files in
    `directory` (never into memory whole); a note on each output not kept ends its stderr."""
    command, environment = _command(script, inputs, working, directory / "home", settings.kernel_tmp_bytes, run)
    streams = directory / "stdout.txt", directory / "stderr.txt"
    with open(streams[0], "wb") as stdout, open(streams[1], "wb") as stderr:
        process = subprocess.Popen(limited(command, settings), cwd=working, stdout=stdout, stderr=stderr,
                                   env=environment)
        killed = _wait(process, working, settings, run.time_limit)
    out, err = _tail(streams[0]), _tail(streams[1])
    failure = killed or ("" if process.returncode == 0 else
                         (err.strip().splitlines() or [f"exit code {process.returncode}"])[-1])
    kept = directory / "working"
    try:
        notes, _ = copy_outputs(working, kept, settings.kernel_output_bytes)
    except OutputLimit:
        notes, failure = [], f"the kernel wrote over the limit of {settings.kernel_output_bytes} bytes of output"
    if failure.startswith("the kernel wrote over"):
        shutil.rmtree(kept)
        kept.mkdir()
    return failure, out, err + "".join(f"headstart host: {note}\n" for note in notes)
