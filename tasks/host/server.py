"""`headstart host`: a local competition served over Kaggle's HTTP API (FastAPI on uvicorn), for the unmodified client.

Point the client at it with KAGGLE_API_ENVIRONMENT=LOCALHOST and HTTP_PROXY=http://127.0.0.1:PORT:
it then sends absolute-form targets (`POST http://localhost/api/v1/...`), which `AbsoluteForm`
routes by their path. RPC bodies are parsed into kagglesdk's request types and answered with its
response types (tasks/host/rpc.py); the competition RPCs live in tasks/host/api.py, kernels and
datasets in tasks/host/kernels.py. File URLs are signed; uploads and bodies are size-capped.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from kagglesdk.kaggle_object import KaggleObject
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from tasks.host.auth import AUTHORIZE_PATH, authorize_page
from tasks.host.common import RPC_PREFIXES, HostError, Redirect, number
from tasks.host.kernel_api import LOG_STREAM_PATH, log_events
from tasks.host.kernels import version_label
from tasks.host.routes import dispatch, resolve_file
from tasks.host.rpc import check_shape, checked, rpc_types
from tasks.host.state import CompetitionHost

BASIC, BEARER = HTTPBasic(auto_error=False), HTTPBearer(auto_error=False)


class Front:
    """Plain ASGI in front of the app (Starlette's BaseHTTPMiddleware would copy every response through a
    stream): route a proxied request (`POST http://localhost/api/v1/...`) by its path, as a server behind a
    proxy would; answer injected failures (tests); log one line per request in `host.requests`, never headers."""

    def __init__(self, app, host: CompetitionHost):
        self.app, self.host = app, host

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path.startswith(("http://", "https://")):
            path = urlsplit(path).path or "/"
            scope = {**scope, "path": path, "raw_path": path.encode()}
        # Logged as it arrives, status filled in before the first byte of the answer goes out: a client that has
        # its answer always finds its request in the log (logging after the send raced the client's next step).
        entry = {"method": scope["method"], "path": path, "rpc": _rpc_name(path), "status": None}
        with self.host.lock:
            self.host.requests.append(entry)

        async def send_and_note(message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        try:
            fault = self.host.take_fault(path)
            if fault:
                await _error_response(fault)(scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        except BaseException:
            entry["status"] = entry["status"] or 500  # uvicorn answers 500 for an app that raised
            raise


class ThrottledFileResponse(FileResponse):
    """A FileResponse sent no faster than `bytes_per_second` (a slow network: a download that can be cut off
    midway on purpose, as a test or a user trying resumption does)."""

    def __init__(self, path: Path, bytes_per_second: float, **options):
        super().__init__(path, **options)
        self.bytes_per_second = bytes_per_second

    async def __call__(self, scope, receive, send):
        step = max(1, int(self.bytes_per_second / 20))  # about twenty sends a second

        async def slowly(message) -> None:
            if message["type"] != "http.response.body" or not message.get("body"):
                return await send(message)
            body, more = message["body"], message.get("more_body", False)
            for start in range(0, len(body), step):
                piece = body[start:start + step]
                await asyncio.sleep(len(piece) / self.bytes_per_second)
                await send({"type": "http.response.body", "body": piece,
                            "more_body": more or start + step < len(body)})

        await super().__call__(scope, receive, slowly)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status_code=status)


def _error_response(error: HostError) -> JSONResponse:
    """A HostError as Kaggle answers it: {"code", "message"}, or its own body (a 429's), with its headers."""
    return JSONResponse(error.body or {"code": error.status, "message": error.message}, status_code=error.status,
                        headers=error.headers)


def _rpc_name(path: str) -> str | None:
    return next((path[len(prefix):] for prefix in RPC_PREFIXES if path.startswith(prefix)), None)


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it passes `limit` bytes (whatever Content-Length claims)."""
    declared = request.headers.get("Content-Length", "")
    if (number(declared) or 0) > limit:
        raise HostError(413, f"Request body over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HostError(413, f"Request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(rpc: str, body: bytes):
    """The body as the RPC's kagglesdk request type; 400 for what is not JSON or has a field of the wrong type."""
    request_type = rpc_types()[rpc][0] if rpc in rpc_types() else None
    try:
        payload = json.loads(body or b"{}")
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
        if request_type is None:
            return payload
        check_shape(request_type, payload)
        return checked(request_type.from_dict(payload))
    except (ValueError, TypeError, KeyError) as error:
        raise HostError(400, f"Invalid request body for {rpc}: {error}") from None


def _answer(result) -> Response:
    if isinstance(result, Redirect):
        return RedirectResponse(result.url, status_code=302)
    if isinstance(result, bytes):
        return Response(result, media_type="application/zip")
    if isinstance(result, KaggleObject):
        return JSONResponse(type(result).to_dict(result))
    if result is None:  # an RPC whose response type is none (ExpireApiToken)
        return JSONResponse({})
    raise TypeError(f"a handler returned {type(result).__name__}, not a kagglesdk object")


def create_app(host: CompetitionHost) -> FastAPI:
    app = FastAPI(title="headstart host", openapi_url=None, docs_url=None, redoc_url=None)
    settings = host.settings

    @app.exception_handler(HostError)
    async def host_error(request: Request, error: HostError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        message = {401: "Unauthenticated: unknown user or wrong API key"}.get(error.status_code, str(error.detail))
        return _error(error.status_code, message)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:  # answer, never drop the connection
        return _error(500, f"Internal error ({type(error).__name__})")

    async def rpc(service: str, method: str, request: Request,
                  basic: HTTPBasicCredentials | None = Depends(BASIC),
                  bearer: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> Response:
        name = f"{service}/{method}"
        body = await _body(request, settings.max_request_bytes)
        credentials = (basic.username, basic.password) if basic else None
        token = bearer.credentials if bearer and bearer.scheme.lower() == "bearer" else None
        result = await run_in_threadpool(
            lambda: dispatch(host, name, lambda: host.authenticate(credentials, token), _parse(name, body),
                             credentials_given=credentials is not None or token is not None))
        return _answer(result)

    for prefix in RPC_PREFIXES:
        app.add_api_route(prefix + "{service}/{method}", rpc, methods=["POST"])

    @app.put("/upload/{token}")
    async def upload(token: str, request: Request) -> Response:
        user = host.signed_user(f"upload/{token}", "upload", request.query_params)
        target = host.upload_target(token, user) if user is not None else None
        if target is None:
            raise HostError(404, f"No such upload: {token}")
        if request.headers.get("Content-Range", "").startswith("bytes */"):  # a resumable upload's probe
            return JSONResponse({}) if target.is_file() else _error(404, "Upload not found")
        limit = settings.max_upload_bytes
        declared = request.headers.get("Content-Length", "")
        if (number(declared) or 0) > limit:
            raise HostError(413, f"Upload over {limit} bytes")
        partial, size = target.with_name(target.name + ".part"), 0
        with open(partial, "wb") as stream:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    stream.close()
                    partial.unlink()
                    raise HostError(413, f"Upload over {limit} bytes")
                stream.write(chunk)
        partial.replace(target)
        return JSONResponse({})

    @app.get(AUTHORIZE_PATH)
    async def authorize(request: Request, basic: HTTPBasicCredentials | None = Depends(BASIC)) -> Response:
        """`kaggle auth login`'s page: sign in with your name and key (Basic), get the code to paste."""
        try:
            user = host.authenticate((basic.username, basic.password) if basic else None, None)
        except HostError:
            return Response("Sign in with your user name and API key.\n", status_code=401, media_type="text/plain",
                            headers={"WWW-Authenticate": 'Basic realm="headstart host"'})
        return Response(authorize_page(host, user, request.query_params), media_type="text/plain")

    @app.get(LOG_STREAM_PATH)
    async def log_stream(owner: str, slug: str, request: Request,
                         basic: HTTPBasicCredentials | None = Depends(BASIC),
                         bearer: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> Response:
        """`kaggle kernels logs -f`: the run's output as it comes (server-sent events), its log once it has ended."""
        token = bearer.credentials if bearer and bearer.scheme.lower() == "bearer" else None
        user = host.authenticate((basic.username, basic.password) if basic else None, token)
        directory = await run_in_threadpool(host.kernels.readable, user, owner, slug,
                                            version_label(request.query_params.get("versionLabel")))
        return StreamingResponse(log_events(host, directory), media_type="text/event-stream")

    @app.api_route("/{path:path}", methods=["GET", "HEAD"])
    async def file(path: str, request: Request) -> Response:
        """A signed file URL: Range, If-Range, ETag and Last-Modified come from Starlette's FileResponse."""
        signed = host.signed_user(path, "download", request.query_params) is not None
        found = await run_in_threadpool(resolve_file, host, "/" + path) if signed else None
        if found is None or not Path(found).is_file():
            raise HostError(404, f"No such file: /{path}")
        if settings.download_bytes_per_second:
            return ThrottledFileResponse(found, settings.download_bytes_per_second,
                                         media_type="application/octet-stream")
        return FileResponse(found, media_type="application/octet-stream")

    return app


def listening_socket(address: str, port: int) -> socket.socket:
    """A bound, listening TCP socket (OSError: the address is taken or not ours). Created with IPPROTO_TCP
    named: asyncio sets TCP_NODELAY only on sockets whose `proto` says TCP, and without it every response
    written in two parts waits ~40 ms for the client's delayed ACK (`socket.create_server` leaves proto 0)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(1024)
    except OSError:
        listener.close()
        raise
    return listener


class HostServer:
    """A running host: `with HostServer(host, port=0) as server: server.url`; `serve()` runs it in the foreground."""

    def __init__(self, host: CompetitionHost, address: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.socket = listening_socket(address, port)
        self.port = self.socket.getsockname()[1]
        public = "127.0.0.1" if address in ("", "0.0.0.0") else address
        self.url = host.base_url = f"http://{public}:{self.port}"
        config = uvicorn.Config(Front(create_app(host), host), log_config=None, log_level="warning",
                                access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def serve(self) -> None:
        """Serve until Ctrl-C or SIGTERM (uvicorn's own handlers, in the main thread)."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self, timeout: float = 30.0) -> HostServer:
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                        name="headstart-host", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("headstart host did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.socket.close()
        self.host.kernels.wait_all(timeout=5)

    def __enter__(self) -> HostServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
