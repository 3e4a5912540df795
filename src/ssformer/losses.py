"""Segmentation losses of the official SSFormer training and of the reproduction study.

Every loss takes **logits** ``[B, C, H, W]`` (never probabilities) and a target mask, either a
float mask ``[B, 1, H, W]`` with values in {0, 1} (pixels equal to ``ignore_label`` are
ignored) or integer labels ``[B, H, W]``. Losses are computed in float32, also under autocast.

- :class:`DiceBCELoss` (1 channel): the official SSFormer ``dice_bce_loss`` (Wang et al.,
  MICCAI 2022, official ``train.py``): per-pixel ``BCE-with-logits + 1 - (2pm + 1)/(p + m + 1)``
  with ``p = sigmoid(logit)``, averaged over all pixels. Note the Dice term is per pixel, not
  summed over the image. ``double_sigmoid=True`` reproduces the official quirk: ``train.py``
  applies ``sigmoid`` to the model output and passes the probabilities to this loss, which
  applies sigmoid (and BCE-with-logits) again.
- :class:`DiceLoss` (C >= 2): the study's ``DiceLoss``: softmax over classes,
  ``1 - mean_{b,c} (2 sum p t + 1e-5) / (sum p^2 + sum t + 1e-5)``.
- :class:`CrossEntropyLoss` and :class:`OhemCrossEntropyLoss` (C >= 2): the study's
  ``CrossEntropy`` and ``OhemCrossEntropy`` (threshold 0.7, at least 1/16 of valid pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssformer.config.validate import loss_settings_problem
from ssformer.errors import ConfigError
from ssformer.registry import LOSS_ALIASES, LOSSES, implementation

__all__ = [
    "CrossEntropyLoss",
    "DiceBCELoss",
    "DiceLoss",
    "OhemCrossEntropyLoss",
    "build_loss",
    "to_labels",
]


def to_labels(target: Tensor, ignore_label: int = 255) -> Tensor:
    """Integer labels ``[B, H, W]`` from a float mask ``[B, 1, H, W]`` in {0, 1}: > 0.5 is
    class 1; pixels equal to ``ignore_label`` keep that value. Integer input passes through."""
    if target.dim() == 4:
        if target.shape[1] != 1:
            raise ValueError(f"target mask must be [B, 1, H, W], got {tuple(target.shape)}")
        target = target[:, 0]
    if not target.is_floating_point():
        return target.long()
    labels = (target > 0.5).long()
    return torch.where(target == ignore_label, torch.full_like(labels, ignore_label), labels)


def _check_shapes(logits: Tensor, labels: Tensor) -> None:
    if (
        logits.dim() != 4
        or logits.shape[0] != labels.shape[0]
        or logits.shape[2:] != labels.shape[1:]
    ):
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(labels.shape)} do not match "
            f"(expected logits [B, C, H, W] and target [B, 1, H, W] or [B, H, W])"
        )


class DiceBCELoss(nn.Module):
    """Official SSFormer loss on one logit channel (takes logits ``[B, 1, H, W]``).

    ``loss = mean_pixels( BCEWithLogits(x, m) + 1 - (2 s m + 1) / (s + m + 1) )``,
    ``s = sigmoid(x)``, ``m`` the float mask in [0, 1]. With ``double_sigmoid=True`` the input
    ``x`` is first replaced by ``sigmoid(x)`` (the official training's quirk). Pixels equal to
    ``ignore_label`` are left out of the mean (the official code has none).
    """

    def __init__(self, double_sigmoid: bool = False, ignore_label: int = 255) -> None:
        super().__init__()
        self.double_sigmoid = double_sigmoid
        self.ignore_label = ignore_label

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.dim() != 4 or logits.shape[1] != 1:
            raise ValueError(f"DiceBCELoss needs logits [B, 1, H, W], got {tuple(logits.shape)}")
        if target.dim() == 3:
            target = target.unsqueeze(1)
        if target.shape != logits.shape:
            raise ValueError(
                f"logits {tuple(logits.shape)} and target {tuple(target.shape)} do not match"
            )
        x = logits.float()
        mask = target.float()
        valid = mask != self.ignore_label
        mask = torch.where(valid, mask, torch.zeros_like(mask))
        if self.double_sigmoid:
            x = torch.sigmoid(x)
        bce = F.binary_cross_entropy_with_logits(x, mask, reduction="none")
        prob = torch.sigmoid(x)
        dice = 1.0 - (2.0 * prob * mask + 1.0) / (prob + mask + 1.0)
        per_pixel = bce + dice
        # Masked mean without a data-dependent branch (no host synchronisation on a GPU); with
        # every pixel valid it is the plain mean.
        return (per_pixel * valid).sum() / valid.sum().clamp_min(1)


class DiceLoss(nn.Module):
    """The study's ``DiceLoss`` (takes logits ``[B, C, H, W]``, C >= 2; softmax inside).

    Per sample and class: ``(2 sum(p t) + 1e-5) / (sum(p^2) + sum(t) + 1e-5)`` over pixels,
    loss ``1 - mean`` over samples and classes. Optional class weights ``w`` (normalised to sum
    1, times C) scale the per-class coefficients. Pixels equal to ``ignore_label`` are left
    out (the study's code would fail on them).
    """

    smooth = 1e-5

    def __init__(self, weight: Sequence[float] | None = None, ignore_label: int = 255) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        if weight is not None:
            w = torch.as_tensor(list(weight), dtype=torch.float32)
            self.register_buffer("weight", w / w.sum(), persistent=False)
        else:
            self.weight = None

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        labels = to_labels(target, self.ignore_label)
        _check_shapes(logits, labels)
        n, c = logits.shape[:2]
        prob = F.softmax(logits.float(), dim=1).reshape(n, c, -1)
        labels = labels.reshape(n, -1)
        valid = labels != self.ignore_label
        onehot = F.one_hot(torch.where(valid, labels, 0), c).permute(0, 2, 1).float()
        valid_f = valid.unsqueeze(1).float()
        prob = prob * valid_f
        onehot = onehot * valid_f
        intersection = (prob * onehot).sum(dim=2)
        union = prob.pow(2).sum(dim=2) + onehot.sum(dim=2)
        coef = (2.0 * intersection + self.smooth) / (union + self.smooth)
        if self.weight is not None:
            coef = coef * self.weight.to(coef.device) * c
        return 1.0 - coef.mean()


class CrossEntropyLoss(nn.Module):
    """The study's ``CrossEntropy`` (takes logits ``[B, C, H, W]``): mean cross-entropy over
    pixels not equal to ``ignore_label``, optional class weights."""

    def __init__(self, weight: Sequence[float] | None = None, ignore_label: int = 255) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        w = None if weight is None else torch.as_tensor(list(weight), dtype=torch.float32)
        self.register_buffer("weight", w, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        labels = to_labels(target, self.ignore_label)
        _check_shapes(logits, labels)
        return F.cross_entropy(
            logits.float(), labels, weight=self.weight, ignore_index=self.ignore_label
        )


class OhemCrossEntropyLoss(nn.Module):
    """The study's ``OhemCrossEntropy`` (takes logits): per-pixel cross-entropy, mean over the
    pixels whose loss exceeds ``-log(thresh)``, or over the ``n_valid // 16`` largest losses
    when fewer pixels exceed it."""

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        ignore_label: int = 255,
        thresh: float = 0.7,
    ) -> None:
        super().__init__()
        self.ignore_label = ignore_label
        self.loss_threshold = -math.log(thresh)
        w = None if weight is None else torch.as_tensor(list(weight), dtype=torch.float32)
        self.register_buffer("weight", w, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        labels = to_labels(target, self.ignore_label)
        _check_shapes(logits, labels)
        n_min = int((labels != self.ignore_label).sum()) // 16
        loss = F.cross_entropy(
            logits.float(),
            labels,
            weight=self.weight,
            ignore_index=self.ignore_label,
            reduction="none",
        ).reshape(-1)
        hard = loss[loss > self.loss_threshold]
        if hard.numel() < n_min:
            hard, _ = loss.topk(n_min)
        return hard.mean()


def build_loss(
    name: str,
    num_classes: int,
    *,
    ignore_label: int = 255,
    cls_weights: Sequence[float] | None = None,
    double_sigmoid: bool = False,
) -> nn.Module:
    """Build a loss from its config name (``DiceLoss``/``dice``, ``CrossEntropy``/``ce``,
    ``OhemCrossEntropy``/``ohemce``, ``DiceBCE``) for a model with ``num_classes`` outputs."""
    canonical = LOSS_ALIASES.get(name.lower(), name)
    if canonical not in LOSSES:
        raise ConfigError(f"LOSS.NAME={name!r} is not one of {', '.join(LOSSES)}")
    problem = loss_settings_problem(canonical, num_classes, cls_weights, double_sigmoid)
    if problem:
        raise ConfigError(problem)
    if canonical == "DiceBCE":
        return DiceBCELoss(double_sigmoid=double_sigmoid, ignore_label=ignore_label)
    return implementation(LOSSES, canonical)(weight=cls_weights, ignore_label=ignore_label)
