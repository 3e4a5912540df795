"""Losses (ssformer.losses): hand-computed values, ignore handling, the official quirk, and, when
the reference sources are given, equality with the official repo's and the study's code.

Optional references (skipped when unset): ``SSFORMER_OFFICIAL_DIR`` = a checkout of the official
SSFormer repository (uses ``utils/loss.py``), ``SSFORMER_STUDY_DIR`` = a checkout of the study's
framework (uses ``semseg/losses.py``).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from ssformer.errors import ConfigError
from ssformer.losses import (
    CrossEntropyLoss,
    DiceBCELoss,
    DiceLoss,
    OhemCrossEntropyLoss,
    build_loss,
    to_labels,
)
from ssformer.registry import LOSSES, implementation


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def load_reference(env: str, relative: str) -> ModuleType:
    root = os.environ.get(env)
    if not root or not (Path(root) / relative).is_file():
        pytest.skip(f"set {env} to a checkout holding {relative}")
    spec = importlib.util.spec_from_file_location(f"ref_{env}", Path(root) / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registry_points_at_each_loss_class() -> None:
    classes = [implementation(LOSSES, name) for name in LOSSES]
    assert classes == [DiceLoss, CrossEntropyLoss, OhemCrossEntropyLoss, DiceBCELoss]
    built = [type(build_loss(name, 1 if name == "DiceBCE" else 2)) for name in LOSSES]
    assert built == classes


def test_dice_bce_matches_hand_computation() -> None:
    logits = [0.5, -1.0, 2.0, 0.0]
    mask = [1.0, 0.0, 1.0, 0.0]
    expected = 0.0
    for x, m in zip(logits, mask, strict=True):
        p = sigmoid(x)
        bce = -(m * math.log(p) + (1 - m) * math.log(1 - p))
        expected += bce + 1 - (2 * p * m + 1) / (p + m + 1)
    expected /= 4
    loss = DiceBCELoss()(torch.tensor(logits).view(1, 1, 2, 2), torch.tensor(mask).view(1, 1, 2, 2))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_double_sigmoid_is_the_loss_of_probabilities() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8) * 3
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    quirk = DiceBCELoss(double_sigmoid=True)(logits, mask)
    assert quirk.item() == pytest.approx(DiceBCELoss()(torch.sigmoid(logits), mask).item())
    assert quirk.item() != pytest.approx(DiceBCELoss()(logits, mask).item())


def test_dice_bce_ignores_ignore_label_pixels() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 1, 4, 4)
    mask = (torch.rand(1, 1, 4, 4) > 0.5).float()
    with_ignored = mask.clone()
    with_ignored[..., :2] = 255
    full = DiceBCELoss()(logits[..., 2:], mask[..., 2:])
    assert DiceBCELoss()(logits, with_ignored).item() == pytest.approx(full.item(), rel=1e-6)


def test_dice_loss_matches_hand_computation() -> None:
    # one image, 2 pixels, 2 classes; labels [1, 0]
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]]).view(1, 2, 1, 2)  # [B, C, H, W]
    target = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    p1 = [sigmoid(2.0 - 0.0), sigmoid(-1.0 - 1.0)]  # softmax prob of class 1 at each pixel
    p0 = [1 - p1[0], 1 - p1[1]]
    t1, t0 = [1, 0], [0, 1]
    coefs = []
    for p, t in ((p0, t0), (p1, t1)):
        inter = sum(a * b for a, b in zip(p, t, strict=True))
        union = sum(a * a for a in p) + sum(t)
        coefs.append((2 * inter + 1e-5) / (union + 1e-5))
    expected = 1 - sum(coefs) / 2
    assert DiceLoss()(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_dice_loss_near_zero_for_a_confident_correct_prediction() -> None:
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    logits = torch.cat([(1 - mask) * 20 - 10, mask * 20 - 10], dim=1)
    assert DiceLoss()(logits, mask).item() < 1e-6


def test_two_class_losses_ignore_pixels() -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 2, 6, 6)
    mask = (torch.rand(2, 1, 6, 6) > 0.5).float()
    with_ignored = mask.clone()
    with_ignored[..., :, :3] = 255
    for loss in (DiceLoss(), CrossEntropyLoss()):
        full = loss(logits[..., :, 3:], mask[..., :, 3:])
        assert loss(logits, with_ignored).item() == pytest.approx(full.item(), rel=1e-5)


def test_cross_entropy_takes_float_masks_and_labels() -> None:
    torch.manual_seed(3)
    logits = torch.randn(2, 2, 5, 5)
    mask = (torch.rand(2, 1, 5, 5) > 0.5).float()
    labels = mask[:, 0].long()
    expected = F.cross_entropy(logits, labels)
    assert CrossEntropyLoss()(logits, mask).item() == pytest.approx(expected.item())
    assert CrossEntropyLoss()(logits, labels).item() == pytest.approx(expected.item())
    assert torch.equal(to_labels(mask), labels)


def test_ohem_keeps_hard_pixels_or_the_top_sixteenth() -> None:
    # 32 pixels; two are wrong with high confidence, the rest right with high confidence.
    labels = torch.zeros(1, 4, 8, dtype=torch.long)
    logits = torch.zeros(1, 2, 4, 8)
    logits[:, 0] = 8.0
    logits[0, 0, 0, 0] = -8.0
    logits[0, 0, 0, 1] = -8.0
    per_pixel = F.cross_entropy(logits, labels, reduction="none").view(-1)
    hard = per_pixel[per_pixel > -math.log(0.7)]
    assert hard.numel() == 2 and 32 // 16 == 2
    assert OhemCrossEntropyLoss()(logits, labels).item() == pytest.approx(hard.mean().item())
    # no hard pixel: the mean of the 2 largest losses
    easy = torch.zeros(1, 2, 4, 8)
    easy[:, 0] = 8.0
    easy[0, 0, 1, 1] = 7.0
    per_pixel = F.cross_entropy(easy, labels, reduction="none").view(-1)
    top = per_pixel.topk(2).values.mean()
    assert OhemCrossEntropyLoss()(easy, labels).item() == pytest.approx(top.item())


def test_build_loss_names_and_errors() -> None:
    assert isinstance(build_loss("DiceLoss", 2), DiceLoss)
    assert isinstance(build_loss("dice", 2), DiceLoss)
    assert isinstance(build_loss("ce", 2), CrossEntropyLoss)
    assert isinstance(build_loss("ohemce", 2), OhemCrossEntropyLoss)
    quirk = build_loss("DiceBCE", 1, double_sigmoid=True)
    assert isinstance(quirk, DiceBCELoss) and quirk.double_sigmoid
    with pytest.raises(ConfigError, match="NUM_CLASSES=1"):
        build_loss("DiceBCE", 2)
    with pytest.raises(ConfigError, match="softmax"):
        build_loss("DiceLoss", 1)
    with pytest.raises(ConfigError, match="not one of"):
        build_loss("focal", 2)
    weighted = build_loss("ce", 2, cls_weights=[1.0, 3.0])
    logits, labels = torch.randn(1, 2, 3, 3), torch.randint(0, 2, (1, 3, 3))
    expected = F.cross_entropy(logits, labels, weight=torch.tensor([1.0, 3.0]))
    assert weighted(logits, labels).item() == pytest.approx(expected.item())


def test_losses_backpropagate_under_bf16_autocast() -> None:
    torch.manual_seed(4)
    mask = (torch.rand(2, 1, 16, 16) > 0.5).float()
    for loss, channels in ((DiceBCELoss(), 1), (DiceLoss(), 2), (OhemCrossEntropyLoss(), 2)):
        logits = torch.randn(2, channels, 16, 16, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            value = loss(logits * 1.0, mask)
        assert value.dtype == torch.float32
        value.backward()
        assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_dice_bce_equals_the_official_code() -> None:
    official = load_reference("SSFORMER_OFFICIAL_DIR", "utils/loss.py")
    torch.manual_seed(5)
    logits = torch.randn(2, 1, 11, 13) * 2
    mask = (torch.rand(2, 1, 11, 13) > 0.4).float()
    assert DiceBCELoss()(logits, mask).item() == pytest.approx(
        official.dice_bce_loss(logits, mask).item(), rel=1e-6
    )
    quirk = official.dice_bce_loss(torch.sigmoid(logits), mask)  # what train.py computes
    assert DiceBCELoss(double_sigmoid=True)(logits, mask).item() == pytest.approx(
        quirk.item(), rel=1e-6
    )


def test_two_class_losses_equal_the_study_code() -> None:
    study = load_reference("SSFORMER_STUDY_DIR", "semseg/losses.py")
    torch.manual_seed(6)
    logits = torch.randn(2, 2, 9, 7)
    labels = torch.randint(0, 2, (2, 9, 7))
    labels[0, 0, :3] = 255
    ce = study.CrossEntropy(255, None)(logits, labels)
    assert CrossEntropyLoss()(logits, labels).item() == pytest.approx(ce.item(), rel=1e-6)
    ohem = study.OhemCrossEntropy(255, None)(logits, labels)
    assert OhemCrossEntropyLoss()(logits, labels).item() == pytest.approx(ohem.item(), rel=1e-6)
    if torch.cuda.is_available():  # the study's DiceLoss allocates on CUDA
        clean = torch.randint(0, 2, (2, 9, 7))
        dice = study.DiceLoss()(logits.cuda(), clean.cuda())
        assert DiceLoss()(logits, clean).item() == pytest.approx(dice.item(), rel=1e-5)
