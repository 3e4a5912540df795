"""Polyp segmentation datasets: a folder of image/mask pairs, and the PraNet test sets.

One class, :class:`PolypDataset`, reads a folder with ``images/`` (or ``image/``) and ``masks/``
(or ``mask/``); pairs files by stem (``x.jpg`` with ``x.png``); binarises masks at grey value >
128 (Kvasir's JPEG masks are not exactly 0/255); and returns per item a dict with ``image`` (float32
``[3,H,W]``, ImageNet-normalised), ``mask`` (float32 ``[1,H,W]`` in {0, 1}) and ``index``.
Evaluation at the original resolution uses :meth:`PolypDataset.original_mask`.

Which folders a protocol trains and tests on is decided by :mod:`ssformer.data.protocols`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssformer.data.cache import CACHE_DIR_NAME, RESIZE_RULES, PairCache
from ssformer.data.decode import decode_mask_grey, read_image_size
from ssformer.data.layout import image_files
from ssformer.data.transforms import build_eval_transform
from ssformer.errors import DataError
from ssformer.image_size import as_size
from ssformer.io.paths import why_not_folder
from ssformer.registry import IMAGE_DIR_NAMES, IMAGE_SUFFIXES, MASK_DIR_NAMES

__all__ = ["PairTransform", "PolypDataset", "find_pairs", "holdout_indices", "innermost"]


PairTransform = Callable[[np.ndarray, np.ndarray], tuple[torch.Tensor, torch.Tensor]]
"""``(image uint8 [H,W,3], mask uint8 [H,W] 0..255) -> (image [3,H,W], mask [1,H,W])``."""


def _pick_dir(root: Path, names: tuple[str, ...], what: str) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise DataError(
        f"{root} has no {what} folder (looked for {', '.join(names)}); point the dataset at the "
        "folder holding images/ and masks/"
    )


def _image_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    duplicates: list[str] = []
    for path in image_files(folder):
        if path.stem in files:
            duplicates.append(path.name)
        files[path.stem] = path
    if duplicates:
        raise DataError(
            f"{folder} holds several files with the same stem ({', '.join(duplicates[:5])}); "
            "keep one per stem"
        )
    return files


def find_pairs(root: Path) -> list[tuple[Path, Path]]:
    """Image/mask path pairs of ``root`` sorted by stem; DataError naming any unpaired file."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"dataset folder {root} {why_not_folder(root)}; give the folder that holds "
            "images/ and masks/"
        )
    images_dir = _pick_dir(root, IMAGE_DIR_NAMES, "images")
    masks_dir = _pick_dir(root, MASK_DIR_NAMES, "masks")
    images, masks = _image_files(images_dir), _image_files(masks_dir)
    no_mask = sorted(images[s].name for s in images.keys() - masks.keys())
    no_image = sorted(masks[s].name for s in masks.keys() - images.keys())
    if no_mask or no_image:
        details = []
        if no_mask:
            details.append(f"images without a mask in {masks_dir}: {', '.join(no_mask[:10])}")
        if no_image:
            details.append(f"masks without an image in {images_dir}: {', '.join(no_image[:10])}")
        raise DataError(
            f"unpaired files in {root}: {'; '.join(details)} (run `ssformer check-data {root}`)"
        )
    if not images:
        raise DataError(f"{images_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [(images[s], masks[s]) for s in sorted(images)]


class PolypDataset(torch.utils.data.Dataset):
    """Image/mask pairs of one folder, resized to ``image_size`` (side or ``(h, w)``).

    ``transform`` takes the resized uint8 pair and returns tensors (see
    :mod:`ssformer.data.transforms`); ``None`` means resize + ImageNet normalisation.
    ``cache=True`` decodes each pair once and keeps it under ``cache_dir`` (default
    ``root/.cache``; in memory if that cannot be written); ``cache=False`` decodes every time.
    """

    def __init__(
        self,
        root: Path,
        image_size: int | tuple[int, int],
        transform: PairTransform | None = None,
        cache: bool = True,
        cache_dir: Path | None = None,
        resize: str = "square",
    ) -> None:
        self.root = Path(root)
        self.image_size = as_size(image_size)
        self.pairs = find_pairs(self.root)
        self.names: list[str] = [image.stem for image, _ in self.pairs]
        self.transform: PairTransform = (
            transform if transform is not None else build_eval_transform(self.image_size)
        )
        if resize not in RESIZE_RULES:
            raise DataError(f"resize rule {resize!r}: choose one of {', '.join(RESIZE_RULES)}")
        self.resize = resize
        self.cache: PairCache | None = None
        if cache:
            folder = Path(cache_dir) if cache_dir is not None else self.root / CACHE_DIR_NAME
            self.cache = PairCache(folder, self.image_size, resize)

    def __len__(self) -> int:
        return len(self.pairs)

    def resized_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The pair at ``image_size`` before the transform: uint8 ``[h,w,3]``, uint8 ``[h,w]``."""
        image_path, mask_path = self.pairs[index]
        if self.cache is not None:
            return self.cache.get(image_path, mask_path)
        return RESIZE_RULES[self.resize](image_path, mask_path, self.image_size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.pairs):
            raise IndexError(f"index {index} out of range for {len(self.pairs)} pairs")
        image, mask = self.resized_pair(index)
        image_t, mask_t = self.transform(image, mask)
        return {"image": image_t, "mask": mask_t, "index": index}

    def original_size(self, index: int) -> tuple[int, int]:
        """``(h, w)`` of the original image (read from its header, not decoded)."""
        return read_image_size(self.pairs[index][0])

    def original_mask(self, index: int) -> np.ndarray:
        """The original mask's grey pixels, uint8 ``[H, W]``, as every evaluation dataset gives
        them (each metric convention takes its own GT rule from them: > 128, or == 255)."""
        return np.array(decode_mask_grey(self.pairs[index][1]))

    def __repr__(self) -> str:
        return (
            f"PolypDataset(root={str(self.root)!r}, n={len(self)}, image_size={self.image_size}, "
            f"cache={self.cache is not None})"
        )


def innermost(dataset: Any) -> tuple[Any, list[int]]:
    """The dataset inside any ``torch.utils.data.Subset`` wrappers and, for each position of
    ``dataset``, the index into it (the ``index`` its items carry)."""
    indices = list(range(len(dataset)))
    while isinstance(dataset, torch.utils.data.Subset):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    return dataset, indices


def holdout_indices(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(held_out, rest)``: a seeded ``fraction`` (at least one) of ``range(count)``, sorted;
    the PraNet protocol's validation part of TrainDataset."""
    order = np.random.default_rng(seed).permutation(count)
    n_held = max(1, round(fraction * count))
    return sorted(order[:n_held].tolist()), sorted(order[n_held:].tolist())
