"""Download the published weights and data sets, verify them and put them in place.

Three transports, each resumable where the remote end allows it:

- plain HTTP(S) (:func:`http_download`): ``Range`` resume of a ``.part`` file, retries with
  exponential back-off on connection errors and 5xx answers, refusal of an HTML page served in
  place of an archive;
- Google Drive through ``gdown`` (:func:`drive_download`), whose quota and permission pages are
  caught and reported with the manual link; backbone weights then come from their second source
  on the Hugging Face Hub (:func:`fetch_from_hub`, plain HTTP, converted to the original layout);
- Kaggle through the ``kaggle`` package (:func:`kaggle_download`), after checking that
  credentials exist (importing ``kaggle`` without them prints help and may exit).

Nothing is written where a valid file or data set is expected until it has been checked: weights
are loaded as a state dict of the expected backbone, archives pass their CRC check and safe
extraction, data sets have the published number of image/mask pairs. Existing files and folders
that are not ours are never overwritten or deleted.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ssformer.data import sources
from ssformer.data.archives import (
    ZIP_MAGIC,
    extract_members,
    looks_like_html,
    move_into_place,
    staging_folder,
)
from ssformer.data.layout import (
    CVC_CLINICDB,
    KVASIR_SEG,
    PRANET,
    PairedLayout,
    arrange_paired,
    find_pranet_root,
    verify_paired,
    verify_pranet,
)
from ssformer.errors import CheckpointError, DataError, DownloadError

if TYPE_CHECKING:
    import requests

# Small reads: a connection cut mid-read loses the bytes of that read, which resume re-fetches.
_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
DATASETS = ("kvasir-seg", "cvc-clinicdb", "pranet")


def _note(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Plain HTTP with Range resume
# --------------------------------------------------------------------------------------------


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
            f"{url} answered HTTP {status} {response.reason}; check the address "
            "(or the mirror given by --url / the environment) and try again."
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
            _note(f"{url} does not support resuming; downloading from the start", quiet)
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
            _note(f"{problem}; retry {failures}/{retries} in {delay:.3g} s", quiet)
            sleep(delay)
    finally:
        session.close()


# --------------------------------------------------------------------------------------------
# Google Drive through gdown
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def weight_path(source: sources.WeightSource, root: Path | str = ".") -> Path:
    """Where ``source`` lives under ``root``: ``checkpoints/<subdir>/<filename>``."""
    return Path(root) / "checkpoints" / source.subdir / source.filename


def validate_weights(path: Path, source: sources.WeightSource) -> None:
    """Raise :class:`CheckpointError` unless ``path`` loads as ``source``'s state dict (an HTML
    page saved in its place is named as such by the checkpoint reader)."""
    from ssformer.models import checkpoints

    if source.model is None:
        checkpoints.verify_backbone_file(path, source.backbone)
    else:
        checkpoints.verify_model_file(path, source.model, source.backbone)


def resolve_weight_names(names: Iterable[str]) -> list[sources.WeightSource]:
    """Map CLI names (and ``all``) to sources, in order, without duplicates."""
    chosen: list[sources.WeightSource] = []
    for name in names:
        key = name.lower()
        if key == "all":
            picked = list(sources.WEIGHTS.values())
        elif key in sources.WEIGHTS:
            picked = [sources.WEIGHTS[key]]
        else:
            raise DownloadError(
                f"unknown weights {name!r}; choose from {', '.join(sources.WEIGHTS)} or 'all'."
            )
        chosen.extend(source for source in picked if source not in chosen)
    return chosen


def fetch_weight(
    source: sources.WeightSource,
    root: Path | str = ".",
    *,
    url: str | None = None,
    quiet: bool = False,
) -> Path:
    """Download, check and install one checkpoint; return its path.

    A valid file already in place is kept. A file in place that does not load is never
    replaced: the error says to move it away. The download goes to ``<file>.download``, is
    loaded as a state dict of ``source.backbone`` and only then renamed to ``<file>``; a file
    that fails the check is deleted (it is ours) and reported with the manual link.
    """
    final = weight_path(source, root)
    what = f"{source.name} ({source.backbone}{' ' + source.model if source.model else ''})"
    if final.exists():
        try:
            validate_weights(final, source)
        except CheckpointError as error:
            raise CheckpointError(
                f"{final} exists but is not valid {what} weights ({error}). It is never "
                "overwritten: move or delete it and run the command again."
            ) from error
        _note(f"{source.name}: {final} is already present and valid", quiet)
        return final
    tmp = final.with_name(final.name + ".download")
    if tmp.exists():  # a download of an earlier run that ended before its check
        try:
            validate_weights(tmp, source)
        except CheckpointError:
            tmp.unlink()
        else:
            os.replace(tmp, final)
            _note(f"{source.name}: saved {final} (downloaded by an earlier run)", quiet)
            return final
    try:
        _fetch_from_drive(source, final, url=url or source.url, what=what, quiet=quiet)
    except DownloadError as drive_error:
        hub = hf_url(source)
        if hub is None:
            raise
        _note(f"{source.name}: Google Drive failed; trying the second source {hub}", quiet)
        try:
            fetch_from_hub(source, final, what=what, quiet=quiet)
        except (DownloadError, CheckpointError) as hub_error:
            raise DownloadError(
                f"{drive_error}\nThe second source failed too: {hub_error}"
            ) from hub_error
    _note(f"{source.name}: saved {final}", quiet)
    return final


def _fetch_from_drive(
    source: sources.WeightSource, final: Path, *, url: str, what: str, quiet: bool
) -> None:
    tmp = drive_download(
        url, final, what=what, manual_url=source.url, alternative=source.alternative, quiet=quiet
    )
    try:
        validate_weights(tmp, source)
    except CheckpointError as error:
        tmp.unlink()
        raise DownloadError(
            f"The file downloaded for {what} is not valid and was deleted: {error} "
            + drive_help(source.url, final, source.alternative)
        ) from error
    os.replace(tmp, final)


def hf_url(source: sources.WeightSource, environ: Mapping[str, str] | None = None) -> str | None:
    """The download link of ``source``'s Hugging Face Hub copy (``None`` if it has none);
    ``$HF_ENDPOINT`` replaces ``https://huggingface.co``."""
    if not (source.hf_repo and source.hf_filename):
        return None
    env = os.environ if environ is None else environ
    endpoint = (env.get(sources.HF_ENDPOINT_ENV) or sources.HF_ENDPOINT).rstrip("/")
    return f"{endpoint}/{source.hf_repo}/resolve/main/{source.hf_filename}"


def fetch_from_hub(
    source: sources.WeightSource, final: Path, *, what: str, quiet: bool = False
) -> Path:
    """Download ``source``'s Hugging Face Hub copy, load it strictly into its backbone (which
    converts the key layout) and write it to ``final`` in the original MiT/PVTv2 layout.

    The download goes to ``<final>.hub`` (resumable ``.part`` while it runs) and is deleted once
    converted, or when it does not load; ``final`` appears only complete (temp file + rename).
    """
    from ssformer.fileio import save_torch_atomic
    from ssformer.models.backbones import build_backbone
    from ssformer.models.checkpoints import export_state_dict, load_weights

    url = hf_url(source)
    if url is None:
        raise DownloadError(f"{what} has no second source on the Hugging Face Hub")
    raw = final.with_name(final.name + ".hub")
    http_download(url, raw, expect_zip=False, retries=3, quiet=quiet)
    backbone = build_backbone(source.backbone)
    try:
        load_weights(backbone, raw)
    except CheckpointError as error:
        raw.unlink()
        raise DownloadError(
            f"The file downloaded from {url} for {what} is not valid and was deleted: {error}"
        ) from error
    save_torch_atomic(export_state_dict(backbone, "imagenet"), final)
    raw.unlink()
    _note(f"{source.name}: converted {source.hf_repo} to the original layout", quiet)
    return final


def download_weights(
    names: Iterable[str],
    root: Path | str = ".",
    *,
    urls: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> list[Path]:
    """Download weights by CLI name (``mit-b0``..``mit-b5``, ``pvtv2-b1``..``pvtv2-b5``,
    ``ssformer-s``, ``ssformer-l``, ``all``) into ``<root>/checkpoints``.

    Every name is tried; if any failed, one :class:`DownloadError` lists all failures after the
    others are in place. ``urls`` overrides the download link per name (mirrors, tests).
    """
    chosen = resolve_weight_names(names)
    done: list[Path] = []
    failures: list[str] = []
    for source in chosen:
        try:
            done.append(fetch_weight(source, root, url=(urls or {}).get(source.name), quiet=quiet))
        except (DownloadError, CheckpointError) as error:
            failures.append(f"- {source.name}: {error}")
    if failures:
        saved = f" ({len(done)} other file(s) are in place.)" if done else ""
        raise DownloadError(
            f"{len(failures)} of {len(chosen)} weight file(s) failed.{saved}\n"
            + "\n".join(failures)
        )
    return done


# --------------------------------------------------------------------------------------------
# Kaggle
# --------------------------------------------------------------------------------------------


def kaggle_credentials_source(environ: Mapping[str, str] | None = None) -> str | None:
    """Where Kaggle credentials would come from (never their value), or ``None``."""
    env = os.environ if environ is None else environ
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "the KAGGLE_USERNAME and KAGGLE_KEY environment variables"
    if env.get("KAGGLE_API_TOKEN"):
        return "the KAGGLE_API_TOKEN environment variable"
    home = Path(env.get("HOME") or Path.home())
    candidates = []
    if env.get("KAGGLE_CONFIG_DIR"):
        candidates.append(Path(env["KAGGLE_CONFIG_DIR"]) / "kaggle.json")
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    candidates += [
        home / ".kaggle" / "kaggle.json",
        config_home / "kaggle" / "kaggle.json",
        home / ".kaggle" / "access_token",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return None


def kaggle_setup_help(save_as: Path, environ: Mapping[str, str] | None = None) -> str:
    """How to give the ``kaggle`` package credentials (names variables, never values)."""
    env = os.environ if environ is None else environ
    half = ""
    if bool(env.get("KAGGLE_USERNAME")) != bool(env.get("KAGGLE_KEY")):
        missing = "KAGGLE_KEY" if env.get("KAGGLE_USERNAME") else "KAGGLE_USERNAME"
        half = f" (KAGGLE_USERNAME and KAGGLE_KEY must both be set; {missing} is not)"
    return (
        f"CVC-ClinicDB comes from Kaggle ({sources.CVC_KAGGLE_PAGE}), which needs an API "
        f"token, and none was found{half}. Set one up: sign in at kaggle.com, open Settings > "
        "API > 'Create New Token', save the kaggle.json it gives you as ~/.kaggle/kaggle.json "
        "and run `chmod 600 ~/.kaggle/kaggle.json`; or export KAGGLE_USERNAME and KAGGLE_KEY "
        "(on Colab: from the notebook's Secrets). Alternatively download the archive from that "
        f"page by hand, save it as {save_as} and run the command again."
    )


def kaggle_download(dataset: str, folder: Path, *, save_as: Path, quiet: bool = False) -> Path:
    """Download Kaggle ``dataset`` as a zip into ``folder``; return the zip's path.

    Credentials are checked before ``kaggle`` is imported, because importing it without them
    prints its own help and may exit the process.
    """
    if kaggle_credentials_source() is None:
        raise DownloadError(kaggle_setup_help(save_as))
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except (ImportError, OSError, SystemExit) as error:
        raise DownloadError(
            f"The 'kaggle' package failed to import ({type(error).__name__}: {error}). Repair "
            "it with `pip install -U kaggle` (older releases also need `pip install six`), or "
            f"download the archive from {sources.CVC_KAGGLE_PAGE} by hand and save it as "
            f"{save_as}."
        ) from error
    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit:
        raise DownloadError(
            f"Kaggle did not accept the credentials from {kaggle_credentials_source()}. "
            + kaggle_setup_help(save_as)
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    try:
        api.dataset_download_files(dataset, path=str(folder), quiet=quiet, unzip=False)
    except Exception as error:  # the kaggle client raises many unrelated types
        raise DownloadError(
            f"Kaggle download of {dataset} failed ({type(error).__name__}: {error}). Check the "
            f"network, or download it from {sources.CVC_KAGGLE_PAGE} by hand and save it as "
            f"{save_as}."
        ) from error
    zips = sorted(folder.glob("*.zip"))
    if len(zips) != 1:
        raise DownloadError(
            f"Kaggle download of {dataset} left {[p.name for p in zips]} in {folder}, expected "
            "one zip archive."
        )
    return zips[0]


# --------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------


def _existing_dataset(target: Path, name: str, verify: Callable[[Path], object]) -> bool:
    """True if ``target`` already holds the complete data set; refuse a different folder."""
    if not (target.exists() or target.is_symlink()):
        return False
    try:
        verify(target)
    except DataError as error:
        raise DataError(
            f"{target} exists but is not a complete {name} ({error}). It is never overwritten: "
            "move or delete it, or choose another --dir, and run the command again."
        ) from error
    return True


def _install_archive(
    archive: Path,
    target: Path,
    arrange: Callable[[Path, Path], None],
    verify: Callable[[Path], object],
) -> None:
    """Extract ``archive`` in a staging folder beside ``target``, arrange, verify, move."""
    with staging_folder(target.parent, target.name) as staging:
        extracted = staging / "extracted"
        extracted.mkdir()
        extract_members(archive, extracted)
        dataset = staging / "dataset"
        arrange(extracted, dataset)
        verify(dataset)
        move_into_place(dataset, target)


def _obtain_and_install(
    archive: Path,
    target: Path,
    fetch: Callable[[], Path],
    arrange: Callable[[Path, Path], None],
    verify: Callable[[Path], object],
    *,
    keep_archive: bool,
) -> None:
    """Use ``archive`` if the user put it there, else ``fetch`` it; then install it.

    An archive fetched by this call is ours: it is deleted if it turns out broken (so the next
    run fetches it again) and, unless ``keep_archive``, after a successful install. An archive
    that was already there is left alone either way.
    """
    fetched = not archive.exists()
    if fetched:
        fetched_path = fetch()
        if fetched_path != archive:
            os.replace(fetched_path, archive)
    try:
        _install_archive(archive, target, arrange, verify)
    except (DownloadError, DataError) as error:
        if fetched:
            archive.unlink(missing_ok=True)
            raise type(error)(f"{error} (the downloaded archive {archive} was deleted)") from error
        raise type(error)(
            f"{error} (the archive {archive} was already there; it is kept)"
        ) from error
    if fetched and not keep_archive:
        archive.unlink()


def _paired_arranger(layout: PairedLayout) -> Callable[[Path, Path], None]:
    def arrange(extracted: Path, dataset: Path) -> None:
        arrange_paired(extracted, dataset, layout)

    return arrange


def _paired_verifier(layout: PairedLayout, expected: int | None) -> Callable[[Path], object]:
    def verify(folder: Path) -> int:
        return verify_paired(folder, expected, what=layout.name)

    return verify


def download_kvasir(
    root: Path | str = "data",
    *,
    url: str | None = None,
    expected: int | None = KVASIR_SEG.count,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    keep_archive: bool = False,
    quiet: bool = False,
) -> Path:
    """Kvasir-SEG (1000 pairs) into ``<root>/Kvasir-SEG/{images,masks}``; return that folder.

    The URL is ``url``, else ``$SSFORMER_KVASIR_URL``, else Simula's. An archive already at
    ``<root>/kvasir-seg.zip`` is used instead of downloading. ``expected=None`` skips the count.
    """
    root = Path(root)
    target = root / KVASIR_SEG.folder
    verify = _paired_verifier(KVASIR_SEG, expected)
    if _existing_dataset(target, KVASIR_SEG.name, verify):
        _note(f"Kvasir-SEG: {target} is already complete", quiet)
        return target
    source_url = url or os.environ.get(sources.KVASIR_URL_ENV) or sources.KVASIR_URL
    archive = root / sources.KVASIR_ARCHIVE

    def fetch() -> Path:
        return http_download(
            source_url, archive, retries=retries, backoff=backoff, timeout=timeout, quiet=quiet
        )

    _obtain_and_install(
        archive, target, fetch, _paired_arranger(KVASIR_SEG), verify, keep_archive=keep_archive
    )
    _note(f"Kvasir-SEG: {target} is ready", quiet)
    return target


def download_cvc_clinicdb(
    root: Path | str = "data",
    *,
    expected: int | None = CVC_CLINICDB.count,
    keep_archive: bool = False,
    quiet: bool = False,
) -> Path:
    """CVC-ClinicDB (612 pairs) from Kaggle into ``<root>/CVC-ClinicDB/{images,masks}``.

    Needs Kaggle credentials, unless the archive is already at ``<root>/cvcclinicdb.zip``.
    """
    root = Path(root)
    target = root / CVC_CLINICDB.folder
    verify = _paired_verifier(CVC_CLINICDB, expected)
    if _existing_dataset(target, CVC_CLINICDB.name, verify):
        _note(f"CVC-ClinicDB: {target} is already complete", quiet)
        return target
    archive = root / sources.CVC_ARCHIVE
    download_folder = root / ".cvcclinicdb-download"

    def fetch() -> Path:
        return kaggle_download(
            sources.CVC_KAGGLE_DATASET, download_folder, save_as=archive, quiet=quiet
        )

    _obtain_and_install(
        archive, target, fetch, _paired_arranger(CVC_CLINICDB), verify, keep_archive=keep_archive
    )
    if download_folder.is_dir() and not any(download_folder.iterdir()):
        download_folder.rmdir()
    _note(f"CVC-ClinicDB: {target} is ready", quiet)
    return target


def download_pranet(
    root: Path | str = "data",
    *,
    url: str | None = None,
    train_count: int | None = PRANET.train_count,
    test_counts: Mapping[str, int] | None = None,
    keep_archive: bool = False,
    quiet: bool = False,
) -> Path:
    """The PraNet benchmark from Google Drive into ``<root>/PraNet/{TrainDataset,TestDataset}``.

    Its layout is kept; the training set and the five test sets are counted against the
    published sizes (``train_count``/``test_counts`` relax that for small test archives). The
    link is ``url``, else ``$SSFORMER_PRANET_URL``, else the Drive file.
    """
    root = Path(root)
    target = root / PRANET.folder

    def verify(folder: Path) -> dict[str, int]:
        return verify_pranet(folder, train_count, test_counts)

    if _existing_dataset(target, "PraNet benchmark", verify):
        _note(f"PraNet: {target} is already complete", quiet)
        return target
    manual = sources.DRIVE_URL.format(drive_id=sources.PRANET_DRIVE_ID)
    source_url = url or os.environ.get(sources.PRANET_URL_ENV) or manual
    archive = root / sources.PRANET_ARCHIVE

    def fetch() -> Path:
        return drive_download(
            source_url, archive, what="the PraNet benchmark", manual_url=manual, quiet=quiet
        )

    def arrange(extracted: Path, dataset: Path) -> None:
        find_pranet_root(extracted).rename(dataset)

    _obtain_and_install(archive, target, fetch, arrange, verify, keep_archive=keep_archive)
    _note(f"PraNet: {target} is ready", quiet)
    return target


def download_dataset(name: str, root: Path | str = "data", *, quiet: bool = False) -> Path:
    """Download one data set by CLI name: ``kvasir-seg``, ``cvc-clinicdb`` or ``pranet``."""
    key = name.lower()
    if key == "kvasir-seg":
        return download_kvasir(root, quiet=quiet)
    if key == "cvc-clinicdb":
        return download_cvc_clinicdb(root, quiet=quiet)
    if key == "pranet":
        return download_pranet(root, quiet=quiet)
    raise DownloadError(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}.")
