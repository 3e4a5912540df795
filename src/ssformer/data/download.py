"""Download the published data sets, verify them and put them in place.

Kvasir-SEG over plain HTTP (:func:`ssformer.io.http.http_download`, resumable), CVC-ClinicDB from
Kaggle (:func:`ssformer.io.kaggle.kaggle_download`, credentials checked first) and the PraNet
benchmark from Google Drive (:func:`ssformer.io.drive.drive_download`). An archive the user put
in place by hand is used instead of downloading. Nothing is written where a data set is expected
until it has been checked: archives pass their CRC check and safe extraction, data sets have the
published number of image/mask pairs. Existing folders that are not ours are never overwritten
or deleted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ssformer.data import sources
from ssformer.data.archives import extract_members, move_into_place, staging_folder
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
from ssformer.errors import DataError, DownloadError
from ssformer.io.drive import DRIVE_URL, drive_download
from ssformer.io.http import http_download
from ssformer.io.kaggle import kaggle_download
from ssformer.io.messages import note
from ssformer.registry import DATASET_DOWNLOADS

__all__ = [
    "DOWNLOADS",
    "DataDownload",
    "download_cvc_clinicdb",
    "download_dataset",
    "download_kvasir",
    "download_pranet",
]


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
        note(f"Kvasir-SEG: {target} is already complete", quiet)
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
    note(f"Kvasir-SEG: {target} is ready", quiet)
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
        note(f"CVC-ClinicDB: {target} is already complete", quiet)
        return target
    archive = root / sources.CVC_ARCHIVE
    download_folder = root / ".cvcclinicdb-download"

    def fetch() -> Path:
        return kaggle_download(
            sources.CVC_KAGGLE_DATASET,
            download_folder,
            what=CVC_CLINICDB.name,
            page=sources.CVC_KAGGLE_PAGE,
            save_as=archive,
            quiet=quiet,
        )

    _obtain_and_install(
        archive, target, fetch, _paired_arranger(CVC_CLINICDB), verify, keep_archive=keep_archive
    )
    if download_folder.is_dir() and not any(download_folder.iterdir()):
        download_folder.rmdir()
    note(f"CVC-ClinicDB: {target} is ready", quiet)
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
        note(f"PraNet: {target} is already complete", quiet)
        return target
    manual = DRIVE_URL.format(drive_id=sources.PRANET_DRIVE_ID)
    source_url = url or os.environ.get(sources.PRANET_URL_ENV) or manual
    archive = root / sources.PRANET_ARCHIVE

    def fetch() -> Path:
        return drive_download(
            source_url, archive, what="the PraNet benchmark", manual_url=manual, quiet=quiet
        )

    def arrange(extracted: Path, dataset: Path) -> None:
        find_pranet_root(extracted).rename(dataset)

    _obtain_and_install(archive, target, fetch, arrange, verify, keep_archive=keep_archive)
    note(f"PraNet: {target} is ready", quiet)
    return target


@dataclass(frozen=True)
class DataDownload:
    """One data set ``ssformer download data`` knows: its folder under the data root, the
    archive name that is used when already there (put by hand, or kept), and its fetcher."""

    folder: str
    archive: str
    fetch: Callable[..., Path]


DOWNLOADS: dict[str, DataDownload] = {
    "kvasir-seg": DataDownload(KVASIR_SEG.folder, sources.KVASIR_ARCHIVE, download_kvasir),
    "cvc-clinicdb": DataDownload(CVC_CLINICDB.folder, sources.CVC_ARCHIVE, download_cvc_clinicdb),
    "pranet": DataDownload(PRANET.folder, sources.PRANET_ARCHIVE, download_pranet),
}
"""By the names of :data:`ssformer.registry.DATASET_DOWNLOADS`."""


def download_dataset(
    name: str, root: Path | str = "data", *, keep_archive: bool = False, quiet: bool = False
) -> Path:
    """Download one data set by CLI name (:data:`ssformer.registry.DATASET_DOWNLOADS`):
    ``kvasir-seg``, ``cvc-clinicdb`` or ``pranet``; returns its folder."""
    key = name.lower()
    if key not in DOWNLOADS:
        raise DownloadError(
            f"unknown data set {name!r}; choose from {', '.join(DATASET_DOWNLOADS)}."
        )
    return DOWNLOADS[key].fetch(root, keep_archive=keep_archive, quiet=quiet)
