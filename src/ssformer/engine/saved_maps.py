"""``ssformer val --save-maps DIR``: the 8-bit maps other evaluation tools read.

PraNet's MATLAB toolbox, PySODMetrics-based scripts and Polyp-PVT's evaluation read one grey
PNG per test image, ``DIR/<test set>/<image stem>.png``, at the image's own size: the map the
toolbox recipe computes (:func:`ssformer.data.recipes.toolbox_map`: the probability resized to
the image size, min-max normalised, times 255, rounded). :class:`MapFolder` writes them, each
atomically, into a folder it refuses to mix with earlier files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ssformer.errors import ConfigError
from ssformer.io.atomic import atomic_target

__all__ = ["MapFolder", "map_folders"]


class MapFolder:
    """Where the maps of one test set go: ``folder/<stem>.png``, mode L (8-bit grey).

    Raises :class:`ssformer.errors.ConfigError` when ``folder`` is a file or already holds
    files: maps of another evaluation (or anything else) are never overwritten or mixed in.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"--save-maps: {self.folder} is a file; give a folder")
        if self.folder.is_dir() and any(self.folder.iterdir()):
            raise ConfigError(
                f"--save-maps: {self.folder} already holds files; choose another folder (or "
                "move those files away): maps are never written over earlier ones"
            )
        self.written: list[Path] = []

    def write(self, stem: str, saved_map: torch.Tensor) -> Path:
        """Write one uint8 ``[H, W]`` map as ``<stem>.png``; returns its path."""
        array = saved_map.detach().cpu().numpy()
        if array.dtype != np.uint8 or array.ndim != 2:
            raise ValueError(f"a saved map is uint8 [H, W], got {array.dtype} {array.shape}")
        path = self.folder / f"{stem}.png"
        with atomic_target(path) as tmp:
            Image.fromarray(array, mode="L").save(tmp, format="PNG")
        self.written.append(path)
        return path


def map_folders(root: Path | None, sets: Iterable[str], dataset_name: str) -> dict[str, MapFolder]:
    """``{evaluation set: MapFolder}`` under ``root`` (``{}`` without one): ``root/<test set>``,
    the split protocol's ``test``/``val`` named after the data set (``dataset_name``), the
    PraNet sets after themselves. Every folder is checked before any map is written."""
    if root is None:
        return {}
    return {
        name: MapFolder(Path(root) / (dataset_name if name in ("test", "val") else name))
        for name in sets
    }
