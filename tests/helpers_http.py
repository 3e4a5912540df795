"""A real HTTP server on 127.0.0.1 for download tests: serves bytes with scripted failures.

Each route is a :class:`FileRoute` that can answer an error status for its first requests,
cut the connection in the middle of the body, and honour or ignore ``Range``. The server counts
requests and answers ``410 Gone`` past ``max_requests``, so a client that loops stops.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass
class FileRoute:
    """How one path answers."""

    body: bytes
    content_type: str = "application/zip"
    honour_range: bool = True
    fail_first: int = 0
    fail_status: int = 503
    drop_after: int | None = None
    drops: int = 1
    calls: int = 0
    ranges: list[str | None] = field(default_factory=list)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        self.calls += 1
        requested = handler.headers.get("Range")
        self.ranges.append(requested)
        if self.calls <= self.fail_first:
            message = b"temporarily unavailable"
            handler.send_response(self.fail_status)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(message)))
            handler.end_headers()
            handler.wfile.write(message)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", requested or "")
        if self.honour_range and match:
            start = int(match[1])
            if start >= len(self.body):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(self.body)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header(
                "Content-Range", f"bytes {start}-{len(self.body) - 1}/{len(self.body)}"
            )
        else:
            handler.send_response(200)
        payload = self.body[start:]
        handler.send_header("Content-Type", self.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("ETag", '"v1"')
        if self.honour_range:
            handler.send_header("Accept-Ranges", "bytes")
        handler.end_headers()
        if self.drop_after is not None and self.drops > 0:
            self.drops -= 1
            handler.wfile.write(payload[: self.drop_after])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(payload)


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer._Server

    def do_GET(self) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.request_count += 1
            over = owner.request_count > owner.max_requests
            route = owner.routes.get(self.path.split("?")[0])
        if over or route is None:
            self.send_response(410 if over else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        route.answer(self)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


class LoopbackServer:
    """``with LoopbackServer() as server: server.routes["/x"] = FileRoute(...)``."""

    class _Server(ThreadingHTTPServer):
        daemon_threads = True
        owner: LoopbackServer

    def __init__(self, max_requests: int = 20) -> None:
        self.routes: dict[str, FileRoute] = {}
        self.max_requests = max_requests
        self.request_count = 0
        self.lock = threading.Lock()
        self._server = self._Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
