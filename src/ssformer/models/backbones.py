"""Pyramid transformer backbones: MiT-B0..B5 and PVTv2-B0..B5 on timm's PVTv2.

MiT is the encoder of SegFormer (Xie et al., "SegFormer: Simple and Efficient Design for Semantic
Segmentation with Transformers", NeurIPS 2021); PVTv2 is Wang et al., "PVT v2: Improved Baselines
with Pyramid Vision Transformer", CVMJ 2022. Both are the same network: overlapping patch
embeddings, spatial-reduction attention (reduction 8/4/2/1, heads 1/2/5/8) and a Mix-FFN with a
depth-wise 3x3 convolution. They differ only in the FFN expansion ratio (MiT: 4 in every stage;
PVTv2: 8/8/4/4, except B5 with 4/4/4/4). LayerNorm epsilons follow the original code of both:
patch-embedding and spatial-reduction norms 1e-5, block and stage norms 1e-6 (timm's defaults).

One class, :class:`PyramidBackbone`, builds every variant from the table
:data:`ssformer.registry.BACKBONE_SPECS`. ``forward`` returns four NCHW feature maps at strides 4/8/16/32. When the input
is channels-last the maps stay channels-last end to end (no copies between stages).

Key layout: timm names modules ``patch_embed``, ``stages.{i}.downsample``, ``stages.{i}.blocks``,
``stages.{i}.norm``; the published ImageNet weights use the original layout (``patch_embed1``,
``block1.0``, ``norm1``, ``mlp.dwconv.dwconv``). :func:`original_to_ours` and
:func:`ours_to_original` convert single keys both ways.
"""

from __future__ import annotations

import re

import torch
from timm.models.pvt_v2 import PyramidVisionTransformerV2
from torch.utils.checkpoint import checkpoint

from ssformer.registry import BACKBONE_SPECS, canonical_backbone_name

__all__ = ["STRIDES", "PyramidBackbone", "original_to_ours", "ours_to_original"]

STRIDES: tuple[int, int, int, int] = (4, 8, 16, 32)


class PyramidBackbone(PyramidVisionTransformerV2):
    """timm's ``PyramidVisionTransformerV2`` without classifier, returning four NCHW maps.

    Attributes: ``name`` (e.g. ``"MiT-B2"``), ``out_channels`` (tuple of 4) and ``strides``
    ``(4, 8, 16, 32)``.
    """

    def __init__(self, name: str) -> None:
        name = canonical_backbone_name(name)
        spec = BACKBONE_SPECS[name]
        super().__init__(
            num_classes=0,
            global_pool="",
            depths=spec.depths,
            embed_dims=spec.embed_dims,
            num_heads=spec.num_heads,
            sr_ratios=spec.sr_ratios,
            mlp_ratios=spec.mlp_ratios,
            qkv_bias=True,
            drop_path_rate=spec.drop_path_rate,
        )
        self.name = name
        self.spec = spec
        self.out_channels: tuple[int, ...] = tuple(spec.embed_dims)
        self.strides: tuple[int, ...] = STRIDES

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """Return the four stage outputs ``[B, C_i, H/s_i, W/s_i]`` (s = 4, 8, 16, 32)."""
        features: list[torch.Tensor] = []
        # Keep the caller's memory format: channels-last input -> channels-last maps (no copies);
        # NCHW input -> contiguous NCHW maps (mixed formats make CPU conv backward slow).
        channels_last = x.dim() == 4 and not x.is_contiguous()
        channels_last = channels_last and x.is_contiguous(memory_format=torch.channels_last)
        x = self.patch_embed(x)  # B, H, W, C
        for stage in self.stages:
            if stage.downsample is not None:
                x = stage.downsample(x)
            batch, height, width, channels = x.shape
            tokens = x.reshape(batch, height * width, channels)
            size = (height, width)
            for block in stage.blocks:
                if stage.grad_checkpointing and self.training:  # set_grad_checkpointing()
                    tokens = checkpoint(block, tokens, size, use_reentrant=False)
                else:
                    tokens = block(tokens, size)
            tokens = stage.norm(tokens)
            # NCHW view of channels-last memory: no copy; the next conv keeps channels-last.
            x = tokens.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
            if not channels_last:
                x = x.contiguous()
            features.append(x)
        return features


_ORIG_PATCH = re.compile(r"^patch_embed([1-4])\.(.*)$")
_ORIG_BLOCK = re.compile(r"^block([1-4])\.(\d+)\.(.*)$")
_ORIG_NORM = re.compile(r"^norm([1-4])\.(.*)$")
_OURS_PATCH = re.compile(r"^patch_embed\.(.*)$")
_OURS_DOWN = re.compile(r"^stages\.([0-3])\.downsample\.(.*)$")
_OURS_BLOCK = re.compile(r"^stages\.([0-3])\.blocks\.(\d+)\.(.*)$")
_OURS_NORM = re.compile(r"^stages\.([0-3])\.norm\.(.*)$")


def original_to_ours(key: str) -> str | None:
    """Map one key of the original MiT/PVTv2 layout to ours; ``None`` for keys to drop (head)."""
    if key.startswith("head."):
        return None
    if match := _ORIG_PATCH.match(key):
        stage, rest = int(match[1]), match[2]
        return f"patch_embed.{rest}" if stage == 1 else f"stages.{stage - 1}.downsample.{rest}"
    if match := _ORIG_BLOCK.match(key):
        rest = match[3].replace("mlp.dwconv.dwconv.", "mlp.dwconv.")
        return f"stages.{int(match[1]) - 1}.blocks.{match[2]}.{rest}"
    if match := _ORIG_NORM.match(key):
        return f"stages.{int(match[1]) - 1}.norm.{match[2]}"
    return key  # unknown: left as is so that strict loading names it


def ours_to_original(key: str) -> str:
    """Map one key of our backbone to the original MiT/PVTv2 layout (inverse of the above)."""
    if match := _OURS_PATCH.match(key):
        return f"patch_embed1.{match[1]}"
    if match := _OURS_DOWN.match(key):
        return f"patch_embed{int(match[1]) + 1}.{match[2]}"
    if match := _OURS_BLOCK.match(key):
        rest = match[3].replace("mlp.dwconv.", "mlp.dwconv.dwconv.")
        return f"block{int(match[1]) + 1}.{match[2]}.{rest}"
    if match := _OURS_NORM.match(key):
        return f"norm{int(match[1]) + 1}.{match[2]}"
    return key
