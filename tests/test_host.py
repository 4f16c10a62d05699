"""`headstart host` through the unmodified kaggle CLI (a subprocess), and the host's own HTTP behaviour."""

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile

import pandas as pd
import pytest

from tasks.backends.local import score_submission
from tasks.submission import read_submission
from tests.factories import wait_until
from tests.hosting import (
    KEY,
    USER,
    assert_no_secret,
    call,
    client_environment,
    labelled_submission,
    perfect_submission,
    push_script,
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
    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True)
    folder = tmp_path / "kernel"
    folder.mkdir()
    (folder / "tiny.py").write_text(TINY_KERNEL)
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{USER}/tiny-kernel", "title": "tiny kernel", "code_file": "tiny.py", "language": "python",
        "kernel_type": "script", "enable_internet": False, "competition_sources": ["digits"]}))
    pushed = hosted.kaggle("kernels", "push", "-p", folder).stdout
    assert "successfully pushed" in pushed.lower() and "Kernel version 1" in pushed
    status = _kernel_status_once_ended(hosted, f"{USER}/tiny-kernel")
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
    signed = hosted.host.file_url(USER, "files/digits/digits.zip")
    whole = urllib.request.urlopen(signed).read()
    ranged = urllib.request.Request(signed, headers={"Range": "bytes=100-"})
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


# The host answers as Kaggle does where the kit must cope (issue 8).
LAYOUT_KERNEL = '''import os
from pathlib import Path
inputs = Path(os.environ["HEADSTART_KAGGLE_INPUT"])
for path in sorted(inputs.rglob("*")):
    if path.is_file():
        print("file:", path.relative_to(inputs).as_posix(), path.read_text()[:20] if path.suffix == ".txt" else "")
'''


def _dataset(hosted, folder, text: str, first: bool) -> None:
    """alice/kit-data: one zip (a folder on Kaggle's side) holding note.txt, plus a loose weights.txt."""
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(folder / "bundle.zip", "w") as zipped:
        zipped.writestr("pkg/note.txt", text)
    (folder / "weights.txt").write_text(text)
    (folder / "dataset-metadata.json").write_text(json.dumps({
        "id": f"{USER}/kit-data", "title": "kit data", "licenses": [{"name": "CC0-1.0"}]}))
    if first:
        hosted.kaggle("datasets", "create", "-p", folder)
    else:
        hosted.kaggle("datasets", "version", "-p", folder, "-m", text)


def _kernel_status_once_ended(hosted, kernel: str) -> str:
    """`kaggle kernels status` once it says COMPLETE or ERROR."""
    def ended() -> str | None:
        status = hosted.kaggle("kernels", "status", kernel).stdout
        return status if "COMPLETE" in status or "ERROR" in status else None

    return wait_until(ended, 120, f"kernel {kernel} to end")


def _push_and_wait(hosted, folder, metadata: dict) -> str:
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "title": "layout kernel", "code_file": "layout.py", "language": "python", "kernel_type": "script",
        "enable_internet": False, **metadata}))
    hosted.kaggle("kernels", "push", "-p", folder)
    status = _kernel_status_once_ended(hosted, metadata["id"])
    assert "COMPLETE" in status, status
    hosted.kaggle("kernels", "output", metadata["id"], "-p", folder / "output")
    return (folder / "output" / f"{metadata['id'].split('/')[1]}.log").read_text()


def test_kernels_see_the_2026_layout_a_pinned_version_and_unpacked_zips(hosted_factory, tmp_path):
    """/kaggle/input/competitions/<slug>/ and /kaggle/input/datasets/<owner>/<slug>/, an uploaded zip as a
    folder of its name, and `owner/slug/N` mounting version N even when a newer one exists."""
    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True)
    _dataset(hosted, tmp_path / "data-v1", "version one", first=True)
    _dataset(hosted, tmp_path / "data-v2", "version two", first=False)
    assert json.loads(hosted.kaggle("datasets", "status", f"{USER}/kit-data", "--format", "json").stdout) \
        == {"status": "ready", "current_version_number": 2}
    folder = tmp_path / "kernel"
    folder.mkdir()
    (folder / "layout.py").write_text(LAYOUT_KERNEL)
    log = _push_and_wait(hosted, folder, {"id": f"{USER}/layout-kernel", "competition_sources": ["digits"],
                                          "dataset_sources": [f"{USER}/kit-data/1"]})
    assert "file: competitions/digits/train.csv" in log
    assert "file: datasets/alice/kit-data/bundle/pkg/note.txt version one" in log
    assert "file: datasets/alice/kit-data/weights.txt version one" in log
    assert "version two" not in log and "bundle.zip" not in log


def test_titles_over_50_characters_get_kaggles_unhelpful_500(hosted, tmp_path):
    folder = tmp_path / "kernel"
    folder.mkdir()
    (folder / "layout.py").write_text(LAYOUT_KERNEL)
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": f"{USER}/{'x' * 51}", "title": "x" * 51, "code_file": "layout.py", "language": "python",
        "kernel_type": "script"}))
    result = hosted.kaggle("kernels", "push", "-p", folder, check=False)
    assert result.returncode == 1 and "a problem on Kaggle's side" in result.stdout + result.stderr  # it is not
    assert hosted.host.requests[-1]["status"] == 500


def test_limits_of_a_user_not_on_a_team_are_all_zero(hosted_factory):
    """What Kaggle answers before the user has joined: the kit reads it as unknown, not as a used quota."""
    from tasks.backends.kaggle import KaggleBackend, kaggle_spec

    hosted = hosted_factory(run_kernels=False, teamless=(USER,))
    assert "Remaining today: 0" in hosted.kaggle("competitions", "submission-limits", "digits").stdout
    assert KaggleBackend(kaggle_spec("digits", hosted.spec_file)).limits() is None


def test_a_lifetime_cap_is_reported_and_enforced(hosted_factory, tmp_path):
    from tasks.backends.guard import guarded_submit
    from tasks.backends.kaggle import KaggleBackend, kaggle_spec
    from tasks.errors import QuotaError

    hosted = hosted_factory(run_kernels=False, total_limit=1)
    backend = KaggleBackend(kaggle_spec("digits", hosted.spec_file), poll_interval=0.05)
    sample = hosted.backend.root / "sample_submission.csv"
    hosted.backend.sample_submission().to_csv(sample, index=False)
    guarded_submit(backend, labelled_submission(hosted, tmp_path / "a.csv", "1"), sample, tmp_path / "log.jsonl")
    assert backend.limits()["limited_by_total"] is True
    with pytest.raises(QuotaError, match="lifetime submission cap is reached") as error:
        guarded_submit(backend, labelled_submission(hosted, tmp_path / "b.csv", "2"), sample, tmp_path / "log.jsonl")
    assert "midnight" not in str(error.value)
    result = hosted.kaggle("competitions", "submit", "digits", "-f", tmp_path / "b.csv", "-m", "over", check=False)
    assert result.returncode == 1 and "limit of 1 submissions in all" in result.stdout + result.stderr


RERUN_KERNEL = '''import os, shutil, time
from pathlib import Path
inputs = Path(os.environ["HEADSTART_KAGGLE_INPUT"])
working = Path(os.environ["HEADSTART_KAGGLE_WORKING"])
import pandas as pd
sample = pd.read_csv(inputs / "competitions" / "digits" / "sample_submission.csv")
rerun = bool(os.environ.get("KAGGLE_IS_COMPETITION_RERUN"))
if rerun:
    time.sleep(2)  # long enough to be seen PENDING
sample["Label"] = 7 if rerun else 1  # what Kaggle scores, and what the notebook left to see
sample.to_csv(working / "submission.csv", index=False)
'''


def _kernel_run_ended(hosted, slug: str) -> dict:
    """The host's record of the user's kernel once its run is COMPLETE or ERROR."""
    return wait_until(lambda: (record := hosted.host.kernels.record(USER, slug))["status"] in ("COMPLETE", "ERROR")
                      and record, 60, f"kernel {slug} to end")


def test_code_submissions_are_scored_from_the_kernels_second_run(hosted_factory, tmp_path):
    """Kaggle scores a code submission from the notebook run again on the hidden test set, not from the file its
    first run left: here that run (KAGGLE_IS_COMPETITION_RERUN set) answers 7 everywhere where the visible file
    says 1, and the score is the 7s'. PENDING, off the leaderboard, until that run is scored."""
    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True, code_competition=True)
    push_script(hosted, tmp_path / "coded", RERUN_KERNEL, competition_sources=["digits"], enable_internet=False)
    _kernel_run_ended(hosted, "coded")
    visible = pd.read_csv(hosted.host.kernels.output_file(USER, "coded", 1, "submission.csv"))
    assert set(visible["Label"]) == {1}
    hosted.kaggle("competitions", "submit", "digits", "-k", f"{USER}/coded", "-v", "1", "-f", "submission.csv",
                  "-m", "code")
    assert "PENDING" in hosted.kaggle("competitions", "submissions", "digits").stdout
    assert hosted.backend.leaderboard() == []
    scored = wait_until(lambda: next((record for record in hosted.backend.submissions()
                                      if record["status"] != "pending"), None), 60, "the code submission's score")
    sevens = labelled_submission(hosted, tmp_path / "sevens.csv", "7")
    expected = score_submission(read_submission(sevens), hosted.backend.solution(), hosted.backend.spec)
    assert scored["status"] == "complete" and scored["public_score"] == expected["public"]
    hosted.kaggle("competitions", "submission-download", str(scored["ref"]), "-p", tmp_path / "scored")
    assert set(pd.read_csv(next((tmp_path / "scored").iterdir()))["Label"]) == {7}


def test_a_failed_scoring_run_is_an_error_without_a_description(hosted_factory, tmp_path):
    """As Kaggle's often is (the reason shows on its page, not in errorDescription)."""
    hosted = hosted_factory(run_kernels=True, unsafe_kernels=True, code_competition=True)
    push_script(hosted, tmp_path / "failing", RERUN_KERNEL.replace("if rerun:", "if rerun:\n    raise SystemExit('no')"),
                competition_sources=["digits"])
    from tasks.backends.kaggle import KaggleBackend, kaggle_spec

    backend = KaggleBackend(kaggle_spec("digits", hosted.spec_file), poll_interval=0.1, poll_timeout=120)
    _kernel_run_ended(hosted, "failing")
    record = backend.wait(backend.send_code(f"{USER}/failing", 1, "submission.csv")["ref"])
    assert record["status"] == "error" and record["error"] is None
    listing = call(hosted.server.url + "/api/v1/competitions.CompetitionApiService/ListSubmissions",
                   {"competitionName": "digits"})[1]
    assert listing["submissions"][0]["status"] == "ERROR" and not listing["submissions"][0].get("errorDescription")


def _post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": "Basic " + __import__("base64").b64encode(f"{USER}:{KEY}".encode()).decode(),
        "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_bodies_are_typed_and_capped(hosted_factory):
    """Bodies are read into kagglesdk's request types: a field of the wrong type is a 400 with Kaggle's error
    body; an oversized body or upload is a 413; an unknown RPC a 404."""
    hosted = hosted_factory(run_kernels=False, max_request_bytes=4096, max_upload_bytes=1000)
    rpc = f"{hosted.server.url}/api/v1/competitions.CompetitionApiService/"
    status, body = _post(rpc + "ListSubmissions", json.dumps({"competitionName": "digits", "pageSize": "x"}).encode())
    assert status == 400 and body["code"] == 400 and "page_size must be of type int" in body["message"]
    assert _post(rpc + "ListSubmissions", b"[1, 2]")[0] == 400
    assert _post(rpc + "ListSubmissions", b"{" + b" " * 5000 + b"}")[0] == 413
    assert _post(rpc + "NoSuchCall", b"{}")[0] == 404
    status, answer = _post(rpc + "StartSubmissionUpload", json.dumps({"competitionName": "digits",
                                                                      "fileName": "s.csv"}).encode())
    assert status == 200 and set(answer) == {"token", "createUrl"}
    too_big = urllib.request.Request(answer["createUrl"], data=b"x" * 2000, method="PUT")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(too_big)
    assert error.value.code == 413 and not list(hosted.host.upload_target(answer["token"], USER).parent.glob("s.csv*"))


def test_every_served_rpc_is_one_of_the_clients(hosted):
    """The routes are checked against kagglesdk's own service definitions: a renamed RPC fails here."""
    from tasks.host.routes import ROUTES
    from tasks.host.rpc import rpc_types

    assert set(ROUTES) <= set(rpc_types())
    status, competition = _post(f"{hosted.server.url}/v1/competitions.CompetitionApiService/GetCompetition",
                                json.dumps({"competitionName": "digits"}).encode())
    from kagglesdk.competitions.types.competition_api_service import ApiCompetition

    parsed = ApiCompetition.from_dict(competition)
    assert status == 200 and parsed.title == "digits" and parsed.deadline.year == 2099
    assert competition["deadline"].endswith("Z")  # kagglesdk's own date format


def test_file_urls_answer_head_and_if_range(hosted):
    url = hosted.host.file_url(USER, "files/digits/digits.zip")
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as response:
        etag, size = response.headers["ETag"], int(response.headers["Content-Length"])
        assert response.read() == b"" and response.headers["Accept-Ranges"] == "bytes"
    stale = urllib.request.Request(url, headers={"Range": "bytes=10-", "If-Range": '"stale"'})
    with urllib.request.urlopen(stale) as response:  # the file changed since: the whole of it again
        assert response.status == 200 and len(response.read()) == size
    fresh = urllib.request.Request(url, headers={"Range": "bytes=10-", "If-Range": etag})
    with urllib.request.urlopen(fresh) as response:
        assert response.status == 206 and len(response.read()) == size - 10
