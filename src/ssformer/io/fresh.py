"""Fresh output names: a command that writes results never replaces the user's files.

:func:`fresh_folder` gives ``out`` when it is missing or empty, else the first missing or empty
``out-N`` (N >= 2); :func:`fresh_file` gives ``path`` when it does not exist, else the first
free ``stem-N.suffix``. Callers say which name they used.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["fresh_file", "fresh_folder"]


def fresh_folder(out: Path) -> Path:
    """``out``, or the first missing or empty ``out-N``; created."""
    candidate, number = Path(out), 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        number += 1
        candidate = Path(out).with_name(f"{Path(out).name}-{number}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def fresh_file(path: Path) -> Path:
    """``path`` if nothing is there, else the first free ``stem-N.suffix`` beside it."""
    path = Path(path)
    candidate, number = path, 1
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate
