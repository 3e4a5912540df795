"""A stand-in for Google Drive on 127.0.0.1, for gdown's folder download.

gdown builds its Drive addresses itself (``https://drive.google.com/embeddedfolderview?id=``,
``https://drive.google.com/uc?id=``), so the stand-in is reached the way a proxy is: the test
sets ``HTTPS_PROXY`` to this server and ``REQUESTS_CA_BUNDLE`` to a certificate made here with
the ``openssl`` command. The server answers ``CONNECT``, speaks TLS with that certificate (for
``drive.google.com``) and then serves, as Drive does, a folder's listing page (the HTML that
gdown parses) and each file with its ``Content-Disposition`` name. Nothing leaves the machine.
"""

from __future__ import annotations

import shutil
import socketserver
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlparse


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def make_certificate(folder: Path, host: str = "drive.google.com") -> tuple[Path, Path]:
    """A self-signed certificate (its own authority) for ``host``: ``(cert.pem, key.pem)``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
            "-addext", f"subjectAltName=DNS:{host}",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class DriveFolder:
    """One folder: its title and files ``{file id: (name, bytes)}`` (ids of 25+ characters)."""

    title: str
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    def listing(self) -> bytes:
        links = "".join(
            f'<div><a href="https://drive.google.com/file/d/{file_id}/view?usp=drive_web">'
            f"{name}</a></div>"
            for file_id, (name, _) in self.files.items()
        )
        return f"<html><head><title>{self.title}</title></head><body>{links}</body></html>".encode()


class _DriveHandler(BaseHTTPRequestHandler):
    server: FakeDrive._Server

    def do_GET(self) -> None:
        drive = self.server.owner
        url = urlparse(self.path)
        ident = (parse_qs(url.query).get("id") or [""])[0]
        with drive.lock:
            drive.requests.append(self.path)
        if url.path == "/embeddedfolderview" and ident in drive.folders:
            self._send(200, drive.folders[ident].listing(), "text/html; charset=utf-8")
            return
        for folder in drive.folders.values():
            if url.path == "/uc" and ident in folder.files:
                name, body = folder.files[ident]
                disposition = f'attachment; filename="{name}"'
                self._send(200, body, "application/octet-stream", disposition)
                return
        self._send(404, b"<html><head><title>Not Found</title></head></html>", "text/html")

    def _send(self, status: int, body: bytes, kind: str, disposition: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if disposition:
            self.send_header("Content-Disposition", disposition)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


class _ConnectHandler(socketserver.StreamRequestHandler):
    """``CONNECT host:443``, then TLS, then the Drive handler on the decrypted stream."""

    server: FakeDrive._Server

    def handle(self) -> None:
        request_line = self.rfile.readline(65537).decode("latin-1")
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        if not request_line.startswith("CONNECT "):
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        try:
            tls = self.server.context.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            return
        _DriveHandler(tls, self.client_address, self.server)


class FakeDrive:
    """``with FakeDrive(folder) as drive:`` then set ``HTTPS_PROXY=drive.proxy_url`` and
    ``REQUESTS_CA_BUNDLE=drive.certificate``; ``drive.folders[id] = DriveFolder(...)``."""

    class _Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        owner: FakeDrive
        context: ssl.SSLContext

    def __init__(self, workdir: Path) -> None:
        self.certificate, key = make_certificate(workdir)
        self.folders: dict[str, DriveFolder] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self._server = self._Server(("127.0.0.1", 0), _ConnectHandler)
        self._server.owner = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, key)
        self._server.context = context
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def proxy_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeDrive:
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
