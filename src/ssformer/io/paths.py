"""Say what is wrong with a path the user gave: missing, or a file where a folder is wanted
(or the reverse), instead of "does not exist" for both."""

from __future__ import annotations

from pathlib import Path

__all__ = ["why_not_file", "why_not_folder"]


def why_not_folder(path: Path) -> str:
    """``is a file, not a folder`` or ``does not exist`` (for a path that is not a folder)."""
    if Path(path).is_file():
        return "is a file, not a folder"
    return "does not exist" if not Path(path).exists() else "is not a folder"


def why_not_file(path: Path) -> str:
    """``is a folder, not a file`` or ``does not exist`` (for a path that is not a file)."""
    if Path(path).is_dir():
        return "is a folder, not a file"
    return "does not exist" if not Path(path).exists() else "is not a regular file"
