"""Atomic file writes: a reader (``tail -f``, a resumed run, a killed process) never sees half a
file. Every text file the package writes (configs, manifests, ledgers, metrics, reports) goes
through :func:`write_text_atomic`, every checkpoint through :func:`save_torch_atomic` (a second
copy of a file through :func:`copy_file_atomic`); other writers get a temporary path from
:func:`atomic_target`.

A write that fails (disk full, a read-only folder, no permission, a file-size limit) raises
:class:`~ssformer.errors.StorageError` naming the path, the reason and the free space; the file
at ``path`` is then as it was before and the temporary file is removed. A writer killed mid-write
leaves ``.<name>.<pid>.tmp``; :func:`remove_stale_temporaries` removes those of dead processes.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssformer.errors import StorageError

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DENIED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")


def _free_space(path: Path) -> str:
    folder = path if path.is_dir() else path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.0f} {unit} free" if unit == "bytes" else f"{free:.1f} {unit} free"
        free /= 1024
    return "free space unknown"


def storage_error(path: str | os.PathLike[str], error: BaseException) -> StorageError:
    """The :class:`StorageError` for a failed write of ``path`` (an ``OSError``, or torch's
    ``RuntimeError`` from a stream that could not be written)."""
    path = Path(path)
    code = getattr(error, "errno", None)
    reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0]
    if "unexpected pos" in reason or "write failed" in reason:  # torch's stream writer
        reason = "the file could not be written completely (disk full or a file-size limit)"
    if code in _DENIED:
        fix = "make that folder writable or choose another output folder (e.g. SAVE_DIR)"
    elif code in _FULL:
        fix = "free some space (or raise the file-size limit) or choose another disk for SAVE_DIR"
    else:
        fix = "check that the disk is writable and has space, or choose another SAVE_DIR"
    return StorageError(
        f"could not write {path}: {reason} ({_free_space(path)} on {path.parent}); {fix}. "
        f"{path.name} is as it was before this write"
    )


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove ``folder``'s temporary files (``.<name>.<pid>.tmp``) of processes that are no
    longer running (a writer killed mid-write); returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _alive(int(match[1])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


@contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path in ``path``'s folder (created) to write to; renamed onto ``path`` when
    the block ends without an error, removed in every case otherwise."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise storage_error(path, error) from error
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk. Returns the path."""
    with atomic_target(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def save_torch_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj)`` to ``path`` atomically. Returns the path."""
    import torch

    with atomic_target(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as error:  # torch's stream writer: "file write failed", ...
            raise storage_error(path, error) from error
    return Path(path)


def copy_file_atomic(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Copy the file ``source`` to ``path`` atomically (bytes only). Returns the path."""
    with atomic_target(path) as tmp:
        shutil.copyfile(source, tmp)
    return Path(path)
