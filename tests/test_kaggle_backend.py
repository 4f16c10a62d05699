"""KaggleBackend through the real kaggle client, against `headstart host` on 127.0.0.1."""

import json
import logging
import os
from pathlib import Path

import pytest

from tasks.backends.kaggle import KaggleBackend, kaggle_spec
from tasks.errors import AccessDeniedError, AuthenticationError, BackendError, SpecError, UploadError
from tests.hosting import KEY, USER, assert_no_secret, perfect_submission

SUBMISSION_RPCS = ("StartSubmissionUpload", "CreateSubmission")


def open_backend(hosted, **options) -> KaggleBackend:
    return KaggleBackend(kaggle_spec("digits", hosted.spec_file), poll_interval=0.05, **options)


def sent(hosted, *names) -> list[str]:
    return [rpc.split("/")[-1] for rpc in hosted.host.rpcs() if rpc.split("/")[-1] in names]


def test_download_unpacks_and_skips_when_unchanged(hosted, tmp_path):
    backend, raw = open_backend(hosted), tmp_path / "raw" / "digits"
    assert backend.download(raw) == backend.spec  # the spec in use comes back, as a value
    assert {path.name for path in raw.iterdir()} >= {"train.csv", "test.csv", "sample_submission.csv"}
    first = (raw / "train.csv").stat().st_mtime_ns
    assert backend.download(raw) == backend.spec
    assert (raw / "train.csv").stat().st_mtime_ns == first  # not unpacked again
    # Nor downloaded again: Kaggle rate-limits DownloadDataFiles for 30 minutes and more (kaggle-cli issue 931); the
    # file listing (names, sizes, dates) said nothing changed.
    assert sent(hosted, "DownloadDataFiles", "ListDataFiles") == ["ListDataFiles", "DownloadDataFiles", "ListDataFiles"]
    (raw / "train.csv").unlink()  # a file gone from here: downloaded again
    backend.download(raw)
    assert (raw / "train.csv").is_file() and len(sent(hosted, "DownloadDataFiles")) == 2


def test_submit_polls_until_scored_then_lists(hosted, tmp_path):
    backend = open_backend(hosted)
    record = backend.submit(perfect_submission(hosted, tmp_path / "perfect.csv"), "all right")
    assert record["status"] == "complete" and record["public_score"] == 1.0 and record["ref"] == 1
    assert backend.submissions()[0]["ref"] == 1 and backend.submissions()[0]["description"] == "all right"
    assert backend.leaderboard()[0]["team"] == USER and backend.leaderboard()[0]["score"] == 1.0
    assert backend.limits() == {"daily_limit": 5, "used": 1, "remaining": 4, "limited_by_total": False}
    assert hosted.backend.submissions(USER)[0]["sha256"]  # the host scored it with the LocalBackend


def test_failed_upload_is_a_clear_error_and_nothing_is_created(hosted, tmp_path):
    hosted.host.fail_next(403, path_contains="/upload/")
    with pytest.raises(UploadError, match="uploading perfect.csv failed.*nothing was submitted"):
        open_backend(hosted).send(perfect_submission(hosted, tmp_path / "perfect.csv"))
    assert sent(hosted, *SUBMISSION_RPCS) == [SUBMISSION_RPCS[0]]  # the upload was started, never created
    assert hosted.backend.submissions() == []


def test_wrong_key_says_how_to_set_credentials(hosted, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "not-" + KEY[4:])
    with pytest.raises(AuthenticationError) as error:
        open_backend(hosted).submissions()
    message = str(error.value)
    assert "401" in message and KEY[4:] not in message
    # Today's ways first (access tokens), then the legacy key in kaggle.json or the environment.
    ways = ["KAGGLE_API_TOKEN", "~/.kaggle/access_token", "kaggle auth login", "kaggle.json", "KAGGLE_USERNAME"]
    assert [message.index(way) for way in ways] == sorted(message.index(way) for way in ways)


def test_no_credentials_at_all(hosted, monkeypatch):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name)
    with pytest.raises(AuthenticationError, match="no Kaggle credentials found.*KAGGLE_API_TOKEN"):
        open_backend(hosted)


@pytest.fixture
def kaggle_json():
    """kaggle.json where the client looks (its config dir is fixed when kaggle is first imported)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

    path = Path(KaggleApi.config_dir) / "kaggle.json"
    yield path
    path.unlink(missing_ok=True)


def test_kaggle_json_with_mode_0600_is_found(hosted, monkeypatch, kaggle_json, recwarn):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name)
    kaggle_json.write_text(json.dumps({"username": USER, "key": KEY}))
    kaggle_json.chmod(0o600)
    assert open_backend(hosted).limits()["used"] == 0
    assert not [warning for warning in recwarn if "readable" in str(warning.message)]
    kaggle_json.chmod(0o644)
    with pytest.warns(UserWarning, match="readable by other users.*chmod 600"):
        open_backend(hosted)


def test_an_api_token_is_found(hosted, monkeypatch):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("KAGGLE_API_TOKEN", KEY)  # the host takes a user's key as their bearer token
    assert open_backend(hosted).limits()["remaining"] == 5
    assert "security.OAuthService/IntrospectToken" in hosted.host.rpcs()


def test_rules_not_accepted_points_at_the_rules_page(hosted_factory, tmp_path):
    hosted = hosted_factory(rules_accepted_by=("bob",), run_kernels=False)
    backend = open_backend(hosted)
    with pytest.raises(AccessDeniedError, match=r"403.*https://www.kaggle.com/competitions/digits/rules"):
        backend.download(tmp_path / "raw" / "digits")
    with pytest.raises(AccessDeniedError, match="accept the competition's rules"):
        backend.send(perfect_submission(hosted, tmp_path / "perfect.csv"))
    assert sent(hosted, "CreateSubmission") == [] and hosted.backend.submissions() == []


def test_unknown_competition_and_missing_spec(hosted):
    with pytest.raises(BackendError, match="404"):
        KaggleBackend(kaggle_spec("digits", hosted.spec_file).with_slug("nope")).limits()
    with pytest.raises(SpecError, match="--spec"):
        kaggle_spec("my-own-competition")


def test_transient_failures_are_retried_by_the_call_then_by_the_task(prefect_server, hosted, caplog):
    """A 503 and a 429 are tried again by the call itself; past its 5 tries, Prefect runs the step again (its retry
    condition lets only 429/5xx through); a 403 is tried once. Every wait says what it waits for."""
    from flows.compete import STAGES
    from tasks.config import Config

    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file)
    fetch = STAGES.fetch.with_options(retry_delay_seconds=0, retry_jitter_factor=None)
    backend = open_backend(hosted)
    hosted.host.fail_next(503, count=1, path_contains="DownloadDataFiles")
    hosted.host.fail_next(429, count=1, path_contains="DownloadDataFiles")
    spec, raw = fetch(config, backend)
    assert (Path(raw) / "train.csv").is_file() and len(sent(hosted, "DownloadDataFiles")) == 3
    assert "Kaggle could not download the competition files for 'digits' (503): waiting" in caplog.text
    hosted.host.fail_next(503, count=6, path_contains="ListDataFiles")  # the call's 5 tries, then the task's second
    fetch(config, backend)
    assert len(sent(hosted, "ListDataFiles")) == 1 + 7 and len(sent(hosted, "DownloadDataFiles")) == 3
    hosted.host.fail_next(403, count=5, path_contains="ListDataFiles")
    with pytest.raises(AccessDeniedError):
        fetch(config, backend)
    assert len(sent(hosted, "ListDataFiles")) == 9  # a 403 is not retried


def test_compete_flow_with_the_kaggle_backend(prefect_server, hosted, caplog, capfd, monkeypatch):
    """`headstart run digits --backend kaggle`: download, train, submit through the guard, scored; the backend
    opened once, so the client authenticates once for the whole run."""
    import dataclasses

    from flows.compete import compete
    from tasks.backends import kaggle
    from tasks.config import Config

    authenticated, real = [], kaggle.authenticated_api
    monkeypatch.setattr(kaggle, "authenticated_api", lambda: authenticated.append(1) or real())
    caplog.set_level(logging.INFO, logger="prefect")
    config = Config(competition="digits", data_dir=str(hosted.data_dir), backend="kaggle", spec=hosted.spec_file,
                    members=("softmax",), folds=2)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=2))
    record = json.loads(Path(compete(config)).read_text())
    result = record["backend_result"]
    assert result["status"] == "complete" and result["public_score"] > 0.5 and result["ref"] == 1
    log = [json.loads(line) for line in (hosted.data_dir / "06_submissions" / "kaggle" / "digits" / "log.jsonl").open()]
    assert [entry["status"] for entry in log] == ["sending", "pending", "complete"] and log[-1]["sha256"]
    assert hosted.backend.leaderboard()[0]["team"] == USER
    assert len(authenticated) == 1
    captured = capfd.readouterr()
    assert_no_secret(captured.out, captured.err, caplog.text,
                     paths=(hosted.data_dir, Path(os.environ["PREFECT_HOME"]), hosted.home))


def test_verbose_client_mode_is_never_used(hosted, monkeypatch, capfd):
    """VERBOSE=1 makes the client print Authorization headers; the backend drops that mode."""
    from kaggle.api.kaggle_api_extended import KaggleApi

    monkeypatch.setattr(KaggleApi, "args", [*KaggleApi.args, "--verbose"])
    backend = open_backend(hosted)
    assert "--verbose" not in backend.api.args
    backend.limits()
    captured = capfd.readouterr()
    assert_no_secret(captured.out, captured.err)


def test_cli_reads_kaggle_standings_and_fails_in_one_line(hosted, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    open_backend(hosted).submit(perfect_submission(hosted, tmp_path / "perfect.csv"))
    options = ["digits", "--backend", "kaggle", "--spec", hosted.spec_file, "--data-dir", str(hosted.data_dir)]
    runner = CliRunner(env={"COLUMNS": "200"})
    board = runner.invoke(app, ["leaderboard", *options])
    assert board.exit_code == 0 and USER in board.output and "1.0" in board.output
    listing = runner.invoke(app, ["submissions", *options])
    assert listing.exit_code == 0 and "perfect.csv" in listing.output and "complete" in listing.output
    monkeypatch.setenv("KAGGLE_KEY", "wrong-" + KEY)
    failed = runner.invoke(app, ["submissions", *options])
    assert failed.exit_code == 1 and "401" in failed.output and "KAGGLE_KEY" in failed.output
    assert_no_secret(board.output, listing.output, failed.output)


def _http_error(status: int, message: str):
    import requests

    response = requests.models.Response()
    response.status_code, response._content = status, json.dumps({"code": status, "message": message}).encode()
    return requests.HTTPError(f"{status} Client Error: Forbidden for url: http://localhost/api/v1/x", response=response)


def test_a_403_gets_rules_advice_only_for_competitions():
    """Dataset and kernel calls are refused for other reasons: the server's message says which."""
    from tasks.backends.kaggle_client import explain_http_error

    dataset = explain_http_error(_http_error(403, "Dataset is still processing"), "alice/headstart-kit",
                                 "create a dataset version")
    assert isinstance(dataset, AccessDeniedError) and "Dataset is still processing" in str(dataset)
    assert "rules" not in str(dataset)
    competition = explain_http_error(_http_error(403, "Phone verification required"), "digits", "submit")
    assert "Phone verification required" in str(competition) and "competitions/digits/rules" in str(competition)


def test_lists_come_in_pages_and_every_page_is_read(hosted, tmp_path):
    """Kaggle answers 20 rows at a time with a next-page token; the backend reads them all, and the official
    CLI pages through the host too."""
    hosted.set_daily_limit(40)
    path = perfect_submission(hosted, tmp_path / "perfect.csv")
    for number in range(23):
        hosted.backend.submit(path, f"mine {number}", team=USER)
        hosted.backend.submit(path, f"theirs {number}", team=f"team-{number}")
    backend = open_backend(hosted)
    mine = backend.submissions()
    assert len(mine) == 23 and mine[0]["description"] == "mine 22" and mine[-1]["description"] == "mine 0"
    assert len(backend.leaderboard()) == 24  # 23 other teams and ours
    assert sent(hosted, "ListSubmissions") == ["ListSubmissions"] * 2
    first_page = hosted.kaggle("competitions", "submissions", "digits").stdout
    assert "mine 22" in first_page and "mine 0" not in first_page
    # The official CLI does not print the submissions' next-page token; "20" is the host's token for page two.
    second_page = hosted.kaggle("competitions", "submissions", "digits", "--page-token", "20").stdout
    assert "mine 0" in second_page and "mine 22" not in second_page


def test_code_competitions_are_recognised_by_the_competition_itself(hosted_factory):
    """Not through search (which leaves ended competitions out and returns 20 at most)."""
    plain = hosted_factory(run_kernels=False)
    assert open_backend(plain).is_code_competition() is False
    code = hosted_factory(run_kernels=False, code_competition=True)  # the client now goes to this host
    assert open_backend(code).is_code_competition() is True
    assert "GetCompetition" in sent(code, "GetCompetition") and not sent(code, "ListCompetitions")


def test_a_rejected_access_token_says_so_and_how_to_make_one(hosted, monkeypatch):
    """The client drops a token Kaggle calls inactive and says so only in a debug log: not "no credentials"."""
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_" + "0" * 32)
    with pytest.raises(AuthenticationError) as alone:
        open_backend(hosted)
    assert "rejected the access token in KAGGLE_API_TOKEN (expired or revoked)" in str(alone.value)
    assert "Generate New Token" in str(alone.value) and "no Kaggle credentials" not in str(alone.value)
    # Beside a good key the client falls back to it, yet sends the rejected token with every call (a 401 each).
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    with pytest.raises(AuthenticationError, match="rejected the access token in KAGGLE_API_TOKEN"):
        open_backend(hosted)


def test_kernel_status_and_output_refusals_get_the_same_help(hosted_factory, tmp_path, monkeypatch):
    """kernels_status and kernels_output turn 401 and 403 into ValueError: the kit explains them as every call."""
    from tasks.backends.kernel_runs import download_output, kernel_status

    hosted = hosted_factory(run_kernels=False, users=((USER, KEY), ("bob", "bob-key")))
    folder = tmp_path / "bobs"
    folder.mkdir()
    (folder / "run.py").write_text("print(1)\n")
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": "bob/private-kernel", "title": "private kernel", "code_file": "run.py", "language": "python",
        "kernel_type": "script"}))
    hosted.kaggle("kernels", "push", "-p", folder, KAGGLE_USERNAME="bob", KAGGLE_KEY="bob-key")
    backend = open_backend(hosted)
    with pytest.raises(AccessDeniedError, match=r"refused to check the kernel for 'bob/private-kernel/1' \(403: "
                                                 r"Permission 'kernels.get' was denied"):
        kernel_status(backend.api, "bob/private-kernel/1")
    record = {"kernel": "bob/private-kernel", "version": 1, "competition": "digits"}
    with pytest.raises(AccessDeniedError, match="refused to download the kernel output"):
        download_output(backend, tmp_path / "out", record)
    monkeypatch.setenv("KAGGLE_KEY", "wrong")
    with pytest.raises(AuthenticationError, match="401.*KAGGLE_API_TOKEN"):
        kernel_status(open_backend(hosted).api, "bob/private-kernel/1")
