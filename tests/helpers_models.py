"""The official SSFormer decoder's forward, written out literally, for comparisons in tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def official_pld_forward(head: nn.Module, features: list[torch.Tensor], size: int) -> torch.Tensor:
    """The official decoder's forward written out literally: resize, concatenate, then each fuse
    module (conv -> BN -> ReLU) on the concatenation."""
    c1, c2, c3, c4 = features
    hw = c1.shape[-2:]

    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)

    _c4, _c3, _c2 = up(head.linear_c4(c4)), up(head.linear_c3(c3)), up(head.linear_c2(c2))
    _c1 = head.linear_c1(c1)
    fused = head.linear_fuse34(torch.cat([_c4, _c3], dim=1))
    fused = head.linear_fuse2(torch.cat([fused, _c2], dim=1))
    fused = head.linear_fuse1(torch.cat([fused, _c1], dim=1))
    logits = head.linear_pred(head.dropout(fused))
    return F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=True)[
        ..., :size, :size
    ]


def study_segformer_forward(
    head: nn.Module, features: list[torch.Tensor], size: int
) -> torch.Tensor:
    """The study's SegFormer MLP decoder written out literally: per-level linear layers, resize,
    concatenation in the order c4, c3, c2, c1, then ``linear_fuse`` (conv -> BN -> ReLU)."""
    c1, c2, c3, c4 = features
    hw = c1.shape[-2:]

    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)

    levels = [
        up(head.linear_c4(c4)),
        up(head.linear_c3(c3)),
        up(head.linear_c2(c2)),
        head.linear_c1(c1),
    ]
    fused = head.linear_fuse(torch.cat(levels, dim=1))
    logits = head.linear_pred(head.dropout(fused))
    return F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)


def study_pld_forward(head: nn.Module, features: list[torch.Tensor], size: int) -> torch.Tensor:
    """The study's PLD variant written out literally: per-level 1x1 conv, nearest resize, the
    c1+c2 and all-level concatenations through their fuse modules, then the final conv."""
    hw = features[0].shape[-2:]
    levels = []
    for index, (feature, layer) in enumerate(zip(features, head.layers, strict=True)):
        level = layer(feature)
        if index > 0:
            level = F.interpolate(level, size=hw, mode="nearest")
        levels.append(level)
    branch_12 = head.conv1(head.conv_fuse_12(torch.cat(levels[:2], dim=1)))
    branch_all = head.conv2(head.conv_fuse(torch.cat(levels, dim=1)))
    logits = head.pred(torch.cat([branch_all, branch_12], dim=1))
    return F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
