"""Atomic file writes: a reader (``tail -f``, a resumed run, a killed process) never sees half a
file. Every text file the package writes (configs, manifests, ledgers, metrics, reports) goes
through :func:`write_text_atomic`, every checkpoint through :func:`save_torch_atomic` (a second
copy of a file through :func:`copy_file_atomic`); other writers get a temporary path from
:func:`atomic_target`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path in ``path``'s folder (created) to write to; renamed onto ``path`` when
    the block ends without an error, removed in every case otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
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
        torch.save(obj, tmp)
    return Path(path)


def copy_file_atomic(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Copy the file ``source`` to ``path`` atomically (bytes only). Returns the path."""
    with atomic_target(path) as tmp:
        shutil.copyfile(source, tmp)
    return Path(path)
