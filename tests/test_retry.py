"""Rate limits as Kaggle applies them (issue 23, item 2): Retry-After honoured, otherwise backoff with jitter up to
minutes, every wait said; the host answers 429 as Kaggle does."""

import logging
import random
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from tasks.backends.retry import Backoff, retry_after_seconds, with_backoff
from tasks.errors import TransientBackendError
from tests.hosting import DIRECT, KEY, USER, call


def test_the_real_policy_waits_minutes_with_jitter():
    policy, rng = Backoff(), random.Random(1)
    waits = [[policy.delay(attempt, rng) for attempt in range(1, policy.attempts)] for _ in range(200)]
    for attempt, planned in enumerate([4, 8, 16, 32]):
        drawn = [series[attempt] for series in waits]
        assert planned / 2 <= min(drawn) and max(drawn) <= planned and len(set(drawn)) == 200  # jitter, never zero
    assert policy.delay(10, rng) <= policy.cap == 240  # capped at 4 minutes


def test_retry_after_is_seconds_or_an_http_date():
    now = datetime(2026, 3, 26, tzinfo=timezone.utc)
    assert retry_after_seconds("120") == 120 and retry_after_seconds(None) is None
    assert retry_after_seconds("Thu, 26 Mar 2026 00:30:00 GMT", now) == 1800
    assert retry_after_seconds("soon") is None


def test_with_backoff_waits_what_it_is_told_and_says_so(caplog):
    failures = [TransientBackendError("429", 429, retry_after=7.0), TransientBackendError("503", 503)]
    waited = []

    def call_kaggle():
        if failures:
            raise failures.pop(0)
        return "answer"

    caplog.set_level(logging.WARNING, logger="headstart")
    assert with_backoff(call_kaggle, "list submissions", Backoff(), sleep=waited.append,
                        rng=random.Random(0)) == "answer"
    assert waited[0] == 7.0 and 4 <= waited[1] <= 8  # the second wait: 8 s planned, drawn from [4, 8]
    assert "Kaggle could not list submissions (429): waiting 7 s, as its Retry-After asks, before try 2 of 5" \
        in caplog.text and "backing off, with jitter, before try 3 of 5" in caplog.text
    with pytest.raises(TransientBackendError, match="asks to wait 30 min before trying to download again"):
        with_backoff(lambda: (_ for _ in ()).throw(TransientBackendError("429", 429, retry_after=1800.0)),
                     "download", Backoff(), sleep=waited.append)


def test_the_host_answers_429_as_kaggle_does_and_the_client_waits(hosted_factory, caplog):
    """A second ListSubmissions within 2 s is refused with 429, Retry-After and Kaggle's RESOURCE_EXHAUSTED body;
    the backend waits what Retry-After says, says so, and gets its answer."""
    from tasks.backends.kaggle import KaggleBackend, kaggle_spec

    hosted = hosted_factory(run_kernels=False, rate_limits=(("ListSubmissions", 1, 2.0),))
    url = hosted.server.url + "/api/v1/competitions.CompetitionApiService/ListSubmissions"
    assert call(url, {"competitionName": "digits"})[0] == 200
    request = urllib.request.Request(url, data=b'{"competitionName": "digits"}', method="POST", headers={
        "Authorization": "Basic " + __import__("base64").b64encode(f"{USER}:{KEY}".encode()).decode()})
    with pytest.raises(urllib.error.HTTPError) as refused:
        DIRECT.open(request)
    assert refused.value.code == 429 and 1 <= int(refused.value.headers["Retry-After"]) <= 2
    assert __import__("json").loads(refused.value.read()) == {
        "error": {"code": 429, "message": "Too many requests", "status": "RESOURCE_EXHAUSTED"}}
    caplog.set_level(logging.WARNING, logger="headstart")
    backend = KaggleBackend(kaggle_spec("digits", hosted.spec_file))
    started = time.monotonic()
    assert backend.submissions() == []  # refused, waited, answered
    assert time.monotonic() - started >= 0.9
    assert "(429): waiting 2 s, as its Retry-After asks" in caplog.text or \
        "(429): waiting 1 s, as its Retry-After asks" in caplog.text
    assert [request["status"] for request in hosted.host.requests if request["rpc"] and "ListSubmissions"
            in request["rpc"]][-2:] == [429, 200]


def test_a_retry_after_of_half_an_hour_is_not_sat_out(hosted_factory):
    """Kaggle rate-limits DownloadDataFiles for 30 minutes and more (kaggle-cli issue 931): the error says when."""
    from tasks.backends.kaggle import KaggleBackend, kaggle_spec

    hosted = hosted_factory(run_kernels=False)
    hosted.host.fail_next(429, path_contains="GetSubmissionLimits", retry_after=1800)
    with pytest.raises(TransientBackendError, match="asks to wait 30 min"):
        KaggleBackend(kaggle_spec("digits", hosted.spec_file)).limits()


def test_rate_limits_are_given_as_method_calls_per_seconds():
    from tasks.errors import ConfigError
    from tasks.host.common import parse_rate_limits

    assert parse_rate_limits(["DownloadDataFiles=1/1800"]) == (("DownloadDataFiles", 1, 1800.0),)
    with pytest.raises(ConfigError, match="expected METHOD=CALLS/SECONDS"):
        parse_rate_limits(["DownloadDataFiles=often"])
