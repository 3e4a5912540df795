"""The reproduction study's ``Resize`` (``semseg/augmentations.py``), shared by its evaluation
recipe and its training augmentation: the shorter side scaled to ``size`` with Python
``round``, then both sides resized up to the next multiple of 32 (two resizes; image bilinear,
mask nearest, on uint8 tensors without antialiasing, as the study's torchvision did for
tensors). 530x622 -> 352x416, 1072x1350 -> 352x448, 288x384 -> 352x480. Also the
normalisation every original pipeline ends with (:func:`normalise_uint8`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ssformer.image_size import PAPER_SIDE
from ssformer.registry import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["normalise_uint8", "resize_uint8", "study_eval_size", "study_resize"]

_MEAN = torch.tensor(IMAGENET_MEAN)[:, None, None]
_STD = torch.tensor(IMAGENET_STD)[:, None, None]


def normalise_uint8(image: torch.Tensor) -> torch.Tensor:
    """uint8 ``[3, H, W]`` -> float32: divided by 255, then ImageNet mean and std subtracted
    and divided (the originals' ``Normalize`` / ``test.py`` order)."""
    return (image.to(torch.float32) / 255.0 - _MEAN) / _STD


def study_eval_size(height: int, width: int, size: int = PAPER_SIDE) -> tuple[tuple[int, int], ...]:
    """The study ``Resize``'s two target sizes for an image of ``height x width``: the shorter
    side scaled to ``size`` (Python ``round``), then each side up to a multiple of 32."""
    factor = size / min(height, width)
    first = (round(height * factor), round(width * factor))
    aligned = (math.ceil(first[0] / 32) * 32, math.ceil(first[1] / 32) * 32)
    return first, aligned


def resize_uint8(array: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """torchvision's ``TF.resize`` of a uint8 ``[C, H, W]`` tensor as the study's torchvision
    did it (no antialiasing): interpolate in float32, round, back to uint8; ``nearest`` is the
    legacy nearest. (torchvision >= 0.16's v2 kernels resize uint8 natively and round
    differently, for a fifth of the pixels by one grey level.)"""
    x = array[None].to(torch.float32)
    if mode == "bilinear":
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False).round_()
    else:
        x = F.interpolate(x, size=tuple(size), mode="nearest")
    return x[0].clamp_(0, 255).to(torch.uint8)


def study_resize(
    image: torch.Tensor, mask: torch.Tensor, size: int = PAPER_SIDE
) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's ``Resize(size)`` of a uint8 image ``[3, H, W]`` and mask ``[C, H, W]``."""
    first, aligned = study_eval_size(image.shape[1], image.shape[2], size)
    image = resize_uint8(resize_uint8(image, first, "bilinear"), aligned, "bilinear")
    mask = resize_uint8(resize_uint8(mask, first, "nearest"), aligned, "nearest")
    return image, mask
