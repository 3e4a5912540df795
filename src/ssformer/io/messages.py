"""Progress notes of long operations (downloads, installs) on standard error."""

from __future__ import annotations

import sys

__all__ = ["note"]


def note(message: str, quiet: bool = False) -> None:
    """Print ``message`` to standard error (flushed) unless ``quiet``."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)
