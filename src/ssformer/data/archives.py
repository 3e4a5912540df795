"""Safe checking and extraction of downloaded zip and tar archives.

Every member is checked before a single byte is written: absolute paths, ``..`` components,
paths that resolve outside the destination, links and special files (devices, FIFOs) are refused.
Extraction goes into a fresh temporary folder beside the target and is moved into place with one
``os.replace``, so a target folder either does not exist or holds the whole archive.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from ssformer.errors import DownloadError
from ssformer.io.sniff import ZIP_MAGIC, describe_head, looks_like_html, read_head

_COPY_CHUNK = 1 << 20


def check_zip(path: Path) -> None:
    """Raise :class:`DownloadError` unless ``path`` is a complete zip whose CRCs all match."""
    head = read_head(path, 512)
    if looks_like_html(head):
        raise DownloadError(
            f"{path} is an HTML page, not a zip archive (the server sent a web page instead of "
            "the file); delete it and download again, or fetch the file by hand."
        )
    if not head.startswith(ZIP_MAGIC):
        raise DownloadError(
            f"{path} is not a zip archive (it starts with {describe_head(path)}); "
            "delete it and download again."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DownloadError(
            f"{path} is a damaged or truncated zip archive ({error}); delete it and download again."
        ) from error
    if bad_member is not None:
        raise DownloadError(
            f"{path} is damaged: member {bad_member!r} fails its CRC check; delete it and "
            "download again."
        )


def _member_target(name: str, destination: Path, archive: Path) -> Path:
    """The resolved path of member ``name`` inside ``destination``, or a refusal."""
    normalised = name.replace("\\", "/")
    pure = PurePosixPath(normalised)
    if (
        normalised.startswith("/")
        or (len(normalised) > 1 and normalised[1] == ":")
        or ".." in pure.parts
    ):
        raise DownloadError(
            f"{archive} holds member {name!r} whose path leaves the extraction folder; "
            "the archive is refused and nothing was extracted."
        )
    target = (destination / Path(*pure.parts)).resolve() if pure.parts else destination
    root = destination.resolve()
    if target != root and root not in target.parents:
        raise DownloadError(
            f"{archive} holds member {name!r} that resolves to {target}, outside {root}; "
            "the archive is refused and nothing was extracted."
        )
    return target


def _zip_plan(archive: zipfile.ZipFile, path: Path, destination: Path) -> list[tuple[Path, bool]]:
    plan: list[tuple[Path, bool]] = []
    for info in archive.infolist():
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if info.create_system == 3 and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "a symbolic link" if kind == stat.S_IFLNK else "a special file"
            raise DownloadError(
                f"{path} holds member {info.filename!r}, {what}; the archive is refused and "
                "nothing was extracted."
            )
        target = _member_target(info.filename, destination, path)
        plan.append((target, info.is_dir()))
    return plan


def _tar_plan(archive: tarfile.TarFile, path: Path, destination: Path) -> list[tuple[Path, bool]]:
    plan: list[tuple[Path, bool]] = []
    for member in archive.getmembers():
        if not (member.isfile() or member.isdir()):
            what = "a link" if member.issym() or member.islnk() else "a special file"
            raise DownloadError(
                f"{path} holds member {member.name!r}, {what}; the archive is refused and "
                "nothing was extracted."
            )
        plan.append((_member_target(member.name, destination, path), member.isdir()))
    return plan


def extract_members(path: Path, destination: Path) -> None:
    """Extract zip or tar ``path`` into the existing, empty folder ``destination``.

    All members are checked first; a refused member means nothing is written.
    """
    path = Path(path)
    destination = Path(destination)
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(ZIP_MAGIC) or zipfile.is_zipfile(path):
        check_zip(path)
        with zipfile.ZipFile(path) as archive:
            plan = _zip_plan(archive, path, destination)
            for info, (target, is_dir) in zip(archive.infolist(), plan, strict=True):
                if is_dir:
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink, _COPY_CHUNK)
        return
    if tarfile.is_tarfile(path):
        try:
            with tarfile.open(path) as archive:
                plan = _tar_plan(archive, path, destination)
                for member, (target, is_dir) in zip(archive.getmembers(), plan, strict=True):
                    if is_dir:
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = archive.extractfile(member)
                    if source is None:  # pragma: no cover - isfile() members always have data
                        raise DownloadError(f"{path}: member {member.name!r} has no data.")
                    with source, open(target, "wb") as sink:
                        shutil.copyfileobj(source, sink, _COPY_CHUNK)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise DownloadError(
                f"{path} is a damaged or truncated tar archive ({error}); delete it and "
                "download again."
            ) from error
        return
    kind = "an HTML page" if looks_like_html(head) else "neither a zip nor a tar archive"
    raise DownloadError(
        f"{path} is {kind} (it starts with {describe_head(path)}); delete it and download again."
    )


@contextmanager
def staging_folder(parent: Path, label: str) -> Iterator[Path]:
    """A fresh temporary folder inside ``parent`` (same file system), removed on exit."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{label}.staging-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def move_into_place(source: Path, target: Path) -> None:
    """Rename folder ``source`` to ``target`` atomically; refuse if ``target`` exists."""
    if target.exists() or target.is_symlink():
        raise DownloadError(
            f"{target} appeared while extracting; it is left untouched. Move it away and run "
            "the command again."
        )
    os.replace(source, target)


def safe_extract(path: Path, target: Path) -> Path:
    """Extract archive ``path`` into the new folder ``target`` (which must not exist).

    The archive is checked (zip CRCs, member paths, member types), extracted into a temporary
    folder beside ``target`` and renamed into place, so ``target`` never holds a partial
    extraction. Returns ``target``.
    """
    path = Path(path)
    target = Path(target)
    if target.exists():
        raise DownloadError(f"{target} already exists; it is never overwritten.")
    with staging_folder(target.parent, target.name) as staging:
        content = staging / "content"
        content.mkdir()
        extract_members(path, content)
        move_into_place(content, target)
    return target
