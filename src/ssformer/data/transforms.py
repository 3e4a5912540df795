"""Joint image/mask transforms on resized uint8 arrays (the output of the data cache).

Two training recipes (``TRAIN.AUGMENT``):

``official`` (the SSFormer repository's ``configs/train.yaml`` + ``utils/custom_transforms.py``),
:class:`TrainTransform`: resize 352; with p=0.5 scale by s ~ U(0.75, 1.25) about the centre and
crop/pad back to 352; left-right and up-down flips, each p=0.5; with p=0.5 rotate by an integer
angle in [0, 359] about the centre (black fill); contrast, brightness and sharpness in random
order, each with p=0.5 and factor 1 + U(0, 0.1) (PIL ``ImageEnhance`` formulas); mask dilation
(p=1/3) or erosion (p=1/3) with an elliptic kernel of size 2-4 (``randint(2, 5)``); ImageNet
normalisation. The scale, flips and rotation of one sample are composed into one affine matrix
and applied with a single ``cv2.warpAffine`` per array (one interpolation instead of three,
several times faster than chained torchvision or PIL ops); the mask is warped bilinearly as
0..255 coverage and thresholded at 128 at the end. Random numbers come from torch's generator,
so ``torch.manual_seed`` and DataLoader worker seeding make the pipeline reproducible.

``study`` (the reproduction study's ``get_train_augmentation``), exactly, with its own random
draws: :class:`ssformer.data.study_augment.StudyTrainTransform`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ssformer import registry
from ssformer.data.study_augment import StudyTrainTransform
from ssformer.image_size import PAPER_SIDE, as_size

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EvalTransform",
    "TrainTransform",
    "build_eval_transform",
    "build_train_transform",
    "eval_image_tensor",
    "to_tensors",
]

IMAGENET_MEAN = np.array(registry.IMAGENET_MEAN, np.float32)
IMAGENET_STD = np.array(registry.IMAGENET_STD, np.float32)
_SCALE = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)  # normalised = x * _SCALE - _OFFSET
_OFFSET = (IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # PIL convert("L")
_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0  # PIL ImageFilter.SMOOTH


def _resize_to(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]):
    if image.shape[:2] == size:
        return image, mask
    return _resize_array(image, size), _resize_array(mask, size)


def _resize_array(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    interpolation = cv2.INTER_AREA if array.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(array, (w, h), interpolation=interpolation)


def eval_image_tensor(image: np.ndarray, size: int | tuple[int, int]) -> torch.Tensor:
    """An RGB uint8 image ``[H,W,3]`` as the evaluation pipeline feeds it to a model:
    resized to ``size`` like :class:`EvalTransform` and normalised, ``[3,h,w]`` float32."""
    size = as_size(size)
    if image.shape[:2] != size:
        image = _resize_array(image, size)
    return to_tensors(image, np.zeros(image.shape[:2], np.uint8))[0]


_SCALE_T = torch.from_numpy(_SCALE)[:, None, None]
_OFFSET_T = torch.from_numpy(_OFFSET)[:, None, None]


def to_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``[H,W,3]`` + mask 0..255 ``[H,W]`` -> normalised ``[3,H,W]``, ``[1,H,W]`` in {0,1}."""
    h, w = image.shape[:2]
    image_t = torch.empty((3, h, w), dtype=torch.float32)
    # np.require copies only arrays torch cannot share (read-only cache maps, strided views)
    image_t.copy_(torch.from_numpy(np.require(image, requirements=("C", "W"))).permute(2, 0, 1))
    image_t.mul_(_SCALE_T).sub_(_OFFSET_T)
    mask_t = torch.from_numpy(np.require(mask, requirements=("C", "W"))[None] >= 128).float()
    return image_t, mask_t


@dataclass(frozen=True)
class EvalTransform:
    """Resize (when the input is not yet at ``size``) and normalise."""

    size: tuple[int, int]

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = _resize_to(image, mask, self.size)
        return to_tensors(image, mask)


@dataclass(frozen=True)
class TrainTransform:
    """The official augmentation recipe (see the module docstring)."""

    size: tuple[int, int]
    scale_range: tuple[float, float] = (0.75, 1.25)
    kernel_range: tuple[int, int] = (2, 5)

    def _geometry(self, draw: torch.Tensor) -> np.ndarray:
        """3x3 matrix mapping input pixel coordinates to output pixel coordinates.

        ``draw``: 0 scale, 1 scale on/off, 2 left-right flip, 3 up-down flip, 4 angle, 5
        rotation on/off (6 unused, kept so that the draws of a seed stay those of earlier
        versions).
        """
        h, w = self.size
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        lo, hi = self.scale_range
        matrix = np.eye(3)
        scale = lo + float(draw[0]) * (hi - lo)
        if draw[1] < 0.5:  # scale about the centre, centre crop/pad back
            matrix = _about(cx, cy, np.diag([scale, scale, 1.0])) @ matrix
        if draw[2] < 0.5:
            matrix = _about(cx, cy, np.diag([-1.0, 1.0, 1.0])) @ matrix
        if draw[3] < 0.5:
            matrix = _about(cx, cy, np.diag([1.0, -1.0, 1.0])) @ matrix
        angle, rotate = float(int(float(draw[4]) * 359)), draw[5] < 0.5
        if rotate:
            rotation = np.vstack([cv2.getRotationMatrix2D((cx, cy), angle, 1.0), [0, 0, 1]])
            matrix = rotation @ matrix
        return matrix

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = _resize_to(image, mask, self.size)
        h, w = self.size
        draw = torch.rand(8)
        matrix = self._geometry(draw)
        if not np.allclose(matrix, np.eye(3)):
            # one 4-channel warp for image + mask (bilinear; the mask is thresholded later)
            stacked = np.concatenate([image, mask[..., None]], axis=2)
            stacked = cv2.warpAffine(
                stacked, matrix[:2], (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0)
            )
            image, mask = stacked[..., :3], stacked[..., 3]
        pixels = _enhance(np.ascontiguousarray(image))
        mask = _dilate_or_erode(mask, float(draw[7]))
        return to_tensors(pixels, mask)


def _about(cx: float, cy: float, linear: np.ndarray) -> np.ndarray:
    """``linear`` applied about the point ``(cx, cy)``."""
    to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    back = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1.0]])
    return back @ linear @ to_origin


def _enhance(image: np.ndarray) -> np.ndarray:
    """PIL-style contrast, brightness, sharpness in random order, each p=0.5, factor 1+U(0,.1)."""
    order = torch.randperm(3).tolist()
    factors = 1.0 + torch.rand(3) / 10.0
    apply = torch.rand(3) < 0.5
    if not bool(apply.any()):
        return image
    pixels = image
    for method in order:  # uint8 blends with rounding and saturation, as PIL does
        if not apply[method]:
            continue
        factor = float(factors[method])
        if method == 0:  # contrast: blend with the mean grey level
            grey = float(int(float(np.dot(cv2.mean(pixels)[:3], _LUMA)) + 0.5))
            pixels = cv2.addWeighted(pixels, factor, pixels, 0.0, grey * (1.0 - factor))
        elif method == 1:  # brightness: blend with black
            pixels = cv2.addWeighted(pixels, factor, pixels, 0.0, 0.0)
        else:  # sharpness: blend with the SMOOTH-filtered image
            smooth = cv2.filter2D(pixels, -1, _SMOOTH, borderType=cv2.BORDER_REPLICATE)
            pixels = cv2.addWeighted(pixels, factor, smooth, 1.0 - factor, 0.0)
    return pixels


def _dilate_or_erode(mask: np.ndarray, key: float) -> np.ndarray:
    """Dilate (key < 1/3) or erode (key < 2/3) with an elliptic kernel of size 2..4."""
    if key >= 2 / 3:
        return mask
    size = int(torch.randint(2, 5, (1,)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate(mask, kernel) if key < 1 / 3 else cv2.erode(mask, kernel)


def build_train_transform(
    size: int | tuple[int, int] = PAPER_SIDE, recipe: str = "official"
) -> TrainTransform | StudyTrainTransform:
    """Training augmentation: ``recipe`` is ``"official"`` (SSFormer repo) or ``"study"``
    (:class:`~ssformer.data.study_augment.StudyTrainTransform`, which takes the pairs of the
    ``study`` resize rule of the data cache)."""
    if recipe not in registry.AUGMENTS:
        from ssformer.errors import ConfigError

        raise ConfigError(
            f"unknown augmentation recipe {recipe!r}: use {' or '.join(registry.AUGMENTS)}"
        )
    if recipe == "study":
        return StudyTrainTransform(as_size(size))
    return TrainTransform(size=as_size(size))


def build_eval_transform(size: int | tuple[int, int] = PAPER_SIDE) -> EvalTransform:
    """Evaluation: resize + ImageNet normalisation."""
    return EvalTransform(size=as_size(size))
