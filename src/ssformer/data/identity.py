"""Which published data set a folder of images is, from its file names and count alone.

A result is put beside a published number only when its data is that data set. A
``DATASET.NAME`` is a label anyone can type; the file list is evidence: Kvasir-SEG (Jha et al.,
MMM 2020) is 1000 JPEG frames named by 25-character ids such as ``cju0qkwl35piu0993l0dewei2``;
CVC-ClinicDB (Bernal et al., 2015) is 612 frames named ``1`` .. ``612``; the synthetic generator
names its frames ``synth-NNNN``. :func:`identify_dataset` returns the name the published tables
use, ``synthetic``, or ``None`` (custom or incomplete data), with the reason. ``ssformer split``
records the answer in its manifest (``split.json``, key ``identity``) for the report to read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = ["KNOWN_DATASETS", "DatasetIdentity", "identify_dataset"]

_KVASIR_ID = re.compile(r"^c[a-z0-9]{24}$")
_SYNTHETIC_ID = re.compile(r"^synth-\d{4}$")

KNOWN_DATASETS: dict[str, int] = {"Kvasir-SEG": 1000, "CVC-ClinicDB": 612}
"""Published data sets that a split folder can be verified as, with their image counts."""


@dataclass(frozen=True)
class DatasetIdentity:
    """``verified_as``: the published name, ``synthetic`` or ``None``; ``reason``: why."""

    verified_as: str | None
    count: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def identify_dataset(image_names: Sequence[str]) -> DatasetIdentity:
    """The identity of a data set from the file names of all its images (before a split)."""
    stems = [name.rsplit(".", 1)[0] for name in image_names]
    count = len(stems)
    if stems and all(_SYNTHETIC_ID.match(s) for s in stems):
        return DatasetIdentity("synthetic", count, "frames of the synthetic generator")
    if all(_KVASIR_ID.match(s) for s in stems) and count:
        if count == KNOWN_DATASETS["Kvasir-SEG"]:
            return DatasetIdentity("Kvasir-SEG", count, "1000 frames with Kvasir-SEG ids")
        return DatasetIdentity(None, count, f"Kvasir-SEG ids but {count} frames, not 1000")
    numbers = sorted(int(s) for s in stems if s.isdigit())
    if numbers and len(numbers) == count:
        expected = KNOWN_DATASETS["CVC-ClinicDB"]
        if numbers == list(range(1, expected + 1)):
            return DatasetIdentity("CVC-ClinicDB", count, "frames 1..612 of CVC-ClinicDB")
        return DatasetIdentity(None, count, f"numbered frames, but not exactly 1..{expected}")
    return DatasetIdentity(None, count, "file names of no published data set (custom data)")
