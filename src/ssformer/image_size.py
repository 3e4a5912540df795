"""Image sizes: the paper's input size, and the one reader of a size written as a side or as
``(height, width)``. Torch-free (the config reads its defaults here)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PAPER_SIDE", "PAPER_SIZE", "SIZE_RANGE", "as_size", "format_size", "size_or_none"]

PAPER_SIDE = 352
"""The input side of the paper's and the reproduction study's experiments (352x352)."""

PAPER_SIZE: tuple[int, int] = (PAPER_SIDE, PAPER_SIDE)

SIZE_RANGE = (32, 4096)
"""The inference sizes ``--size`` accepts (a side under 32 leaves the last stage of the backbone
no pixel; one over 4096 needs more memory than any GPU has at these models' widths)."""


def as_size(size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` of a side (a square) or of a ``(height, width)`` pair."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


def size_or_none(value: object) -> tuple[int, int] | None:
    """``(height, width)`` when ``value`` is a pair of integers (as a checkpoint or a config
    records it), else ``None``."""
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return int(value[0]), int(value[1])
    return None


def format_size(size: Sequence[int]) -> str:
    """``HxW``."""
    return f"{size[0]}x{size[1]}"
