"""The reproduction study's trained weights: its two Google Drive folders (Kvasir-SEG and
CVC-ClinicDB, linked from its README), fetched with gdown's folder download.

Every file is named as the study's ``EVAL.MODEL_PATH`` names it, ``<NAME>_<BACKBONE>_<DATASET>
.pth`` (``SegFormer_MiT-B1_Kvasir.pth``); each one is checked by loading it strictly into the
model its name says (the class count read from the file) before it is put in place, under
``<root>/checkpoints/study/<data set>/``. gdown writes into a download folder beside it
(``.<data set>.download``), which it resumes on the next run (files already complete are
skipped); a downloaded file that does not load is deleted and reported. Files already in place
that load are kept; files in place that do not load are never overwritten.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ssformer.errors import CheckpointError, DownloadError
from ssformer.io.messages import note
from ssformer.models.factories import verify_model_file
from ssformer.registry import BACKBONES, MODELS, STUDY_WEIGHT_FOLDERS

__all__ = [
    "DRIVE_FOLDER_URL",
    "STUDY_FOLDERS",
    "StudyFolder",
    "check_study_file",
    "download_study_weights",
    "install_study_files",
    "study_file_model",
]

DRIVE_FOLDER_URL = "https://drive.google.com/drive/folders/{drive_id}"
"""A Google Drive folder's link (gdown's folder download reads it; also the link to open)."""


@dataclass(frozen=True)
class StudyFolder:
    """One Drive folder of the study's trained weights and where its files go."""

    name: str
    drive_id: str
    dataset: str

    @property
    def url(self) -> str:
        return DRIVE_FOLDER_URL.format(drive_id=self.drive_id)


STUDY_FOLDERS: dict[str, StudyFolder] = {
    folder.name: folder
    for folder in (
        StudyFolder("study-kvasir", "1-0iBmX13qZiqLNugyaTn3tZE88vd-16O", "Kvasir-SEG"),
        StudyFolder("study-cvc-clinicdb", "1n5x6Rz8xT_N1iEgiKj5nqpPvmdyzI8Ya", "CVC-ClinicDB"),
    )
}
"""By the names of :data:`ssformer.registry.STUDY_WEIGHT_FOLDERS`."""

_NAME = re.compile(r"(?P<model>[A-Za-z]+)_(?P<backbone>[A-Za-z0-9]+-[Bb]\d)_(?P<dataset>.+)\.pth")


def study_file_model(filename: str) -> tuple[str, str] | None:
    """``(model, backbone)`` that a study file name ``<NAME>_<BACKBONE>_<DATASET>.pth`` says, or
    ``None`` when the name is not of that form or names no model/backbone this package has."""
    match = _NAME.fullmatch(filename)
    if match is None:
        return None
    model = next((m for m in MODELS if m.lower() == match["model"].lower()), None)
    backbone = next((b for b in BACKBONES if b.lower() == match["backbone"].lower()), None)
    if model is None or backbone is None:
        return None
    return model, backbone


def check_study_file(path: Path) -> tuple[str, str]:
    """Load ``path`` strictly into the model its name says; return ``(model, backbone)``.

    Raises :class:`CheckpointError` naming the file when its name says no model, or when it
    does not load (an HTML page, another model, missing or unexpected keys, other shapes).
    """
    path = Path(path)
    said = study_file_model(path.name)
    if said is None:
        raise CheckpointError(
            f"{path.name}: the name does not say which model it holds; the study names its "
            f"files <NAME>_<BACKBONE>_<DATASET>.pth with NAME one of {', '.join(MODELS)} and "
            "BACKBONE such as MiT-B1"
        )
    verify_model_file(path, *said)
    return said


def _install_one(path: Path, target: Path) -> str | None:
    """Check the downloaded ``path`` and move it to ``target/<name>``; a failure's line."""
    final = target / path.name
    if final.exists():
        try:
            check_study_file(final)
        except CheckpointError as error:
            return (
                f"{final} exists but does not load ({error}); it is never overwritten: move it "
                "away and run the command again"
            )
        path.unlink()  # the copy in place loads: the download is not needed
        return None
    try:
        check_study_file(path)
    except CheckpointError as error:
        path.unlink()
        return f"{path.name} was downloaded but does not load and was deleted: {error}"
    target.mkdir(parents=True, exist_ok=True)
    os.replace(path, final)
    return None


def install_study_files(downloaded: Path, target: Path) -> tuple[list[Path], list[str]]:
    """Put every checked ``.pth`` file of ``downloaded`` (any depth) into ``target``.

    Returns the files in place and the failures (one line each). A file that does not load is
    deleted from ``downloaded`` (it was downloaded by us), never from ``target``; other files
    (not ``.pth``) are left in ``downloaded`` and named as failures.
    """
    placed: list[Path] = []
    failures: list[str] = []
    for path in sorted(p for p in Path(downloaded).rglob("*") if p.is_file()):
        if path.suffix != ".pth":
            if not path.name.endswith(".part"):  # gdown's partial file, resumed next time
                failures.append(f"{path} is not a checkpoint (.pth); it was left there")
            continue
        failure = _install_one(path, target)
        if failure is None:
            placed.append(target / path.name)
        else:
            failures.append(failure)
    return placed, failures


def _remove_if_empty(folder: Path) -> None:
    """Remove the download folder once it holds no file (only its empty sub-folders)."""
    if folder.is_dir() and not any(path.is_file() for path in folder.rglob("*")):
        shutil.rmtree(folder)


def _gdown_folder(url: str, output: Path, quiet: bool) -> None:
    """gdown's folder download of ``url`` into ``output`` (resumed), errors as DownloadError."""
    import gdown
    import requests

    options: dict[str, object] = {"url": url, "output": str(output), "quiet": quiet}
    parameters = inspect.signature(gdown.download_folder).parameters
    options.update(
        {key: value for key, value in (("resume", True), ("retries", 3)) if key in parameters}
    )
    try:
        gdown.download_folder(**options)
    except (gdown.exceptions.DownloadError, requests.RequestException, OSError) as error:
        reason = " ".join(str(error).split())
        raise DownloadError(
            f"gdown's folder download failed ({type(error).__name__}: {reason})"
        ) from error


def download_study_weights(
    name: str, root: Path | str = ".", *, url: str | None = None, quiet: bool = False
) -> list[Path]:
    """Download the study's Drive folder ``name`` (``study-kvasir``, ``study-cvc-clinicdb``) into
    ``<root>/checkpoints/study/<data set>/``, each file checked; returns the files in place.

    ``url`` replaces the folder's Drive link (a mirror). Raises :class:`DownloadError` listing
    every file that failed (after the others are in place) and how to fetch them by hand.
    """
    if name not in STUDY_FOLDERS:
        raise DownloadError(
            f"unknown weights folder {name!r}; choose from {', '.join(STUDY_WEIGHT_FOLDERS)}"
        )
    folder = STUDY_FOLDERS[name]
    target = Path(root) / "checkpoints" / "study" / folder.dataset
    downloading = target.with_name(f".{folder.dataset}.download")
    by_hand = (
        f"Google Drive folders hit quotas: open {folder.url} in a browser, download its files "
        f"into {target} and run the command again (files there are checked and kept)."
    )
    try:
        _gdown_folder(url or folder.url, downloading, quiet)
    except DownloadError as error:
        # gdown stops at the listing, or after the folder's other files: keep what loads
        placed, failures = install_study_files(downloading, target)
        _remove_if_empty(downloading)
        raise DownloadError(
            f"{name}: {error} ({len(placed)} file(s) in place in {target}). {by_hand}"
            + "".join(f"\n- {failure}" for failure in failures)
        ) from error
    placed, failures = install_study_files(downloading, target)
    _remove_if_empty(downloading)
    if failures:
        raise DownloadError(
            f"{name}: {len(failures)} file(s) failed ({len(placed)} in place in {target}):\n"
            + "\n".join(f"- {f}" for f in failures)
            + f"\n{by_hand}"
        )
    if not placed:
        raise DownloadError(f"{name}: the folder {url or folder.url} held no checkpoint. {by_hand}")
    note(f"{name}: {len(placed)} checked file(s) in {target}", quiet)
    return placed
