"""HTTP(S) downloads that survive bad networks: ``Range`` resume of a ``.part`` file (with
``If-Range``), retries with exponential back-off on connection errors, cut-off bodies, HTTP 429
and 5xx answers, and refusal of an HTML page served in place of an archive."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ssformer.errors import DownloadError
from ssformer.io.messages import note
from ssformer.io.sniff import ZIP_MAGIC, looks_like_html

if TYPE_CHECKING:
    import requests

__all__ = ["http_download"]

# Small reads: a connection cut mid-read loses the bytes of that read, which resume re-fetches.
_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Retry(Exception):
    """A transient failure: wait, then resume from the bytes already on disk."""


def _receive(
    response: requests.Response,
    part: Path,
    offset: int,
    url: str,
    *,
    expect_zip: bool,
    quiet: bool,
) -> None:
    """Append one HTTP response's body to ``part``; raise :class:`_Retry` if it is cut short."""
    from tqdm import tqdm

    status = response.status_code
    headers = response.headers
    if status == 416 and offset:
        match = re.fullmatch(r"bytes \*/(\d+)", headers.get("Content-Range", ""))
        if match and int(match[1]) == offset:
            return  # the partial file is already complete
        part.unlink()
        raise _Retry("the server refused to resume the partial file; starting over")
    if status == 429 or status >= 500:
        raise _Retry(f"HTTP {status} {response.reason}")
    if status >= 400:
        raise DownloadError(
            f"{url} answered HTTP {status} {response.reason}; check the address and try again "
            "(a mirror replaces the default sources through $SSFORMER_KVASIR_URL, "
            "$SSFORMER_PRANET_URL or $HF_ENDPOINT)."
        )
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type in ("text/html", "application/xhtml+xml"):
        raise DownloadError(
            f"{url} sent an HTML page (Content-Type {content_type}) instead of the archive: the "
            "link moved, needs a login or hit a quota. Open it in a browser, save the archive "
            f"as {part.with_suffix('')} and run the command again."
        )
    total: int | None
    if status == 206:
        match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", ""))
        if match is None or int(match[1]) != offset:
            part.unlink()
            raise _Retry("the server answered a different byte range; starting over")
        total = None if match[3] == "*" else int(match[3])
    else:
        if offset:
            note(f"{url} does not support resuming; downloading from the start", quiet)
            part.unlink()
            offset = 0
        length = headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None

    received = 0
    with (
        open(part, "ab") as sink,
        tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=quiet,
        ) as bar,
    ):
        for chunk in response.iter_content(_CHUNK):
            if not chunk:
                continue
            if offset == 0 and received == 0 and expect_zip:
                _refuse_non_zip(chunk, url, part)
            sink.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    size = offset + received
    if total is not None and size < total:
        raise _Retry(f"the connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise _Retry(f"received {size} bytes but {total} were announced; starting over")


def _refuse_non_zip(first_chunk: bytes, url: str, part: Path) -> None:
    if first_chunk.startswith(ZIP_MAGIC):
        return
    if part.exists() and part.stat().st_size == 0:
        part.unlink()
    kind = "an HTML page" if looks_like_html(first_chunk[:512]) else "something else"
    raise DownloadError(
        f"{url} sent {kind} instead of a zip archive (it starts with "
        f"{first_chunk[:40].decode('latin-1')!r}): the link moved, needs a login or hit a quota. "
        f"Open it in a browser, save the archive as {part.with_suffix('')} and run the command "
        "again."
    )


def _name_not_resolved(error: BaseException) -> bool:
    """Whether a connection error is a failed DNS look-up: a ``socket.gaierror`` anywhere in
    its chain (requests wraps it in urllib3's ``MaxRetryError.reason``)."""
    import socket

    seen: set[int] = set()
    current: object = error
    while isinstance(current, BaseException) and id(current) not in seen:
        if isinstance(current, socket.gaierror):
            return True
        seen.add(id(current))
        wrapped = current.args[0] if current.args else None
        current = current.__cause__ or current.__context__ or getattr(current, "reason", wrapped)
    return False


def http_download(
    url: str,
    dest: Path,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    expect_zip: bool = True,
    quiet: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming with HTTP ``Range``.

    Connection errors, cut-off bodies, HTTP 429 and 5xx answers are retried up to ``retries``
    times, waiting ``backoff * 2**k`` seconds (k = 0, 1, ...). A server that ignores ``Range``
    makes the download start over. With ``expect_zip``, a body that does not start with the zip
    signature (such as an HTML page) is refused before anything is written. ``dest`` appears
    only once the whole body has arrived; the ``.part`` file is kept on failure so that the next
    run resumes it.
    """
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    session = requests.Session()
    # Byte offsets must count the bytes on disk, so no transparent decompression.
    session.headers["Accept-Encoding"] = "identity"
    validator: str | None = None
    failures = 0
    try:
        while True:
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            if offset and validator:
                headers["If-Range"] = validator
            try:
                with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
                    validator = response.headers.get("ETag") or response.headers.get(
                        "Last-Modified"
                    )
                    _receive(response, part, offset, url, expect_zip=expect_zip, quiet=quiet)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as error:
                if _name_not_resolved(error):  # no network, or a wrong host: retrying won't help
                    raise DownloadError(
                        f"Downloading {url} failed: its host name does not resolve (no network, "
                        f"or a wrong address). Download the file in a browser and save it as "
                        f"{dest}, then run the command again (it is then checked and used)."
                    ) from error
                problem = f"connection error ({type(error).__name__}: {error})"
            except _Retry as error:
                problem = str(error)
            else:
                os.replace(part, dest)
                return dest
            failures += 1
            if failures > retries:
                kept = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"Downloading {url} failed {failures} times; last: {problem}. "
                    + (
                        f"{kept} bytes are kept in {part} and the next run resumes them."
                        if kept
                        else "Check the network and run the command again."
                    )
                )
            delay = backoff * 2 ** (failures - 1)
            note(f"{problem}; retry {failures}/{retries} in {delay:.3g} s", quiet)
            sleep(delay)
    finally:
        session.close()
