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

Each head's ``forward`` is written as its paper and its original code are: resize, concatenate,
then convolve, with plain modules whose names are the checkpoints' keys. :meth:`DecoderHead.fuse`
switches a head to its fused form: the same function with each 1x1 conv over a concatenation
split into one conv per part (no concatenation is built) and each part's conv run before the
resize it commutes with (at the lower resolution); in eval mode BatchNorm is also folded into
the conv. It gives the same logits, BN statistics and gradients up to float rounding (tested:
logits to 1e-5) at fewer FLOPs, forward and backward; training, ``val``, ``predict``,
``export``, ``bench`` and ``info`` use it.

Every head's ``forward(features, out_size)`` returns logits of spatial size ``out_size``, and
every head class says what the rest of the package needs of it, so that adding a decoder is one
class here plus its line in :data:`ssformer.registry.MODELS` (its name -> the class):

- ``width_for(backbone)``: its decoder width on a backbone;
- ``checkpoint_marker``: a key only its published checkpoints hold (format detection);
- ``published_renames``: ``(published prefix, our prefix)`` pairs of its published key layout;
- ``published_in``: where its published checkpoints come from (for error messages).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvBNReLU",
    "DecoderHead",
    "ProgressiveLocalityDecoder",
    "SegFormerHead",
    "StudyPLDHead",
]


class ConvBNReLU(nn.Module):
    """1x1 (or kxk) conv without bias, BatchNorm, ReLU; submodule names as mmcv's ConvModule
    (``conv``, ``bn``, ``activate``) so that checkpoints of both research repos map one to one.

    Besides ``forward`` (the module on one input), a 1x1 ``ConvBNReLU`` applied to a channel
    concatenation ``cat([x_0, ..., x_{n-1}])`` can be computed part by part without building the
    concatenation: ``finish(sum(project(x_i, i, n)))``. Because a 1x1 conv and a bilinear
    resize are both linear and act on different axes, ``project`` may also run *before* a resize
    (at the lower resolution) with the same result up to float rounding.
    """

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

    def project(self, x: torch.Tensor, part: int, parts: int) -> torch.Tensor:
        """The 1x1 conv of channel block ``part`` (of ``parts`` equal blocks) applied to ``x``.

        With BatchNorm in eval mode its scale is folded into the weight and its shift into
        the bias of part 0, so that :meth:`finish` is a ReLU only.
        """
        if self.conv.kernel_size != (1, 1):
            raise ValueError("project() splits a 1x1 conv only")
        weight = self.conv.weight.chunk(parts, dim=1)[part]
        if self._bn_folded:
            scale = self.bn.weight * torch.rsqrt(self.bn.running_var + self.bn.eps)
            weight = weight * scale[:, None, None, None]
            bias = self.bn.bias - self.bn.running_mean * scale if part == 0 else None
            return F.conv2d(x, weight, bias)
        return F.conv2d(x, weight)

    def finish(self, projected: torch.Tensor) -> torch.Tensor:
        """BatchNorm (training mode; folded in eval) and ReLU of the summed projections."""
        if not self._bn_folded:
            projected = self.bn(projected)
        return self.activate(projected)

    @property
    def _bn_folded(self) -> bool:
        """BatchNorm uses its running statistics (eval mode): :meth:`project` folds it."""
        return not self.bn.training and self.bn.running_var is not None


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


class DecoderHead(nn.Module):
    """A decoder: ``forward`` in the paper's form; after :meth:`fuse`, the fused form."""

    def __init__(self) -> None:
        super().__init__()
        self.fused = False

    def fuse(self) -> DecoderHead:
        """From now on compute the fused form (in train and eval mode; BatchNorm folded in eval
        mode only, so a fused model trains as the paper's). Returns self."""
        self.fused = True
        return self

    def fused_forward(
        self, features: Sequence[torch.Tensor], out_size: tuple[int, int]
    ) -> torch.Tensor:
        """``forward``'s function in the fused form; every head defines it."""
        raise NotImplementedError


def _study_width(backbone: str) -> int:
    """The study's decoder width: 256 on B0/B1 backbones, 768 on larger ones."""
    return 256 if backbone.endswith(("B0", "B1")) else 768


class ProgressiveLocalityDecoder(DecoderHead):
    """The official SSFormer decoder (PLD), exactly as in the official ``mit_PLD_b2/b4``."""

    checkpoint_marker = "decode_head.linear_fuse34.conv.weight"
    published_renames: tuple[tuple[str, str], ...] = ()
    published_in = "the official SSFormer repository (ssformer_S.pth / ssformer_L.pth)"

    @staticmethod
    def width_for(backbone: str) -> int:
        """256 on every backbone, as the official ``mit_PLD_b2/b4``."""
        del backbone
        return 256

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
        if self.fused:
            return self.fused_forward(features, out_size)
        c1, c2, c3, c4 = features
        size = c1.shape[-2:]
        # Local Emphasis per level, each resized (bilinear) to the size of level 1
        _c4 = _resize(self.linear_c4(c4), size)
        _c3 = _resize(self.linear_c3(c3), size)
        _c2 = _resize(self.linear_c2(c2), size)
        _c1 = self.linear_c1(c1)
        # Stepwise Feature Aggregation: concatenate, then a 1x1 conv + BN + ReLU, level by level
        fused = self.linear_fuse34(torch.cat([_c4, _c3], dim=1))
        fused = self.linear_fuse2(torch.cat([fused, _c2], dim=1))
        fused = self.linear_fuse1(torch.cat([fused, _c1], dim=1))
        return self._predict(fused, out_size)

    def fused_forward(
        self, features: Sequence[torch.Tensor], out_size: tuple[int, int]
    ) -> torch.Tensor:
        """:meth:`forward` without the concatenations, each 1x1 conv before the resize it
        commutes with (at 1/64, 1/16 and 1/4 of the pixels; 2.7 of the 6.1 GFLOPs of the
        fusions saved at 352 px) and BatchNorm folded (see :class:`ConvBNReLU`)."""
        c1, c2, c3, c4 = features
        size = c1.shape[-2:]
        _c4, _c3, _c2 = self.linear_c4(c4), self.linear_c3(c3), self.linear_c2(c2)
        _c1 = self.linear_c1(c1)
        fuse34, fuse2, fuse1 = self.linear_fuse34, self.linear_fuse2, self.linear_fuse1
        # The sums are taken in place: neither a conv's nor a resize's backward needs its output.
        fused = fuse34.finish(
            _resize(fuse34.project(_c4, 0, 2), size).add_(_resize(fuse34.project(_c3, 1, 2), size))
        )
        fused = fuse2.finish(
            fuse2.project(fused, 0, 2).add_(_resize(fuse2.project(_c2, 1, 2), size))
        )
        fused = fuse1.finish(fuse1.project(fused, 0, 2).add_(fuse1.project(_c1, 1, 2)))
        return self._predict(fused, out_size)

    def _predict(self, fused: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        logits = self.linear_pred(self.dropout(fused))
        # Official: UpsamplingBilinear2d(scale_factor=4), i.e. align_corners=True; with an
        # explicit size the result is identical for inputs divisible by 4 and exact otherwise.
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=True)


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=False``, as the official decoder's ``resize``."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def _nearest(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Nearest resize, as the study's ``nn.Upsample(scale_factor=2**i)``."""
    return F.interpolate(x, size=tuple(size), mode="nearest")


class StudyPLDHead(DecoderHead):
    """The reproduction study's PLD variant (``semseg/models/heads/pld.py``).

    Per level a 1x1 conv (with bias) to ``width`` and nearest upsampling to the size of level 1;
    branch A fuses levels 1-2 (1x1 conv+BN+ReLU), branch B all four; each branch is reduced to
    ``num_classes`` by a 1x1 conv+BN+ReLU; a final 1x1 conv maps both to ``num_classes``.
    Logits are resized bilinearly (``align_corners=False``) to the input size.
    """

    checkpoint_marker = "decode_head.conv_fuse_12.conv.weight"
    published_renames = (("decode_head.Conv2d.", "decode_head.pred."),)
    published_in = "the reproduction study (PLDSegFormer_*.pth)"
    width_for = staticmethod(_study_width)

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
        if self.fused:
            return self.fused_forward(features, out_size)
        size = features[0].shape[-2:]
        # per level a 1x1 conv, upsampled (nearest) to the size of level 1
        levels = [
            _nearest(layer(feature), size)
            for feature, layer in zip(features, self.layers, strict=True)
        ]
        branch_12 = self.conv1(self.conv_fuse_12(torch.cat(levels[:2], dim=1)))
        branch_all = self.conv2(self.conv_fuse(torch.cat(levels, dim=1)))
        return self._predict(branch_all, branch_12, out_size)

    def fused_forward(
        self, features: Sequence[torch.Tensor], out_size: tuple[int, int]
    ) -> torch.Tensor:
        """:meth:`forward` without the concatenations, each level's block of the fuse convs
        before the resize (nearest resizing commutes with a 1x1 conv exactly), BN folded."""
        size = features[0].shape[-2:]
        levels = [layer(feature) for feature, layer in zip(features, self.layers, strict=True)]
        fuse_12, fuse_all = self.conv_fuse_12, self.conv_fuse
        sum_12 = fuse_12.project(levels[0], 0, 2).add_(
            _nearest(fuse_12.project(levels[1], 1, 2), size)
        )
        sum_all = fuse_all.project(levels[0], 0, 4)
        for index in (1, 2, 3):
            sum_all.add_(_nearest(fuse_all.project(levels[index], index, 4), size))
        branch_12 = self.conv1(fuse_12.finish(sum_12))
        branch_all = self.conv2(fuse_all.finish(sum_all))
        return self._predict(branch_all, branch_12, out_size)

    def _predict(
        self, branch_all: torch.Tensor, branch_12: torch.Tensor, out_size: tuple[int, int]
    ) -> torch.Tensor:
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


class SegFormerHead(DecoderHead):
    """SegFormer all-MLP decoder as in the study's ``semseg/models/heads/segformer.py``."""

    checkpoint_marker = "decode_head.linear_c1.proj.weight"
    published_renames: tuple[tuple[str, str], ...] = ()
    published_in = "the reproduction study (SegFormer_*.pth)"
    width_for = staticmethod(_study_width)

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
        if self.fused:
            return self.fused_forward(features, out_size)
        c1, c2, c3, c4 = features
        size = c1.shape[-2:]
        # per level a linear layer (MLP) to the decoder width, resized to the size of level 1,
        # concatenated, fused by a 1x1 conv + BN + ReLU
        levels = [
            _resize(self.linear_c4(c4), size),
            _resize(self.linear_c3(c3), size),
            _resize(self.linear_c2(c2), size),
            self.linear_c1(c1),
        ]
        return self._predict(self.linear_fuse(torch.cat(levels, dim=1)), out_size)

    def fused_forward(
        self, features: Sequence[torch.Tensor], out_size: tuple[int, int]
    ) -> torch.Tensor:
        """:meth:`forward` without the concatenation, each level's block of the fuse conv
        before the resize, BN folded (at width 768 and 352 px, 24 of the fuse conv's 36.5
        GFLOPs saved)."""
        c1, c2, c3, c4 = features
        size = c1.shape[-2:]
        fuse = self.linear_fuse
        fused = fuse.project(self.linear_c1(c1), 3, 4)
        for part, (layer, feature) in enumerate(
            ((self.linear_c4, c4), (self.linear_c3, c3), (self.linear_c2, c2))
        ):
            fused.add_(_resize(fuse.project(layer(feature), part, 4), size))
        return self._predict(fuse.finish(fused), out_size)

    def _predict(self, fused: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        logits = self.linear_pred(self.dropout(fused))
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
