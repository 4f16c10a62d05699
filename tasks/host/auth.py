"""How the host knows who calls: a legacy API key (Basic), the key as a Bearer token, or a token `kaggle auth login`
obtained from it, as the unmodified client gets one from Kaggle (kagglesdk/kaggle_oauth.py, kaggle_creds.py).

`kaggle auth login --no-launch-browser` prints an authorize URL (`/api/v1/oauth2/authorize?...&code_challenge=...`);
the person opens it and signs in with their name and key (HTTP Basic: the host has no accounts of its own); the page
shows a one-time code; pasted into the CLI, it is exchanged (ExchangeOAuthToken, with the PKCE verifier) for an access
token and a refresh token, which the client keeps in ~/.kaggle/credentials.json and renews with GenerateAccessToken.
The host keeps its tokens in memory: a restarted host asks everyone to log in again.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field

from kagglesdk.security.types.oauth_service import ExchangeOAuthTokenResponse, IntrospectTokenResponse
from kagglesdk.users.types.account_service import GenerateAccessTokenResponse

from tasks.host.common import HostError
from tasks.host.rpc import make

CODE_SECONDS = 600  # how long a verification code may wait to be pasted
ACCESS_SECONDS = 12 * 3600  # an access token's life (the client asks for 43200 s, and renews 30 min before)
AUTHORIZE_PATH = "/api/v1/oauth2/authorize"


@dataclass
class Tokens:
    """Codes handed to signed-in browsers, and the access and refresh tokens given for them."""

    codes: dict = field(default_factory=dict)  # code -> (user, code_challenge, expires)
    access: dict = field(default_factory=dict)  # token -> (user, expires)
    refresh: dict = field(default_factory=dict)  # token -> user
    lock: threading.Lock = field(default_factory=threading.Lock)

    def user_of(self, token: str) -> str | None:
        with self.lock:
            user, expires = self.access.get(token, (None, 0.0))
        return user if user and time.time() < expires else None

    def new_code(self, user: str, challenge: str) -> str:
        code = secrets.token_hex(8)
        with self.lock:
            self.codes[code] = (user, challenge, time.time() + CODE_SECONDS)
        return code

    def new_access(self, user: str, seconds: float = ACCESS_SECONDS) -> str:
        token = "hsat_" + secrets.token_hex(20)
        with self.lock:
            self.access[token] = (user, time.time() + seconds)
        return token

    def exchange(self, code: str, verifier: str) -> tuple[str, str]:
        """(user, refresh token) for a code whose challenge is this verifier's S256 (RFC 7636); a 400 otherwise."""
        with self.lock:
            user, challenge, expires = self.codes.pop(code, (None, "", 0.0))
        # kagglesdk keeps the base64 padding RFC 7636 drops (KaggleOAuth.OAuthState): either spelling is the same.
        expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if user is None or time.time() > expires or not secrets.compare_digest(challenge.rstrip("="), expected):
            raise HostError(400, "Invalid or expired verification code: run `kaggle auth login` again")
        refresh = "hsrt_" + secrets.token_hex(20)
        with self.lock:
            self.refresh[refresh] = user
        return user, refresh


def authorize_page(host, user: str, query) -> str:
    """What a signed-in browser sees at the authorize URL: the code to paste into `kaggle auth login`."""
    if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
        raise HostError(400, "Unsupported OAuth request: response_type=code with an S256 code challenge is needed")
    code = host.tokens.new_code(user, query.get("code_challenge", ""))
    return (f"Signed in to headstart host as {user}.\nYour verification code: {code}\n"
            "Paste it where `kaggle auth login` asks for it (it works once, for 10 minutes).\n")


def exchange_token(host, user: str | None, request) -> ExchangeOAuthTokenResponse:
    name, refresh = host.tokens.exchange(request.code or "", request.code_verifier or "")
    return make(ExchangeOAuthTokenResponse, access_token=host.tokens.new_access(name), refresh_token=refresh,
                token_type="Bearer", expires_in=ACCESS_SECONDS, username=name)


def generate_access_token(host, user: str | None, request) -> GenerateAccessTokenResponse:
    """A new access token for a refresh token (`kaggle auth print-access-token`, and the client's renewal)."""
    with host.tokens.lock:
        name = host.tokens.refresh.get(request.refresh_token or "")
    if name is None:
        raise HostError(401, "Unauthenticated: the refresh token is unknown or revoked; run `kaggle auth login`")
    seconds = request.expiration_duration.total_seconds() if request.expiration_duration else ACCESS_SECONDS
    seconds = min(max(seconds, 60.0), ACCESS_SECONDS)
    return make(GenerateAccessTokenResponse, token=host.tokens.new_access(name, seconds), expires_in=int(seconds),
                user_name=name)


def expire_token(host, user: str | None, request):
    """`kaggle auth revoke`: the refresh token no longer gives access tokens."""
    with host.tokens.lock:
        host.tokens.refresh.pop(request.token or "", None)
    return None


def introspect_token(host, user: str | None, request) -> IntrospectTokenResponse:
    """Whether a token is active, and whose: a token `kaggle auth login` was given, to anyone holding it (the client
    asks without credentials right after the exchange); a user's key taken as a token, only to that user, never
    whose another key is. `user` is None when the call came with no credentials at all (then any other token is a
    401: no oracle for keys), "" when with credentials that are not good (a rejected token asking about itself is
    answered inactive, as Kaggle does: the client then drops it)."""
    users, token = dict(host.settings.users), request.token or ""
    issued = host.tokens.user_of(token)
    if issued:
        owner = issued if not user or user == issued else None
    elif user is None:
        raise HostError(401, "Unauthenticated: IntrospectToken answers about a key only to its holder")
    elif not user:
        owner = None
    else:
        own = secrets.compare_digest(users[user], token) if user in users else not users and bool(token)
        owner = user if own else None
    return make(IntrospectTokenResponse, active=owner is not None, username=owner or "")


# Called before the caller has credentials (the exchange, the check of the token it gave, a renewal by refresh
# token): credentials are checked when given, not asked for.
ANONYMOUS = {"security.OAuthService/ExchangeOAuthToken", "security.OAuthService/IntrospectToken",
             "users.AccountService/GenerateAccessToken", "users.AccountService/ExpireApiToken"}
AUTH_ROUTES = {"security.OAuthService/IntrospectToken": introspect_token,
               "security.OAuthService/ExchangeOAuthToken": exchange_token,
               "users.AccountService/GenerateAccessToken": generate_access_token,
               "users.AccountService/ExpireApiToken": expire_token}
