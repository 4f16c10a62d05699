"""`headstart host`: a local competition served over Kaggle's HTTP API, for the unmodified kaggle client.

Point the client at it with KAGGLE_API_ENVIRONMENT=LOCALHOST and HTTP_PROXY=http://127.0.0.1:PORT:
it then sends absolute-form targets (`POST http://localhost/api/v1/...`), routed here by path.
The RPCs live in tasks/host_api.py; kernels and datasets in tasks/host_kernels.py.
"""

from __future__ import annotations

import json
import secrets
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from tasks.host.api import dispatch, resolve_file
from tasks.host.common import RPC_PREFIXES, HostError, Redirect
from tasks.host.state import CompetitionHost


class _Handler(BaseHTTPRequestHandler):
    host: CompetitionHost
    server_version = "headstart-host"

    def log_message(self, format, *args) -> None:  # the request log goes to `host.requests`, not stderr
        pass

    def _record(self, status: int, rpc: str | None = None) -> None:
        with self.host.lock:
            self.host.requests.append({"method": self.command, "path": urlsplit(self.path).path, "rpc": rpc,
                                       "status": status})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json", headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode())

    def _send_error(self, status: int, message: str, rpc: str | None = None) -> None:
        self._record(status, rpc)
        self._send_json(status, {"code": status, "message": message})

    def _fault(self, path: str, rpc: str | None = None) -> bool:
        status = self.host.take_fault(path)
        if status is not None:
            self._send_error(status, f"Injected failure ({status})", rpc)
        return status is not None

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        rpc = next((path[len(prefix):] for prefix in RPC_PREFIXES if path.startswith(prefix)), None)
        if rpc is None:
            return self._send_error(404, f"No such endpoint: {path}")
        if self._fault(path, rpc):
            return
        try:
            request = json.loads(body or b"{}")
            result = dispatch(self.host, rpc, self.headers.get("Authorization"), request)
        except HostError as error:
            return self._send_error(error.status, error.message, rpc)
        except json.JSONDecodeError:
            return self._send_error(400, "Request body is not JSON", rpc)
        except Exception as error:  # a bug or a malformed request: answer, don't drop the connection
            return self._send_error(500, f"Internal error ({type(error).__name__})", rpc)
        self._record(302 if isinstance(result, Redirect) else 200, rpc)
        if isinstance(result, Redirect):
            return self._send(302, headers=[("Location", result.url)])
        if isinstance(result, bytes):
            return self._send(200, result, "application/zip")
        self._send_json(200, result)

    def do_PUT(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if self._fault(path):
            return
        if not path.startswith("/upload/") or not self._signed():
            return self._send_error(404, f"No such upload: {path}")
        status = self.host.receive_upload(path.rsplit("/", 1)[-1], body, self.headers.get("Content-Range"))
        self._record(status)
        self._send_json(status, {} if status == 200 else {"code": status, "message": "Upload not found"})

    def _signed(self) -> bool:
        signature = parse_qs(urlsplit(self.path).query).get("sig", [""])[0]
        return secrets.compare_digest(signature, self.host.signature)

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        if self._fault(path):
            return
        file_path = resolve_file(self.host, path) if self._signed() else None
        if file_path is None or not file_path.is_file():
            return self._send_error(404, f"No such file: {path}")
        self._record(200)
        self._send_file(file_path)

    do_HEAD = do_GET

    def _send_file(self, path: Path) -> None:
        """A file with what the client needs to skip or resume: length, Last-Modified, ETag, ranges."""
        stat = path.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        headers = [("Accept-Ranges", "bytes"), ("ETag", etag), ("Last-Modified", formatdate(stat.st_mtime, usegmt=True))]
        start = 0
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and self.headers.get("If-Range", etag) in (etag, headers[2][1]):
            start = int(wanted[len("bytes="):].split("-")[0] or 0)
        with open(path, "rb") as stream:
            stream.seek(start)
            body = stream.read()
        if start:
            headers.append(("Content-Range", f"bytes {start}-{stat.st_size - 1}/{stat.st_size}"))
        self._send(206 if start else 200, body, "application/octet-stream", headers)


class HostServer:
    """A running host: `with HostServer(host, port=0) as server: server.url`."""

    def __init__(self, host: CompetitionHost, address: str = "127.0.0.1", port: int = 0):
        handler = type("Handler", (_Handler,), {"host": host})
        self.host = host
        self.httpd = ThreadingHTTPServer((address, port), handler)
        self.httpd.daemon_threads = True
        public = "127.0.0.1" if address in ("", "0.0.0.0") else address
        self.port = self.httpd.server_address[1]
        self.url = host.base_url = f"http://{public}:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self) -> HostServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="headstart-host",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.host.kernels.wait_all(timeout=5)

    def __enter__(self) -> HostServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

