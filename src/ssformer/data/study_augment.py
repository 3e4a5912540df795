"""The reproduction study's training augmentation, exactly (``TRAIN.AUGMENT: study``).

``semseg/augmentations.py`` (``get_train_augmentation(size, seg_fill=IGNORE_LABEL)``) of the
study's framework, step by step, with its random draws from the same generators in the same
order (Python ``random`` for the geometry, NumPy for the enhancement and the morphology), so
that seeding both gives the study's output pixel for pixel:

1. ``Resize``: aspect kept, shorter side 352, sides up to multiples of 32 (done once, in the
   data cache: :func:`ssformer.data.cache.load_study_pair`);
2. ``RandomResizedCrop(352, scale=(0.75, 1.25), seg_fill=255)``: ``ratio ~ U(0.75, 1.25)``,
   the image rescaled so that its shorter side is about ``int(352 ratio)`` (bilinear, mask
   nearest), a random crop with ``randint(0, margin + 1)`` offsets (inclusive: it can drop a
   row or column), then padding at the bottom and right: image 0, mask 255;
3. flips left-right then up-down, each ``p = 0.5``;
4. ``RandomRotation(359, p=0.3, seg_fill=255)``: the angle ``U(-359, 359)`` is drawn first, the
   rotation (bilinear, mask nearest, corners: image 0, mask 255) applied with ``p = 0.3``;
5. ``RandomImageEnhance``: PIL's contrast, brightness and sharpness in an order shuffled in
   place on every call (so the order carries over from one image to the next within an epoch:
   :meth:`StudyTrainTransform.start_epoch`), each applied with ``p = 0.5`` and factor
   ``1 + U(0, 0.1)``;
6. ``RandomDilationErosion``: the mask, a ``[1, H, W]`` array, dilated (key < 1/3) or eroded
   (< 2/3) by ``cv2`` with an elliptic kernel of size 2-4 (always drawn); ``cv2`` reads that
   array as one row of ``H`` columns with ``W`` channels, so the study's morphology acts along
   the height only;
7. ``Normalize`` (/ 255, ImageNet mean and std); label ``(mask[0] / 255).long()``.

What the study's losses then see: labels are 0/1 and never its ``IGNORE_LABEL`` 255, because
the label is taken after the fill: the padded and rotated-in mask pixels (filled with 255)
become **polyp**, and ``ignore_index=255`` of its cross-entropy never applies. This is kept, as
the study trained with it; mask pixels below 255 (JPEG edges) are background.
"""

from __future__ import annotations

import random

import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance

from ssformer.data.study_resize import normalise_uint8, resize_uint8

__all__ = ["STUDY_AUGMENT_VERSION", "StudyTrainTransform"]

STUDY_AUGMENT_VERSION = "study-exact-1"
"""Recorded in ``last.pth``: runs started before this exact port (an approximation, from a
square cache) are told on resume that their augmentation changed."""


class StudyTrainTransform:
    """``(image uint8 [H,W,3], mask uint8 [H,W] raw) -> (image [3,h,w], label [1,h,w])`` as the
    study's ``get_train_augmentation(size, seg_fill)`` after its ``Resize`` (see the module
    docstring); ``size`` is ``TRAIN.IMAGE_SIZE``."""

    def __init__(
        self,
        size: tuple[int, int],
        scale: tuple[float, float] = (0.75, 1.25),
        seg_fill: int = 255,
        degrees: float = 359.0,
        rotate_p: float = 0.3,
    ) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.scale = scale
        self.seg_fill = seg_fill
        self.degrees = degrees
        self.rotate_p = rotate_p
        self.start_epoch()

    def start_epoch(self) -> None:
        """Put the enhancement order back to the study's initial one. The study's
        ``RandomImageEnhance`` shuffles its list in place on every call, so the order carries
        over from image to image; its DataLoader workers start every epoch from a fresh copy of
        the transform, so the order starts afresh each epoch (the trainer calls this before
        every epoch; a resumed run thus replays an epoch exactly)."""
        self.enhance_methods = [
            ImageEnhance.Contrast,
            ImageEnhance.Brightness,
            ImageEnhance.Sharpness,
        ]

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        img = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        lbl = torch.from_numpy(np.ascontiguousarray(mask))[None]
        img, lbl = self._resized_crop(img, lbl)
        if random.random() < 0.5:
            img, lbl = img.flip(-1), lbl.flip(-1)
        if random.random() < 0.5:
            img, lbl = img.flip(-2), lbl.flip(-2)
        img, lbl = self._rotation(img, lbl)
        img = self._enhance(img)
        lbl = self._dilate_or_erode(lbl)
        return normalise_uint8(img), (lbl[0:1] == 255).to(torch.float32)  # (mask[0] / 255).long()

    def _resized_crop(
        self, img: torch.Tensor, lbl: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = img.shape[1:]
        target_h, target_w = self.size
        ratio = random.random() * (self.scale[1] - self.scale[0]) + self.scale[0]
        scaled = int(target_h * ratio), int(target_w * 4 * ratio)
        factor = min(max(scaled) / max(height, width), min(scaled) / min(height, width))
        new_h, new_w = int(height * factor + 0.5), int(width * factor + 0.5)
        img = resize_uint8(img, (new_h, new_w), "bilinear")
        lbl = resize_uint8(lbl, (new_h, new_w), "nearest")
        y1 = random.randint(0, max(img.shape[1] - target_h, 0) + 1)
        x1 = random.randint(0, max(img.shape[2] - target_w, 0) + 1)
        img = img[:, y1 : y1 + target_h, x1 : x1 + target_w]
        lbl = lbl[:, y1 : y1 + target_h, x1 : x1 + target_w]
        pad_h, pad_w = target_h - img.shape[1], target_w - img.shape[2]
        if pad_h or pad_w:  # bottom and right: image 0, mask seg_fill
            img = torch.nn.functional.pad(img, (0, pad_w, 0, pad_h), value=0)
            lbl = torch.nn.functional.pad(lbl, (0, pad_w, 0, pad_h), value=self.seg_fill)
        return img, lbl

    def _rotation(self, img: torch.Tensor, lbl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.transforms import functional as TF

        angle = random.random() * 2 * self.degrees - self.degrees
        if random.random() < self.rotate_p:
            img = TF.rotate(img, angle, TF.InterpolationMode.BILINEAR, False, fill=0)
            lbl = TF.rotate(lbl, angle, TF.InterpolationMode.NEAREST, False, fill=self.seg_fill)
        return img, lbl

    def _enhance(self, img: torch.Tensor) -> torch.Tensor:
        np.random.shuffle(self.enhance_methods)
        pil = Image.fromarray(img.permute(1, 2, 0).numpy())
        for method in self.enhance_methods:
            if np.random.random() > 0.5:
                factor = float(1 + np.random.random() / 10)
                pil = method(pil).enhance(factor)
        return torch.from_numpy(np.array(pil)).permute(2, 0, 1)

    def _dilate_or_erode(self, lbl: torch.Tensor) -> torch.Tensor:
        gt = lbl.numpy().copy()  # [1, H, W]: cv2 reads one row of H columns with W channels
        key = np.random.random()
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (np.random.randint(2, 5),) * 2)
        if key < 2 / 3:
            operation = cv2.dilate if key < 1 / 3 else cv2.erode
            # cv2 handles at most 512 channels; the channels (columns of the mask) do not mix,
            # so blocks of 512 give the study's result for any width
            gt = np.concatenate(
                [operation(gt[..., i : i + 512], kernel) for i in range(0, gt.shape[-1], 512)],
                axis=-1,
            )
        return torch.from_numpy(np.ascontiguousarray(gt)).reshape(lbl.shape)
