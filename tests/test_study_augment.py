"""The study's training augmentation, exactly: our ``StudyTrainTransform`` against a port of the
study's ``semseg/augmentations.py`` (``get_train_augmentation(size, seg_fill=255)``,
RahulSinghalChicago/Reprod_scformer), both drawing from Python's and NumPy's generators seeded
alike. The port uses the study's torchvision calls (with ``antialias=False``, the default its
torchvision had for tensors)."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from ssformer.data.cache import load_study_pair
from ssformer.data.study_augment import StudyTrainTransform

# the port converts tensors with np.array(), as the study did
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class PortedStudyAugmentation:
    """``RandomResizedCrop(size, (0.75, 1.25), seg_fill)``, ``RandomHorizontalFlip``,
    ``RandomVerticalFlip``, ``RandomRotation(359, p=0.3, seg_fill)``, ``RandomImageEnhance``,
    ``RandomDilationErosion``, ``Normalize``, then the dataset's ``(label[0] / 255).long()``."""

    def __init__(self, size: list[int], seg_fill: int = 255) -> None:
        self.size, self.scale, self.seg_fill = size, (0.75, 1.25), seg_fill
        self.enhance_method = [
            ImageEnhance.Contrast,
            ImageEnhance.Brightness,
            ImageEnhance.Sharpness,
        ]

    def __call__(self, img: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.transforms import PILToTensor, ToPILImage
        from torchvision.transforms import functional as TF

        # RandomResizedCrop
        H, W = img.shape[1:]
        tH, tW = self.size
        ratio = random.random() * (self.scale[1] - self.scale[0]) + self.scale[0]
        scale = int(tH * ratio), int(tW * 4 * ratio)
        scale_factor = min(max(scale) / max(H, W), min(scale) / min(H, W))
        nH, nW = int(H * scale_factor + 0.5), int(W * scale_factor + 0.5)
        img = TF.resize(img, (nH, nW), TF.InterpolationMode.BILINEAR, antialias=False)
        mask = TF.resize(mask, (nH, nW), TF.InterpolationMode.NEAREST)
        margin_h = max(img.shape[1] - tH, 0)
        margin_w = max(img.shape[2] - tW, 0)
        y1 = random.randint(0, margin_h + 1)
        x1 = random.randint(0, margin_w + 1)
        y2 = y1 + tH
        x2 = x1 + tW
        img = img[:, y1:y2, x1:x2]
        mask = mask[:, y1:y2, x1:x2]
        if img.shape[1:] != self.size:
            padding = [0, 0, tW - img.shape[2], tH - img.shape[1]]
            img = TF.pad(img, padding, fill=0)
            mask = TF.pad(mask, padding, fill=self.seg_fill)
        # RandomHorizontalFlip, RandomVerticalFlip
        if random.random() < 0.5:
            img, mask = TF.hflip(img), TF.hflip(mask)
        if random.random() < 0.5:
            img, mask = TF.vflip(img), TF.vflip(mask)
        # RandomRotation
        random_angle = random.random() * 2 * 359 - 359
        if random.random() < 0.3:
            img = TF.rotate(img, random_angle, TF.InterpolationMode.BILINEAR, False, fill=0)
            mask = TF.rotate(
                mask, random_angle, TF.InterpolationMode.NEAREST, False, fill=self.seg_fill
            )
        # RandomImageEnhance
        np.random.shuffle(self.enhance_method)
        pil = ToPILImage()(img)
        for method in self.enhance_method:
            if np.random.random() > 0.5:
                enhancer = method(pil)
                factor = float(1 + np.random.random() / 10)
                pil = enhancer.enhance(factor)
        img = PILToTensor()(pil)
        # RandomDilationErosion
        gt = np.array(mask)
        key = np.random.random()
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (np.random.randint(*[2, 5]),) * 2)
        if key < 1 / 3:
            gt = cv2.dilate(gt, kernel)
        elif 1 / 3 <= key < 2 / 3:
            gt = cv2.erode(gt, kernel)
        mask = torch.from_numpy(gt)
        # Normalize
        img = img.float()
        img /= 255
        img = TF.normalize(img, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        return img, (mask[0, :, :].squeeze() / 255).long()


@pytest.fixture(scope="module")
def kvasir_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, np.ndarray]:
    """A 530x622 frame and its JPEG mask (soft edges), after the study's Resize (352x416)."""
    folder = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:530, 0:622]
    inside = ((yy - 250) ** 2 + (xx - 330) ** 2) < 140**2
    image = np.clip(rng.normal(110, 40, (530, 622, 3)) + inside[..., None] * 80, 0, 255)
    Image.fromarray(image.astype(np.uint8)).save(folder / "frame.jpg", quality=90)
    mask = np.round(cv2.GaussianBlur(inside.astype(np.float32) * 255, (0, 0), 2.0))
    Image.fromarray(mask.astype(np.uint8)).convert("RGB").save(folder / "mask.jpg", quality=90)
    image_u8, mask_u8 = load_study_pair(folder / "frame.jpg", folder / "mask.jpg", (352, 352))
    assert image_u8.shape == (352, 416, 3) and mask_u8.shape == (352, 416)
    return image_u8, mask_u8


def test_equals_the_studys_augmentation_draw_for_draw(kvasir_pair) -> None:
    image, mask = kvasir_pair
    ours, port = StudyTrainTransform((352, 352)), PortedStudyAugmentation([352, 352])
    image_chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    mask_chw = torch.from_numpy(mask.copy())[None]
    rotated = padded = 0
    for seed in range(24):
        random.seed(seed)
        np.random.seed(seed)
        image_t, label_t = ours(image, mask)
        random.seed(seed)
        np.random.seed(seed)
        image_p, label_p = port(image_chw.clone(), mask_chw.clone())
        assert torch.equal(image_t, image_p), seed
        assert torch.equal(label_t[0].long(), label_p), seed
        rotated += int((image_t[0] == image_t[0].min()).float().mean() > 0.05)
        padded += int(bool((label_t[0, -1] == 1).all() or (label_t[0, :, -1] == 1).all()))
    assert rotated and padded  # the draws covered rotations and padding


def test_padded_and_rotated_in_pixels_become_polyp_as_in_the_study(kvasir_pair) -> None:
    """The study fills padding and rotation corners with seg_fill = IGNORE_LABEL = 255 and takes
    the label after that, so those pixels are polyp (label 1), never ignored."""
    image, mask = kvasir_pair
    transform = StudyTrainTransform((352, 352))
    found = False
    for seed in range(40):
        random.seed(seed)
        np.random.seed(seed)
        image_t, label_t = transform(image, mask)
        black = (image_t == image_t.amin(dim=(1, 2), keepdim=True)).all(dim=0)
        if black.float().mean() > 0.02:  # padding or rotated-in corners
            inside = label_t[0][black].float().mean()
            assert inside > 0.8 and inside > label_t[0][~black].float().mean() + 0.3
            found = True
    assert found
    assert set(label_t.unique().tolist()) <= {0.0, 1.0}


def test_wider_than_512_pixels_works_as_the_study_would() -> None:
    """cv2 takes at most 512 channels: the study's morphology is applied in blocks."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (576, 704, 3), dtype=np.uint8)
    mask = np.zeros((576, 704), np.uint8)
    mask[200:400, 250:600] = 255
    transform = StudyTrainTransform((576, 576))
    for seed in range(6):
        random.seed(seed)
        np.random.seed(seed)
        image_t, label_t = transform(image, mask)
        assert image_t.shape == (3, 576, 576) and label_t.shape == (1, 576, 576)
    gt = (rng.random((1, 40, 600)) > 0.5).astype(np.uint8) * 255
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    blocks = np.concatenate([cv2.dilate(gt[..., i : i + 512], kernel) for i in (0, 512)], -1)
    assert np.array_equal(blocks[..., :512], cv2.dilate(gt[..., :512], kernel))
