"""Google Drive downloads through ``gdown``: quota, permission and error pages are caught (the
transfer stops at the first bytes of an HTML page) and reported with the manual link and a
second source; gdown's own ``.part`` file is resumed on the next run."""

from __future__ import annotations

import inspect
from pathlib import Path

from ssformer.errors import DownloadError
from ssformer.io.sniff import looks_like_html

__all__ = ["DRIVE_URL", "drive_download", "drive_help"]

DRIVE_URL = "https://drive.google.com/uc?id={drive_id}"
"""A Google Drive file's download link (also the link to open by hand)."""


class _HtmlPage(Exception):
    """Raised from inside gdown's byte stream when the first bytes are an HTML page."""


class _HtmlSniffer:
    """A byte sink for gdown's ``hasher`` hook that stops the transfer at an HTML page."""

    def __init__(self) -> None:
        self._head = b""

    def update(self, chunk: bytes) -> None:
        if len(self._head) >= 512:
            return
        self._head += chunk[: 512 - len(self._head)]
        if looks_like_html(self._head):
            raise _HtmlPage(self._head[:60].decode("latin-1"))


def _gdown_partials(tmp: Path) -> list[Path]:
    """gdown's partial files for output ``tmp``: its name, 8 random characters, ``.part``."""
    if not tmp.parent.is_dir():
        return []
    length = len(tmp.name) + 8 + len(".part")
    return [
        path
        for path in tmp.parent.iterdir()
        if path.name.startswith(tmp.name)
        and path.name.endswith(".part")
        and len(path.name) == length
    ]


def drive_help(manual_url: str, save_as: Path, alternative: str | None) -> str:
    """The advice given whenever a Google Drive download fails."""
    advice = (
        f"Google Drive links hit download quotas and die: open {manual_url} in a browser, save "
        f"the file as {save_as} and run the command again (it is then checked and kept)."
    )
    if alternative:
        advice += f" Second source: {alternative}."
    return advice


def drive_download(
    url: str,
    dest: Path,
    *,
    what: str,
    manual_url: str | None = None,
    alternative: str | None = None,
    retries: int = 3,
    quiet: bool = False,
) -> Path:
    """Download ``url`` (a Drive link, or any URL gdown can fetch) to ``dest.download``.

    Returns the temporary path: the caller checks the file and renames it to ``dest``. gdown
    keeps its own ``.part`` file beside it and resumes it on the next run. A Drive quota or
    permission page, or any HTML page, raises :class:`DownloadError` at once, with the manual
    link and ``alternative``; the partial file of an HTML page is deleted.
    """
    import gdown
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".download")
    manual_url = manual_url or url
    help_text = drive_help(manual_url, dest, alternative)
    parameters = inspect.signature(gdown.download).parameters
    options: dict[str, object] = {"url": url, "output": str(tmp), "quiet": quiet, "resume": True}
    if "hasher" in parameters:
        options["hasher"] = _HtmlSniffer()
    if "retries" in parameters:
        options["retries"] = retries
    try:
        result = gdown.download(**options)
    except _HtmlPage as page:
        for partial in _gdown_partials(tmp):
            partial.unlink()
        raise DownloadError(
            f"Downloading {what}: Google Drive sent an HTML page (starting {str(page)!r}), not "
            f"the file (a quota, permission or error page); it was discarded. {help_text}"
        ) from None
    except gdown.exceptions.FileURLRetrievalError as error:
        reason = " ".join(str(error).split())
        raise DownloadError(
            f"Downloading {what}: Google Drive refused the file ({reason}). {help_text}"
        ) from error
    except (gdown.exceptions.DownloadError, requests.RequestException, OSError) as error:
        kept = _gdown_partials(tmp)
        resume = f" The partial file {kept[0]} is resumed on the next run." if kept else ""
        raise DownloadError(
            f"Downloading {what} failed ({type(error).__name__}: {error}).{resume} {help_text}"
        ) from error
    if result is None or not tmp.is_file():  # old gdown versions return None on failure
        raise DownloadError(f"Downloading {what}: gdown produced no file. {help_text}")
    return tmp
