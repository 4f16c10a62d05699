"""`headstart host` under load (issue 12): 8 concurrent clients sending ~1,000 mixed requests, then bursts of 64
simultaneous POSTs, on 127.0.0.1. No 5xx, no reset connection, no lost or double-counted submission, the daily
limit exact."""

import base64
import json
import threading
import urllib.error
import urllib.request
from collections import Counter

import pytest

from tests.hosting import labelled_submission

CLIENTS, REQUESTS, BURST, DAILY_LIMIT = 8, 1000, 64, 12
USERS = tuple((f"user{number}", f"key-{number}") for number in range(CLIENTS))
COMPETITIONS = "/api/v1/competitions.CompetitionApiService/"
READS = [("ListSubmissions", {"competitionName": "digits"}), ("GetCompetition", {"competitionName": "digits"}),
         ("ListDataFiles", {"competitionName": "digits"}), ("GetLeaderboard", {"competitionName": "digits"}),
         ("GetSubmissionLimits", {"competitionName": "digits"})]


def _call(url: str, method: str = "POST", body: bytes | None = None, user: tuple[str, str] | None = None,
          ) -> tuple[int, dict]:
    """One request; a reset or refused connection raises (and fails the test), an HTTP error is its status."""
    headers = {"Content-Type": "application/json"}
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return response.status, json.loads(text) if text[:1] == b"{" else {}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _rpc(hosted, name: str, payload: dict, user) -> tuple[int, dict]:
    return _call(hosted.server.url + COMPETITIONS + name, body=json.dumps(payload).encode(), user=user)


def _upload(hosted, user, data: bytes, file_name: str) -> str:
    status, answer = _rpc(hosted, "StartSubmissionUpload", {"competitionName": "digits", "fileName": file_name}, user)
    assert status == 200, answer
    assert _call(answer["createUrl"], "PUT", data)[0] == 200
    return answer["token"]


def _create(hosted, user, token: str, description: str) -> tuple[int, dict]:
    return _rpc(hosted, "CreateSubmission", {"competitionName": "digits", "blobFileTokens": token,
                                             "submissionDescription": description}, user)


def _run_all(work, count: int) -> list:
    results, errors = [None] * count, []

    def run(number: int) -> None:
        try:
            results[number] = work(number)
        except Exception as error:  # a reset, a refused connection: recorded, the test fails on it
            errors.append(repr(error))

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    return results


@pytest.mark.slow
def test_the_host_under_load_loses_and_doubles_nothing(hosted_factory, tmp_path):
    hosted = hosted_factory(run_kernels=False, users=USERS)
    hosted.set_daily_limit(DAILY_LIMIT)
    files = [labelled_submission(hosted, tmp_path / f"label-{label}.csv", str(label)).read_bytes()
             for label in range(10)]

    def client(number: int) -> Counter:
        """A participant: reads, and a submission every few requests until well past the daily limit."""
        user, seen = USERS[number], Counter()
        for step in range(REQUESTS // CLIENTS):
            if step % 4 == 3:
                status, _ = _create(hosted, user, _upload(hosted, user, files[step % 10], "s.csv"), f"{step}")
                seen[("submit", status)] += 1
            else:
                name, payload = READS[step % len(READS)]
                seen[(name, _rpc(hosted, name, payload, user)[0])] += 1
        return seen

    counts = sum(_run_all(client, CLIENTS), Counter())
    assert not [key for key in counts if key[1] >= 500], counts
    assert {status for kind, status in counts if kind != "submit"} == {200}, counts
    accepted = counts[("submit", 200)]
    assert accepted == CLIENTS * DAILY_LIMIT and counts[("submit", 400)] == CLIENTS * (REQUESTS // CLIENTS // 4
                                                                                        - DAILY_LIMIT)
    log = hosted.backend.submissions()
    assert Counter(record["team"] for record in log) == {user: DAILY_LIMIT for user, _ in USERS}
    assert len({record["ref"] for record in log}) == len(log)

    # Bursts of 64 simultaneous CreateSubmission POSTs (uploads prepared beforehand) from a user with room.
    hosted.set_daily_limit(10_000)
    for burst in range(2):
        tokens = [_upload(hosted, USERS[number % CLIENTS], files[number % 10], f"b{number}.csv")
                  for number in range(BURST)]
        start = threading.Barrier(BURST)

        def post(number: int) -> tuple[int, dict]:
            start.wait()
            return _create(hosted, USERS[number % CLIENTS], tokens[number], f"burst {burst}-{number}")

        answers = _run_all(post, BURST)
        assert [status for status, _ in answers] == [200] * BURST, answers
        log = hosted.backend.submissions()
        assert len(log) == CLIENTS * DAILY_LIMIT + (burst + 1) * BURST
        assert len({record["ref"] for record in log}) == len(log)
        assert sorted(answer["ref"] for _, answer in answers) == sorted(
            record["ref"] for record in log if record["description"].startswith(f"burst {burst}-"))
