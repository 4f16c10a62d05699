"""A host safe for a classroom (issue 22): each test is one attack a participant made on `headstart host`, through
the unmodified kaggle CLI or raw HTTP against a real host on 127.0.0.1 with its kernels under bubblewrap, and checks
that it now gets nothing. bench/RESULTS.md ("Host security") lists them with their outcome before and after.
Name and signature checks (issue 12) are in tests/test_host_requests.py."""

import json
import secrets
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.hosting import (
    COMPETITIONS,
    DATASETS,
    DIRECT,
    KERNELS,
    KEY,
    USER,
    call,
    perfect_submission,
    start_real_host,
)

BOB, CAROL = ("bob", "bob-key-" + secrets.token_hex(8)), ("carol", "carol-key-" + secrets.token_hex(8))
ALICE = (USER, KEY)
BLOBS = "/api/v1/blobs.BlobApiService/"


def post(hosted, rpc: str, payload: dict, user: str = USER, key: str = KEY) -> tuple[int, dict]:
    return call(hosted.server.url + rpc, payload, user=user, key=key)


def _put(url: str, data: bytes) -> int:
    try:
        with DIRECT.open(urllib.request.Request(url, data=data, method="PUT")) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _push(hosted, slug: str, source: str, user: tuple[str, str] = ALICE, **fields) -> tuple[int, dict]:
    return post(hosted, KERNELS + "SaveKernel", {
        "slug": f"{user[0]}/{slug}", "text": source, "language": "python", "kernelType": "script",
        "competitionDataSources": ["digits"], **fields}, *user)


def _finished(hosted, slug: str, owner: str = USER, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while (record := hosted.host.kernels.record(owner, slug))["status"] not in ("COMPLETE", "ERROR"):
        assert time.monotonic() < deadline, record
        time.sleep(0.05)
    return record


def _log(hosted, slug: str, owner: str = USER) -> str:
    log_path = hosted.host.kernels.directory(owner, slug) / "log.json"
    return "".join(line["data"] for line in json.loads(log_path.read_text()))


def _report(log: str) -> dict:
    return json.loads(log.split("REPORT ", 1)[1].splitlines()[0])


@pytest.fixture(scope="module")
def real_host(tmp_path_factory, digits_store):
    """`headstart host digits --data-dir data` (relative, as README starts it) for alice, bob and carol; carol has
    not accepted the rules. Started once for the module (each start costs seconds)."""
    host = start_real_host(tmp_path_factory.mktemp("real-host"), digits_store, dict((ALICE, BOB, CAROL)),
                           "--rules-accepted-by", USER, "--rules-accepted-by", BOB[0])
    yield host
    host.stop()


# 1. Upload names never touch the host's own files.
def test_an_upload_named_like_the_hosts_record_cannot_rewrite_it(hosted_factory, tmp_path):
    """bob, who has not accepted the rules, uploads a blob named upload.json: its bytes pointed his token at the
    solution (CreateDataset then copied it into his dataset), or at any absolute path (a second PUT wrote there)."""
    hosted = hosted_factory(run_kernels=False, users=(ALICE, BOB), rules_accepted_by=(USER,))
    solution_path = hosted.backend.root / "solution.csv"
    solution = solution_path.read_bytes()
    outside = tmp_path / "written-by-bob.txt"
    for slug, forged, second_put in (("stolen-solution", "../../../solution.csv", None),
                                     ("absolute-path", str(outside), b"owned by bob")):
        status, upload = post(hosted, BLOBS + "StartBlobUpload", {"type": "DATASET", "name": "upload.json"}, *BOB)
        assert status == 200
        assert _put(upload["createUrl"], json.dumps({"user": "bob", "file_name": forged}).encode()) == 200
        if second_put:
            _put(upload["createUrl"], second_put)
        post(hosted, DATASETS + "CreateDataset", {"ownerSlug": "bob", "slug": slug, "title": slug, "isPrivate": True,
                                                  "files": [{"token": upload["token"]}]}, *BOB)
    assert not outside.exists()
    assert solution_path.read_bytes() == solution
    stored = [path for path in (hosted.host.store / "datasets").rglob("*") if path.is_file()]
    assert stored and all(solution[:200] not in path.read_bytes() for path in stored)


# 2. A kernel cannot leave its sandbox.
ESCAPE_KERNEL = r'''import json, os, subprocess, sys, sysconfig
status = dict(line.rstrip("\n").split(":\t", 1) for line in open("/proc/self/status"))
report = {"uid": os.getuid(), "gid": os.getgid(), **{name: status[name] for name in ("CapEff", "CapPrm", "NoNewPrivs")}}
def attempt(*command):
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode
    except OSError as error:
        return type(error).__name__
report["remounts"] = [attempt("mount", "-o", "remount,rw,bind", path)
                      for path in (sys.prefix, sys.base_prefix, "/usr", "/kaggle/input", "/")]
report["nested"] = attempt("unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           "mount -o remount,rw,bind $0 && touch $0/headstart-escape", sys.prefix)
written = []
for folder in {sysconfig.get_paths()["purelib"], sys.prefix, sys.base_prefix, os.path.dirname(os.__file__),
               "/kaggle/input", "/kaggle", "/", "/usr", "/etc", "/dev"}:
    try:
        with open(os.path.join(folder, "headstart-escape.pth"), "w") as stream:
            stream.write(PTH)
        written.append(folder)
    except OSError:
        pass
report["written"] = sorted(written)
report["writable mounts"] = sorted(line.split()[4] for line in open("/proc/self/mountinfo")
                                   if "rw" in line.split()[5].split(","))
report["host paths"] = [path for path in HOST_PATHS if os.path.exists(path)]
commands = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        commands.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace"))
    except OSError:
        pass
report["commands"] = commands
print("REPORT " + json.dumps(report))
'''
# Writable inside, and nowhere else: the kernel's output, its /tmp and /dev/shm (both size-limited tmpfs), /proc
# (its own processes), and the device nodes every sandbox has.
WRITABLE = {"/kaggle/working", "/tmp", "/dev/shm", "/proc", "/dev/pts", "/dev/null", "/dev/zero", "/dev/full",
            "/dev/random", "/dev/urandom", "/dev/tty"}


def test_a_kernel_cannot_leave_its_sandbox(hosted_factory, tmp_path, sandbox):
    """As root with every capability, a kernel remounted the Python read-write and left a .pth in site-packages
    that the next kernel's launch ran outside the sandbox. Now: uid 65534, no capabilities, no new privileges,
    every mount but its own folders read-only and locked, no user namespace to remount from, no host path or
    process in sight, and the next launch runs nothing it left."""
    hosted = hosted_factory(run_kernels=True)
    marker = tmp_path / "marker"
    marker.mkdir()
    pth = f"import os; os.path.isdir({str(marker)!r}) and open({str(marker / 'ran-outside')!r}, 'w').close()\n"
    host_paths = [str(hosted.data_dir), str(hosted.host.store), str(hosted.home), str(tmp_path),
                  str(Path(__file__).parents[1] / "tasks")]
    source = ESCAPE_KERNEL.replace("PTH", repr(pth)).replace("HOST_PATHS", repr(host_paths))
    report = {}
    try:
        assert _push(hosted, "escaping", source)[0] == 200
        assert _finished(hosted, "escaping")["status"] == "COMPLETE"
        report = _report(_log(hosted, "escaping"))
        assert _push(hosted, "next-kernel", "print('next')")[0] == 200
        assert _finished(hosted, "next-kernel")["status"] == "COMPLETE"
        nested_escape = Path(sysconfig.get_paths()["data"], "headstart-escape").exists()
    finally:  # what an old host let through must not stay in this Python
        for folder in {*report.get("written", ()), sysconfig.get_paths()["purelib"]}:
            Path(folder, "headstart-escape.pth").unlink(missing_ok=True)
        Path(sysconfig.get_paths()["data"], "headstart-escape").unlink(missing_ok=True)
    assert not (marker / "ran-outside").exists()
    assert report["uid"] == 65534 and report["gid"] == 65534
    assert report["CapEff"] == report["CapPrm"] == "0000000000000000" and report["NoNewPrivs"] == "1"
    assert all(code not in (0, "") for code in report["remounts"]), report["remounts"]
    assert report["nested"] != 0 and not nested_escape
    assert report["written"] == []
    assert set(report["writable mounts"]) <= WRITABLE, report["writable mounts"]
    assert report["host paths"] == []
    # Only the sandbox's own processes: bwrap (its pid 1) and the kernel; not the host with its keys.
    assert all(command.startswith("bwrap ") or "/kaggle/src/script.py" in command for command in report["commands"])
    assert not [command for command in report["commands"] if KEY in command]


UNPRIVILEGED_PROBE = """id -u; grep CapEff /proc/self/status; mount -o remount,rw,bind /usr || echo no-remount
unshare --user --map-root-user true || echo no-user-namespace; touch /usr/x /x /kaggle/input/x || echo read-only
echo out > /kaggle/working/out && echo writable"""


def test_a_host_not_run_as_root_gives_its_kernels_a_user_namespace(monkeypatch, sandbox):
    """The same sandbox as a host run by an ordinary user builds it (here: uid 65534 runs it, with the system's
    shell for the kernel, as this machine's Python need not be readable by that uid): inside a user namespace of
    its own, as 65534, with no capabilities, no further user namespace, and only its working folder writable."""
    import os
    import shutil
    import subprocess
    import tempfile

    from tasks.host import sandbox as sandbox_module

    folder = Path(tempfile.mkdtemp(prefix="headstart-test-"))  # where uid 65534 can reach (pytest's is 0700)
    try:
        for name in ("input", "working"):
            (folder / name).mkdir()
        (folder / "probe.sh").write_text(UNPRIVILEGED_PROBE)
        sandbox_module.prepare_run(folder / "input", folder / "working", folder / "probe.sh")
        folder.chmod(0o755)
        monkeypatch.setattr(sandbox_module, "python_roots", lambda: [])
        monkeypatch.setattr(os, "geteuid", lambda: 1000)  # the command as a host of an ordinary user builds it
        command = sandbox_module.bwrap_command(["/bin/sh", "/kaggle/src/probe.sh"], folder / "input",
                                               folder / "working", folder / "probe.sh", 2**20)
        monkeypatch.undo()
        if os.geteuid() == 0:
            command = [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/")
    finally:
        shutil.rmtree(folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["65534", "CapEff:", "0000000000000000", "no-remount", "no-user-namespace",
                                     "read-only", "writable"], result.stdout + result.stderr
    assert "--unshare-user" in command and "--disable-userns" in command


SEARCHING_KERNEL = '''import os
from pathlib import Path
secret, skipped = {secret!r}, {skipped!r}
found, seen = [], 0
here = Path.cwd().resolve()
for folder in [here, *here.parents, Path(os.environ["HEADSTART_KAGGLE_INPUT"]).resolve().parent]:
    found += [str(path) for path in folder.rglob("solution*.csv")]
for root, folders, files in os.walk("/"):
    if root in ("/proc", "/sys", "/dev", *skipped):
        folders[:] = []
        continue
    seen += len(files)
    found += [os.path.join(root, name) for name in files if name.startswith("solution") and name.endswith(".csv")]
try:
    found.append(open(secret).read()[:20])
except OSError as error:
    print("cannot open the solution:", type(error).__name__)
print("files seen:", seen, "found:", sorted(set(found)))
'''


def _search(hosted_factory, skipped: tuple[str, ...]) -> str:
    """Push the searching kernel (it skips `skipped` folders); its log."""
    hosted = hosted_factory(run_kernels=True)
    secret = hosted.backend.root / "solution.csv"
    assert secret.is_file()
    assert _push(hosted, "searching", SEARCHING_KERNEL.format(secret=str(secret), skipped=skipped))[0] == 200
    assert _finished(hosted, "searching")["status"] == "COMPLETE"
    log = _log(hosted, "searching")
    assert "found: []" in log and "cannot open the solution: FileNotFoundError" in log
    return log


def test_a_pushed_kernel_finds_no_hidden_solution(hosted_factory, sandbox):
    """It walks up its folders and the disk for solution*.csv, and opens the solution's real path. The system
    and Python folders (read-only, and checked by `exposed` not to hold the competition) are skipped here for
    time; the slow test below searches them too."""
    from tasks.host.sandbox import exposed, read_only_roots

    _search(hosted_factory, tuple(str(root) for root in read_only_roots()))
    assert exposed(Path("/usr/share/solution.csv")) == Path("/usr")


@pytest.mark.slow
def test_a_pushed_kernel_finds_no_hidden_solution_anywhere_on_disk(hosted_factory, sandbox):
    log = _search(hosted_factory, ())
    assert int(log.split("files seen: ")[1].split()[0]) > 1000  # it did search (the OS and Python are there)


def test_without_a_sandbox_kernels_run_only_when_the_host_says_unsafe(hosted_factory, monkeypatch):
    from tasks.host import sandbox

    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "bubblewrap (bwrap) is not installed")
    hosted = hosted_factory(run_kernels=True)
    status, answer = _push(hosted, "refused", "print('ran')")
    assert status == 403 and "bubblewrap (bwrap) is not installed" in answer["message"]
    assert "can read the hidden solution" in answer["message"] and "--unsafe-kernels" in answer["message"]
    assert not (hosted.host.store / "kernels").exists()
    assert _push(hosted, "saved-only", "print('ran')", kernelExecutionType="QUICK_SAVE")[0] == 200  # runs nothing
    unsafe = hosted_factory(run_kernels=True, unsafe_kernels=True)
    assert _push(unsafe, "allowed", "print('ran')")[0] == 200
    assert _finished(unsafe, "allowed")["status"] == "COMPLETE" and "ran" in _log(unsafe, "allowed")


def test_kernels_are_held_to_their_time_and_output_limits(hosted_factory):
    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True, kernel_timeout=3, kernel_output_bytes=1000)
    _push(hosted, "sleeper", "import time\ntime.sleep(60)")
    _push(hosted, "writer", "for name in 'abc':\n    open(name + '.bin', 'wb').write(b'x' * 600)")
    _push(hosted, "too-big", "with open('big.bin', 'wb') as stream:\n    stream.write(b'x' * 5000)")
    assert "time limit (3 s)" in _finished(hosted, "sleeper")["failureMessage"]
    assert "over the limit of 1000" in _finished(hosted, "writer")["failureMessage"]
    assert not list(hosted.host.kernels.output_dir(USER, "writer").iterdir())
    assert "File too large" in _finished(hosted, "too-big")["failureMessage"]  # stopped as it writes
    assert hosted.host.kernels.output_dir(USER, "too-big").joinpath("big.bin").stat().st_size <= 1000


# 3. Outputs are files, never links.
LINKING_KERNEL = r'''import os
os.chdir("/kaggle/working")
os.symlink("/proc/self/cmdline", "cmdline.csv")  # read outside, the host's own command line
os.symlink("/proc/self/environ", "environ.csv")
os.symlink(SOLUTION, "submission.csv")  # the hidden solution, where the host keeps it
os.mkdir("folder")
os.symlink("/", "folder/everything")
for name in (b"new\nline.csv", b"undecodable-\xff.csv", "fine.csv"):
    with open(name, "w") as stream:
        stream.write("ImageId,Label\n1,1\n")
'''


def test_outputs_are_files_never_links(real_host, sandbox):
    """A kernel's outputs linked to /proc/self/cmdline, /proc/self/environ and the solution: submitted with
    CreateCodeSubmission, the host read the link's target (its command line holds every user's key), and the
    scoring error showed it. A name with a newline or undecodable bytes broke `kaggle kernels output`."""
    solution = real_host.cwd / "data" / "local" / "digits" / "solution.csv"
    real_host.push(USER, real_host.cwd / "linking", "linking", LINKING_KERNEL.replace("SOLUTION", repr(str(solution))))
    assert real_host.wait(USER, "linking")["status"] == "COMPLETE"
    output = real_host.kaggle(USER, "kernels", "output", f"{USER}/linking", "-p", real_host.cwd / "linked")
    assert sorted(path.name for path in (real_host.cwd / "linked").rglob("*")) == ["fine.csv", "linking.log"]
    log = "".join(line["data"] for line in json.loads((real_host.cwd / "linked" / "linking.log").read_text()))
    for name in ("cmdline.csv", "environ.csv", "submission.csv", "folder/everything", "new\\nline.csv"):
        assert f"not kept: {name}" in log, name
    submitted = real_host.kaggle(USER, "competitions", "submit", "digits", "-k", f"{USER}/linking", "-v", "1",
                                 "-f", "cmdline.csv", "-m", "links", check=False)
    answers = [real_host.rpc(USER, COMPETITIONS + "CreateCodeSubmission", {
        "competitionName": "digits", "kernelOwner": USER, "kernelSlug": "linking", "kernelVersion": 1,
        "fileName": name}) for name in ("environ.csv", "submission.csv", "folder/everything")]
    assert [status for status, _ in answers] == [404, 404, 404] and submitted.returncode == 1
    listing = real_host.rpc(USER, COMPETITIONS + "ListSubmissions", {"competitionName": "digits"})[1]
    texts = [output.stdout, output.stderr, log, submitted.stdout, submitted.stderr, json.dumps(answers),
             json.dumps(listing)]
    assert not [text for text in texts if any(key in text for key in real_host.keys.values())]
    assert not [row for row in listing.get("submissions", []) if row.get("publicScore") == "1.0"]


# 4. Private means private.
LISTING_KERNEL = "import os\nfor root, _, files in os.walk('/kaggle/input'):\n    print('seen', root, sorted(files))\n"


def test_private_kernels_and_datasets_stay_private(real_host, sandbox):
    """bob read alice's private kernel (GetKernel, ListKernelSessionOutput, GetKernelSessionStatus, `kaggle kernels
    output`), GetDataset answered for her private dataset and his kernel mounted it; carol, who has not accepted
    the rules, had the competition mounted in hers. One rule now, for the API and the mounts: owner, or public."""
    work = real_host.cwd / "private"
    real_host.push(USER, work / "private", "alice-private", "print('alice private log')\n"
                   "open('/kaggle/working/secret.csv', 'w').write('alice only')\n")
    real_host.push(USER, work / "public", "alice-public", "print('for everyone')\n", is_private=False)
    (work / "dataset").mkdir()
    (work / "dataset" / "weights.txt").write_text("alice's weights")
    (work / "dataset" / "dataset-metadata.json").write_text(json.dumps({
        "id": f"{USER}/alice-weights", "title": "alice weights", "licenses": [{"name": "CC0-1.0"}]}))
    real_host.kaggle(USER, "datasets", "create", "-p", work / "dataset")
    assert real_host.wait(USER, "alice-private")["status"] == real_host.wait(USER, "alice-public")["status"] \
        == "COMPLETE"
    private, public = ({"userName": USER, "kernelSlug": slug} for slug in ("alice-private", "alice-public"))
    for rpc in ("GetKernel", "ListKernelSessionOutput", "GetKernelSessionStatus"):
        status, answer = real_host.rpc("bob", KERNELS + rpc, private)
        assert status == 403 and "alice private log" not in json.dumps(answer), (rpc, answer)
        assert real_host.rpc("bob", KERNELS + rpc, public)[0] == real_host.rpc(USER, KERNELS + rpc, private)[0] == 200
    stolen = real_host.kaggle("bob", "kernels", "output", f"{USER}/alice-private", "-p", work / "stolen", check=False)
    assert stolen.returncode != 0 and not (work / "stolen" / "secret.csv").exists()
    dataset = {"ownerSlug": USER, "datasetSlug": "alice-weights"}
    assert [real_host.rpc("bob", DATASETS + rpc, dataset)[0] for rpc in ("GetDataset", "GetDatasetStatus")] \
        == [403, 403]
    assert real_host.rpc(USER, DATASETS + "GetDataset", dataset)[0] == 200
    # The calls issue 23 added keep the same rule: bob can neither read alice's private dataset and kernel through
    # them, nor change or delete what is hers, public or not; her lists are his only where public.
    for rpc, body in (("ListDatasetFiles", dataset), ("DownloadDataset", dataset), ("GetDatasetMetadata", dataset),
                      ("UpdateDatasetMetadata", {**dataset, "settings": {"title": "bob was here"}}),
                      ("DeleteDataset", dataset)):
        status, answer = real_host.rpc("bob", DATASETS + rpc, body)
        assert status == 403 and "weights" not in json.dumps(answer).replace("alice-weights", ""), (rpc, answer)
    for rpc, body in (("ListKernelFiles", private), ("DeleteKernel", private), ("DeleteKernel", public)):
        status, answer = real_host.rpc("bob", KERNELS + rpc, body)
        assert status == 403 and "secret.csv" not in json.dumps(answer), (rpc, answer)
    assert real_host.rpc(USER, DATASETS + "GetDatasetMetadata", dataset)[1]["info"]["title"] == "alice weights"
    assert [real_host.rpc(USER, KERNELS + "GetKernel", kernel)[0] for kernel in (private, public)] == [200, 200]
    listed = json.dumps(real_host.rpc("bob", KERNELS + "ListKernels", {})[1])
    assert "alice-public" in listed and "alice-private" not in listed
    assert "alice-weights" not in json.dumps(real_host.rpc("bob", DATASETS + "ListDatasets", {})[1])
    borrowed = real_host.push("bob", work / "borrows", "bob-borrows", LISTING_KERNEL,
                              dataset_sources=[f"{USER}/alice-weights"], competition_sources=["digits"])
    peeked = real_host.push(CAROL[0], work / "peeks", "carol-peeks", LISTING_KERNEL, competition_sources=["digits"])
    assert "not valid dataset sources and could not be added to the kernel: ['alice/alice-weights']" in borrowed
    assert "not valid competition sources and could not be added to the kernel: ['digits']" in peeked
    for user, slug in (("bob", "bob-borrows"), (CAROL[0], "carol-peeks")):
        assert real_host.wait(user, slug)["status"] == "COMPLETE"
        log = real_host.rpc(user, KERNELS + "ListKernelSessionOutput", {"userName": user, "kernelSlug": slug})[1]
        assert "seen /kaggle/input" in log["log"] and "weights.txt" not in log["log"]
        assert ("train.csv" in log["log"]) == (user == "bob")  # bob accepted the rules; carol did not


# 5. Limits that hold by default.
LIMITS_KERNEL = r'''import json, threading, time
report = {}
for folder in ("/tmp", "/dev/shm"):
    written = 0
    try:
        with open(folder + "/fill", "wb") as stream:
            while written < 64 * 2**20:
                stream.write(b"x" * 2**20)
                stream.flush()
                written += 2**20
    except OSError:
        pass
    report[folder] = written // 2**20
threads = []
try:
    while len(threads) < 500:
        thread = threading.Thread(target=time.sleep, args=(5,), daemon=True)
        thread.start()
        threads.append(thread)
except RuntimeError:
    pass
report["threads"] = len(threads)
try:
    memory = bytearray(5 * 2**30)
    report["memory"] = "allocated"
except MemoryError:
    report["memory"] = "MemoryError"
print("REPORT " + json.dumps(report))
'''


def test_kernels_are_held_to_the_limits_the_command_line_sets(tmp_path, digits_store, sandbox):
    """None of these was settable from the CLI, and a kernel had no process limit, a 32 GiB address space and a
    /tmp in memory limited only per file. `headstart host --kernel-tmp-mb 8 --kernel-processes 64
    --kernel-memory-mb 4096`: a kernel that fills /tmp and /dev/shm, starts threads and allocates 5 GiB is
    held to each."""
    host = start_real_host(tmp_path, digits_store, {USER: KEY}, "--kernel-tmp-mb", "8", "--kernel-processes", "64",
                           "--kernel-memory-mb", "4096", "--kernel-timeout", "120", "--kernels-at-once", "1")
    try:
        host.push(USER, tmp_path / "greedy", "greedy-kernel", LIMITS_KERNEL)
        assert host.wait(USER, "greedy-kernel")["status"] == "COMPLETE"
        log = host.rpc(USER, KERNELS + "ListKernelSessionOutput", {"userName": USER, "kernelSlug": "greedy-kernel"})
    finally:
        host.stop()
    report = _report("".join(line["data"] for line in json.loads(log[1]["log"])))
    assert report["/tmp"] <= 8 and report["/dev/shm"] <= 8, report
    assert 50 <= report["threads"] < 64 and report["memory"] == "MemoryError", report


def test_kernels_wait_their_turn(hosted_factory, sandbox):
    """Kernels at once were unlimited; with kernels_at_once=1 the second waits, QUEUED, for the first."""
    hosted = hosted_factory(run_kernels=True, kernels_at_once=1)
    source = "import time\nstart = time.time()\ntime.sleep(1.5)\nprint('RAN', start, time.time())\n"
    assert _push(hosted, "first-kernel", source)[0] == _push(hosted, "second-kernel", source)[0] == 200
    deadline = time.monotonic() + 60
    while hosted.host.kernels.record(USER, "first-kernel")["status"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert hosted.host.kernels.record(USER, "second-kernel")["status"] == "QUEUED"
    runs = []
    for slug in ("first-kernel", "second-kernel"):
        assert _finished(hosted, slug)["status"] == "COMPLETE"
        runs.append([float(value) for value in _log(hosted, slug).split("RAN ")[1].split()[:2]])
    assert runs[1][0] >= runs[0][1], runs


def test_the_total_limit_holds_under_a_race(hosted_factory, tmp_path):
    """20 parallel submits were accepted 5 times against --total-limit 2: the total was checked outside the lock."""
    import concurrent.futures

    hosted = hosted_factory(run_kernels=False, total_limit=2)
    hosted.set_daily_limit(100)
    tokens = []
    for number in range(20):
        status, upload = post(hosted, COMPETITIONS + "StartSubmissionUpload",
                              {"competitionName": "digits", "fileName": f"s{number}.csv"})
        assert status == 200 and _put(upload["createUrl"], perfect_submission(hosted, tmp_path / "p.csv")
                                      .read_bytes()) == 200
        tokens.append(upload["token"])

    def submit(token: str) -> int:
        return post(hosted, COMPETITIONS + "CreateSubmission", {"competitionName": "digits", "blobFileTokens": token,
                                                                "submissionDescription": token})[0]

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(submit, tokens))
    assert sorted(statuses) == [200, 200] + [400] * 18, statuses.count(200)
    assert len(hosted.backend.submissions(USER)) == 2


def test_introspect_token_answers_only_its_owner(hosted_factory):
    """IntrospectToken answered anyone, without credentials: an oracle that says whose a key is."""
    hosted = hosted_factory(run_kernels=False, users=(ALICE, BOB))
    introspect = hosted.server.url + "/api/v1/security.OAuthService/IntrospectToken"
    status, answer = call(introspect, {"token": KEY}, key=None)
    assert status == 401 and USER not in json.dumps(answer)
    assert call(introspect, {"token": KEY}, *BOB)[1].get("active", False) is False  # bob asks about alice's key
    assert call(introspect, {"token": KEY})[1] == {"active": True, "username": USER}


# 6. No 500s and no stuck kernels.
def test_malformed_requests_get_kaggles_4xx_not_a_500(hosted_factory):
    """Each of these answered 500: a version that does not exist, "²" (it passes isdigit(), then int() fails) as
    a version or a page token, an enum given as a number; a string where a list belongs was read as a list of
    its characters."""
    hosted = hosted_factory(run_kernels=False)
    assert _push(hosted, "a-kernel", "print(1)")[0] == 200
    kernel = {"userName": USER, "kernelSlug": "a-kernel"}
    push = {"slug": f"{USER}/typed-kernel", "text": "print(1)", "language": "python", "kernelType": "script"}
    cases = [(KERNELS + "GetKernelSessionStatus", {**kernel, "versionLabel": "999"}, 404),
             (KERNELS + "ListKernelSessionOutput", {**kernel, "versionLabel": "v999"}, 404),
             (KERNELS + "GetKernelSessionStatus", {**kernel, "versionLabel": "\u00b2"}, 400),
             (COMPETITIONS + "ListSubmissions", {"competitionName": "digits", "pageToken": "\u00b2"}, 400),
             (COMPETITIONS + "GetLeaderboard", {"competitionName": "digits", "pageToken": "\u00b2"}, 400),
             (KERNELS + "SaveKernel", {**push, "kernelExecutionType": 3}, 400),
             (KERNELS + "SaveKernel", {**push, "competitionDataSources": "digits"}, 400),
             (KERNELS + "SaveKernel", {**push, "datasetDataSources": {"alice": "weights"}}, 400),
             (DATASETS + "CreateDatasetVersion", {"ownerSlug": USER, "datasetSlug": "some-data", "body": "x"}, 400)]
    answers = [post(hosted, rpc, payload) for rpc, payload, _ in cases]
    assert [status for status, _ in answers] == [expected for *_, expected in cases], answers
    assert all(answer["code"] == status and answer["message"] for status, answer in answers)
    assert [path.name for path in (hosted.host.store / "kernels" / USER).iterdir()] == ["a-kernel"]


BROKEN_NOTEBOOKS = ['{"cells": [{"cell_type": "code", "source": 5}]}', '{"cells": {"cell_type": "code"}}',
                    '{"cells": [1]}', "[1, 2]", "not JSON at all"]


def test_a_broken_notebook_is_an_error_not_a_kernel_running_forever(hosted_factory):
    """A notebook whose JSON had the wrong shape killed the kernel's thread: it stayed RUNNING forever."""
    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True)
    for number, text in enumerate(BROKEN_NOTEBOOKS):
        assert _push(hosted, f"notebook-{number}", text, kernelType="notebook")[0] == 200
    for number, text in enumerate(BROKEN_NOTEBOOKS):
        record = _finished(hosted, f"notebook-{number}", seconds=30)
        assert record["status"] == "ERROR" and "notebook" in record["failureMessage"], (text, record)
    # A host stopped while a kernel ran: started again, it records that kernel as an ERROR, not RUNNING forever.
    from tasks.host.state import CompetitionHost

    hosted.host.kernels._update(hosted.host.kernels.directory(USER, "notebook-0"), status="RUNNING")
    CompetitionHost(hosted.backend, hosted.host.settings)
    assert hosted.host.kernels.record(USER, "notebook-0")["failureMessage"] == \
        "the host stopped before this kernel ended"


def test_a_failed_create_dataset_leaves_nothing_behind(hosted_factory, tmp_path):
    """CreateDataset with a token that has no upload left an empty dataset, and its slug stayed taken."""
    hosted = hosted_factory(run_kernels=False)
    create = {"ownerSlug": USER, "slug": "my-weights", "title": "my weights", "isPrivate": True}
    status, answer = post(hosted, DATASETS + "CreateDataset", {**create, "files": [{"token": "0" * 32}]})
    assert status == 400 and "has no completed upload" in answer["message"]
    assert post(hosted, DATASETS + "GetDatasetStatus", {"ownerSlug": USER, "datasetSlug": "my-weights"})[0] == 404
    assert not (hosted.host.store / "datasets" / USER / "my-weights").exists()
    _, upload = post(hosted, BLOBS + "StartBlobUpload", {"type": "DATASET", "name": "weights.txt"})
    assert _put(upload["createUrl"], b"weights") == 200
    status, answer = post(hosted, DATASETS + "CreateDataset", {**create, "files": [{"token": upload["token"]}]})
    assert status == 200 and answer["status"] == "ok"
    assert (hosted.host.datasets.files_dir(USER, "my-weights") / "weights.txt").read_bytes() == b"weights"


# 7. The sandbox works as README sets it up.
def test_kernels_run_on_a_host_started_as_readme_shows(real_host, sandbox):
    """`headstart host digits --data-dir data` (a relative folder): every push failed with `bwrap: Can't find
    source path data/local/digits/host/kernels/...`, as bwrap ran in another working directory."""
    pushed = real_host.push(USER, real_host.cwd / "readme-kernel", "readme-kernel",
                            "import os\nprint(sorted(os.listdir('/kaggle/input/competitions/digits')))\n"
                            "open('/kaggle/working/out.txt', 'w').write('made')\n",
                            competition_sources=["digits"])
    assert "Kernel version 1 successfully pushed" in pushed
    assert real_host.wait(USER, "readme-kernel")["status"] == "COMPLETE"
    real_host.kaggle(USER, "kernels", "output", f"{USER}/readme-kernel", "-p", real_host.cwd / "readme-output")
    assert (real_host.cwd / "readme-output" / "out.txt").read_text() == "made"
    log = (real_host.cwd / "readme-output" / "readme-kernel.log").read_text()
    assert "sample_submission.csv" in log and "test.csv" in log


# 8. None of these may skip in CI.
def test_ci_fails_a_sandbox_test_rather_than_skip_it(monkeypatch):
    """.ci/run sets HEADSTART_REQUIRE_SANDBOX=1 and installs bubblewrap where it is missing."""
    from tests.hosting import require_sandbox

    monkeypatch.setenv("HEADSTART_REQUIRE_SANDBOX", "1")
    with pytest.raises(pytest.fail.Exception, match="HEADSTART_REQUIRE_SANDBOX=1, but .*bwrap is missing"):
        require_sandbox("bwrap is missing")
    monkeypatch.delenv("HEADSTART_REQUIRE_SANDBOX")
    with pytest.raises(pytest.skip.Exception, match="no kernel sandbox here: bwrap is missing"):
        require_sandbox("bwrap is missing")
    require_sandbox(None)
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "export HEADSTART_REQUIRE_SANDBOX=1" in ci and "apt-get install -y bubblewrap" in ci
