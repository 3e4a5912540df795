"""The per-image data of an evaluation, matched by image name across runs.

``ssformer val`` writes one row per test image into ``eval_*.json`` (``per_image``): its name,
its value of every per-image metric and, when a pooled metric was computed, its 2x2 pooled
counts under ``confusion_2cls`` (rows GT, columns prediction). :func:`image_data` reads what
one metric needs from those rows; :func:`align` puts several runs' data in one image order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ssformer.errors import ConfigError
from ssformer.report.statistics import POOLED_KEYS

__all__ = ["CONFUSION_KEY", "Alignment", "align", "image_data"]

CONFUSION_KEY = "confusion_2cls"
"""The row key of an image's pooled counts (as :mod:`ssformer.engine.evaluate` writes it)."""


def _counts(value: Any) -> np.ndarray | None:
    """A 2x2 matrix of non-negative counts, or ``None`` for anything else."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.shape != (2, 2) or not np.all(np.isfinite(array)) or np.any(array < 0):
        return None
    return array


def image_data(rows: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    """``{image name: data}`` of metric ``key``: its value (a per-image metric) or the image's
    2x2 counts (a pooled metric); rows without a usable value are left out."""
    data: dict[str, Any] = {}
    for row in rows:
        name = row.get("name")
        if not isinstance(name, str):
            continue
        if key in POOLED_KEYS:
            counts = _counts(row.get(CONFUSION_KEY))
            if counts is not None:
                data[name] = counts
            continue
        value = row.get(key)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and math.isfinite(float(value)):
            data[name] = float(value)
    return data


class Alignment:
    """Several runs' data of one metric on the images all of them scored.

    ``names``: the shared images (in the first run's order); ``arrays``: one array per run,
    rows in that order; ``missing``: per run, the images the others scored and it did not.
    """

    def __init__(self, tables: Sequence[dict[str, Any]]) -> None:
        if not tables:
            raise ConfigError("nothing to align: no run was given")
        everywhere = set(tables[0]).intersection(*tables[1:])
        self.names: list[str] = [name for name in tables[0] if name in everywhere]
        self.arrays: list[np.ndarray] = [
            np.asarray([table[name] for name in self.names], dtype=np.float64) for table in tables
        ]
        union = set().union(*tables)
        self.missing: list[list[str]] = [sorted(union - set(table)) for table in tables]


def align(tables: Sequence[dict[str, Any]]) -> Alignment:
    """See :class:`Alignment`."""
    return Alignment(tables)
