"""The official kaggle client, called as headstart calls it: credentials found as the CLI finds them (and a rejected
access token said to be rejected), every error turned into one BackendError that says what to do (and holds no
secret), and Kaggle's rate limits and passing failures waited out (tasks/backends/retry.py).

`import kaggle` authenticates at import time, so the client is imported inside functions, never at module level.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from tasks.errors import (
    AccessDeniedError,
    AuthenticationError,
    BackendError,
    NotFoundError,
    TransientBackendError,
)

# Kaggle's "Generate New Token" (Settings > API) makes an access token; kaggle.json needs a legacy API key
# (a new token put there is rejected with 401).
CREDENTIALS_HELP = ("give the kaggle client an access token (Kaggle > Settings > API > Generate New Token): "
                    "export KAGGLE_API_TOKEN=<token>, or save it in ~/.kaggle/access_token (chmod 600), or run "
                    "`kaggle auth login`; a legacy API key goes in ~/.kaggle/kaggle.json "
                    '({"username": ..., "key": ...}, chmod 600; or $KAGGLE_CONFIG_DIR/kaggle.json) or in '
                    "KAGGLE_USERNAME and KAGGLE_KEY")
logger = logging.getLogger("headstart")


def rules_url(slug: str) -> str:
    return f"https://www.kaggle.com/competitions/{slug}/rules"


def _status_of(error) -> int | None:
    """The HTTP status of a client error; a JSON body's `code` wins (the client raises on it even with 200)."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    with contextlib.suppress(Exception):
        code = response.json().get("code")
        if isinstance(code, int) and code >= 400:
            return code
    return response.status_code


def _server_message(error) -> str:
    """What the server said (the JSON body's `message`, or its `error.message` as Kaggle's 429 body has it), else the
    client's own summary."""
    with contextlib.suppress(Exception):
        body = error.response.json()
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return str(message)
    return str(error)


def _retry_after(error) -> float | None:
    from tasks.backends.retry import retry_after_seconds

    response = getattr(error, "response", None)
    return retry_after_seconds(response.headers.get("Retry-After")) if response is not None else None


NOT_RETRIED = "not retried, as Kaggle may have done it all the same: check before you try again"


def explain_http_error(error, slug: str, action: str, secrets: tuple[str, ...] = (), retried: bool = True
                       ) -> BackendError:
    """A client HTTPError as a BackendError whose message says what to do (and carries no secret).

    `slug` is a competition's (`digits`) or a dataset's or kernel's (`owner/slug`); a 403 on a competition
    most often means its rules are not accepted, elsewhere the server's message says why (phone
    verification, a dataset still processing, a deadline passed). A 429 or 5xx of a call that is never retried
    (`retried=False`: a kernel push) is no TransientBackendError, and says so."""
    status, detail = _status_of(error), redact(_server_message(error), secrets)
    if status == 401:
        return AuthenticationError(f"Kaggle rejected the credentials (401) while trying to {action}: {CREDENTIALS_HELP}")
    if status == 403 and "/" in slug:
        return AccessDeniedError(f"Kaggle refused to {action} for {slug!r} (403: {detail})")
    if status == 403:
        return AccessDeniedError(f"Kaggle refused to {action} for {slug!r} (403: {detail}); if you have not yet, "
                                 f"accept the competition's rules at {rules_url(slug)} (and check the slug)")
    if (status == 429 or (status is not None and status >= 500)) and not retried:
        return BackendError(f"Kaggle could not {action} for {slug!r} ({status}: {detail}); {NOT_RETRIED}")
    if status == 429 or (status is not None and status >= 500):
        return TransientBackendError(f"Kaggle could not {action} for {slug!r} right now ({status}: {detail}); "
                                     "retried with backoff, try again later if it persists", status,
                                     _retry_after(error) if status == 429 else None)
    if status == 404:
        return NotFoundError(f"Kaggle found no {slug!r} to {action} (404: {detail}); check the slug")
    return BackendError(f"Kaggle refused to {action} for {slug!r} ({status}: {detail})")


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _warn_if_readable(config_dir: str) -> None:
    path = Path(config_dir) / "kaggle.json"
    if path.is_file() and path.stat().st_mode & 0o077:
        warnings.warn(f"{path} is readable by other users; run `chmod 600 {path}`", stacklevel=3)


def authenticated_api():
    """A KaggleApi with credentials found as the kaggle CLI finds them; never in verbose (header-dumping) mode."""
    import requests

    # The package import authenticates and prints help when there are no credentials: keep it quiet.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi
    api = KaggleApi()
    # VERBOSE=1 makes the client print every request's Authorization header: never here.
    api.args = [argument for argument in KaggleApi.args if argument not in ("--verbose", "-v")]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            api.authenticate()
    except SystemExit:
        raise rejected_token_error() or AuthenticationError(f"no Kaggle credentials found: {CREDENTIALS_HELP}") from None
    except requests.RequestException as error:
        raise explain_http_error(error, "kaggle", "check the API token") from None
    rejected = rejected_token_error()
    if rejected is not None and api.config_values.get("auth_method") != "ACCESS_TOKEN":
        # The client fell back to kaggle.json, but still sends the rejected token with every request (its
        # KaggleHttpClient._try_fill_auth prefers a token): every call would be a 401.
        raise rejected
    _warn_if_readable(api.config_dir)
    return api


def rejected_token_error() -> AuthenticationError | None:
    """When an access token is set (KAGGLE_API_TOKEN or ~/.kaggle/access_token) but the client dropped it (Kaggle
    answered IntrospectToken with active: false, and the client says so only in a debug log:
    KaggleApi._authenticate_with_access_token): the error that says so and how to make a new one; else None."""
    from kagglesdk.kaggle_env import get_access_token_from_env

    token, source = get_access_token_from_env()
    if not token:
        return None
    where = "KAGGLE_API_TOKEN" if source == "KAGGLE_API_TOKEN" else "~/.kaggle/access_token"
    return AuthenticationError(f"Kaggle rejected the access token in {where} (expired or revoked): make a new one at "
                               "https://www.kaggle.com/settings (API > Generate New Token) and put it in "
                               f"{where}, or run `kaggle auth login`; remove the old one if you use kaggle.json")


def _access_refusal(error: ValueError, slug: str, action: str, secrets: tuple[str, ...]) -> BackendError | None:
    """kernels_status, kernels_output and kernels_logs turn a 401 or 403 into a ValueError ("Cannot access kernel
    ... Permission 'kernels.get' was denied", kaggle/api/kaggle_api_extended.py): the HTTPError it came from,
    explained as every other call's is."""
    import requests

    cause = error.__context__
    if isinstance(cause, requests.HTTPError) and _status_of(cause) in (401, 403):
        return explain_http_error(cause, slug, action, secrets)
    return None


def call_kaggle(api, slug: str, action: str, function, *args, retry: bool = True, retried: bool = True, **kwargs):
    """Call one client method, turning its HTTP and connection errors into BackendErrors; a rate limit, a 5xx or a
    dropped connection is tried again after Retry-After or a backoff with jitter (tasks/backends/retry.py), unless
    `retry` is False (a call that must not be made twice in a row: a new dataset, a new dataset version; the task
    around it may still try again, after it looked). With `retried=False` no one tries again (a kernel push: one that
    failed on the way back may have saved a version), and the error is no TransientBackendError and says so."""
    import requests

    from tasks.backends.retry import with_backoff

    secrets = tuple(str(api.config_values.get(key) or "") for key in ("key", "token"))

    def once():
        try:
            return function(*args, **kwargs)
        except requests.HTTPError as error:
            raise explain_http_error(error, slug, action, secrets, retried) from None
        except (requests.ConnectionError, requests.Timeout) as error:
            reached = f"cannot reach Kaggle to {action} for {slug!r} ({type(error).__name__})"
            raise (TransientBackendError(f"{reached}; retried with backoff") if retried
                   else BackendError(f"{reached}; {NOT_RETRIED}")) from None
        except ValueError as error:
            refusal = _access_refusal(error, slug, action, secrets)
            if refusal is None:
                raise
            raise refusal from None

    return with_backoff(once, f"{action} for {slug!r}") if retry and retried else once()
