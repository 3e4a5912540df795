"""Decoders that turn the four backbone maps into per-pixel logits at the input resolution.

- :class:`ProgressiveLocalityDecoder`: the official SSFormer decoder (PLD) of Wang et al.,
  "Stepwise Feature Fusion: Local Guides Global", MICCAI 2022: Local Emphasis (two 3x3 convs with
  ReLU) per level, then Stepwise Feature Aggregation (c4+c3, then +c2, then +c1), each a 1x1
  conv + BN + ReLU; final x4 bilinear upsample with ``align_corners=True``. Module names equal the
  official checkpoint keys (``linear_c{1..4}.proj.{0,2}``, ``linear_fuse{34,2,1}``,
  ``linear_pred``); ``linear_fuse`` is unused but kept so that official checkpoints load strictly.
- :class:`StudyPLDHead`: the reproduction study's PLD variant (per-level 1x1 conv + nearest
  upsample, a c1+c2 branch and an all-level branch, each reduced to classes, then a 1x1 conv).
- :class:`SegFormerHead`: the SegFormer all-MLP decoder (Xie et al., NeurIPS 2021).

Every head's ``forward(features, out_size)`` returns logits of spatial size ``out_size``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvBNReLU",
    "ProgressiveLocalityDecoder",
    "SegFormerHead",
    "StudyPLDHead",
]


class ConvBNReLU(nn.Module):
    """1x1 (or kxk) conv without bias, BatchNorm, ReLU; submodule names as mmcv's ConvModule
    (``conv``, ``bn``, ``activate``) so that checkpoints of both research repos map one to one."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True)
        # mmcv's ConvModule initialisation: Kaiming normal (fan_out, ReLU), BN weight 1, bias 0.
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class LocalEmphasis(nn.Module):
    """Local Emphasis module: conv3x3 (no bias) -> ReLU -> conv3x3 (no bias) -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class ProgressiveLocalityDecoder(nn.Module):
    """The official SSFormer decoder (PLD), exactly as in the official ``mit_PLD_b2/b4``."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, width: int = 256) -> None:
        super().__init__()
        c1, c2, c3, c4 = in_channels
        self.linear_c4 = LocalEmphasis(c4, width)
        self.linear_c3 = LocalEmphasis(c3, width)
        self.linear_c2 = LocalEmphasis(c2, width)
        self.linear_c1 = LocalEmphasis(c1, width)
        self.linear_fuse = ConvBNReLU(width * 4, width)  # unused, as in the official code
        self.linear_fuse34 = ConvBNReLU(width * 2, width)
        self.linear_fuse2 = ConvBNReLU(width * 2, width)
        self.linear_fuse1 = ConvBNReLU(width * 2, width)
        self.dropout = nn.Dropout(0.1)
        self.linear_pred = nn.Conv2d(width, num_classes, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        c1, c2, c3, c4 = features
        size = c1.shape[-2:]
        _c4 = F.interpolate(self.linear_c4(c4), size=size, mode="bilinear", align_corners=False)
        _c3 = F.interpolate(self.linear_c3(c3), size=size, mode="bilinear", align_corners=False)
        _c2 = F.interpolate(self.linear_c2(c2), size=size, mode="bilinear", align_corners=False)
        _c1 = self.linear_c1(c1)
        fused = self.linear_fuse34(torch.cat([_c4, _c3], dim=1))
        fused = self.linear_fuse2(torch.cat([fused, _c2], dim=1))
        fused = self.linear_fuse1(torch.cat([fused, _c1], dim=1))
        logits = self.linear_pred(self.dropout(fused))
        # Official: UpsamplingBilinear2d(scale_factor=4), i.e. align_corners=True; with an
        # explicit size the result is identical for inputs divisible by 4 and exact otherwise.
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=True)


class StudyPLDHead(nn.Module):
    """The reproduction study's PLD variant (``semseg/models/heads/pld.py``).

    Per level a 1x1 conv (with bias) to ``width`` and nearest upsampling to the size of level 1;
    branch A fuses levels 1-2 (1x1 conv+BN+ReLU), branch B all four; each branch is reduced to
    ``num_classes`` by a 1x1 conv+BN+ReLU; a final 1x1 conv maps both to ``num_classes``.
    Logits are resized bilinearly (``align_corners=False``) to the input size.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, width: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, width, 1)) for channels in in_channels
        )
        self.conv_fuse = ConvBNReLU(width * 4, width)
        self.conv_fuse_12 = ConvBNReLU(width * 2, width)
        self.conv1 = ConvBNReLU(width, num_classes)
        self.conv2 = ConvBNReLU(width, num_classes)
        self.pred = nn.Conv2d(num_classes * 2, num_classes, 1)  # the study's ``Conv2d``

    def forward(self, features: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        size = features[0].shape[-2:]
        levels = []
        for index, (feature, layer) in enumerate(zip(features, self.layers, strict=True)):
            level = layer(feature)
            if index > 0:  # the study's Upsample(scale_factor=2**i), default mode "nearest"
                level = F.interpolate(level, size=size, mode="nearest")
            levels.append(level)
        branch_12 = self.conv1(self.conv_fuse_12(torch.cat(levels[:2], dim=1)))
        branch_all = self.conv2(self.conv_fuse(torch.cat(levels, dim=1)))
        logits = self.pred(torch.cat([branch_all, branch_12], dim=1))
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)


class LinearEmbed(nn.Module):
    """SegFormer's per-level ``MLP``: a linear layer over channels, applied as a 1x1 conv
    (same ``proj.weight``/``proj.bias`` as ``nn.Linear``, no token reshapes)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.proj.weight[:, :, None, None], self.proj.bias)


class SegFormerHead(nn.Module):
    """SegFormer all-MLP decoder as in the study's ``semseg/models/heads/segformer.py``."""

    def __init__(self, in_channels: Sequence[int], num_classes: int, width: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = in_channels
        self.linear_c1 = LinearEmbed(c1, width)
        self.linear_c2 = LinearEmbed(c2, width)
        self.linear_c3 = LinearEmbed(c3, width)
        self.linear_c4 = LinearEmbed(c4, width)
        self.linear_fuse = ConvBNReLU(width * 4, width)
        self.linear_pred = nn.Conv2d(width, num_classes, 1)
        self.dropout = nn.Dropout2d(0.1)

    def forward(self, features: Sequence[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        c1, c2, c3, c4 = features
        size = c1.shape[-2:]
        levels = [self.linear_c1(c1)]
        for layer, feature in ((self.linear_c2, c2), (self.linear_c3, c3), (self.linear_c4, c4)):
            levels.append(
                F.interpolate(layer(feature), size=size, mode="bilinear", align_corners=False)
            )
        fused = self.linear_fuse(torch.cat(levels[::-1], dim=1))  # order c4, c3, c2, c1
        logits = self.linear_pred(self.dropout(fused))
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
