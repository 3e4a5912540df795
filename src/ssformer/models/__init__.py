"""Model zoo: a pyramid backbone (MiT / PVTv2) plus one of three decoders.

``build_model(name, backbone, num_classes=1, pretrained=None)`` builds

- ``SSFormer``: the official Progressive Locality Decoder (Wang et al., MICCAI 2022);
- ``PLDSegFormer``: the reproduction study's PLD variant;
- ``SegFormer``: the SegFormer MLP decoder (Xie et al., NeurIPS 2021);

on any of :data:`ssformer.models.backbones.BACKBONES`. Presets ``SSFormer-S`` (MiT-B2) and
``SSFormer-L`` (MiT-B4) fix the backbone. The module layout is ``backbone.*`` + ``decode_head.*``,
as in both research repos, so their checkpoints map with a key rename of the backbone only.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ssformer.errors import ConfigError
from ssformer.models.backbones import BACKBONES, PyramidBackbone, canonical_backbone_name
from ssformer.models.heads import ProgressiveLocalityDecoder, SegFormerHead, StudyPLDHead

__all__ = [
    "BACKBONES",
    "MODELS",
    "PRESETS",
    "SegmentationModel",
    "build_model",
    "canonical_model_name",
    "decoder_width",
]

MODELS: tuple[str, ...] = ("SSFormer", "PLDSegFormer", "SegFormer")
PRESETS: dict[str, tuple[str, str]] = {
    "SSFormer-S": ("SSFormer", "MiT-B2"),
    "SSFormer-L": ("SSFormer", "MiT-B4"),
}


class SegmentationModel(nn.Module):
    """``backbone`` -> ``decode_head`` -> logits ``[B, num_classes, H, W]`` at input size.

    Attributes ``name`` (head name, e.g. ``"SSFormer"``), ``backbone_name`` and ``num_classes``
    describe the model (they go into our checkpoint metadata).
    """

    def __init__(
        self, name: str, backbone: PyramidBackbone, decode_head: nn.Module, num_classes: int
    ) -> None:
        super().__init__()
        self.name = name
        self.backbone_name = backbone.name
        self.num_classes = num_classes
        self.backbone = backbone
        self.decode_head = decode_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        return self.decode_head(features, (x.shape[-2], x.shape[-1]))

    def extra_repr(self) -> str:
        return f"name={self.name}, backbone={self.backbone_name}, num_classes={self.num_classes}"


def canonical_model_name(name: str) -> str:
    """Canonical spelling of a model or preset name (case-insensitive)."""
    lookup = {key.lower(): key for key in (*MODELS, *PRESETS)}
    key = lookup.get(str(name).strip().lower())
    if key is None:
        valid = ", ".join((*MODELS, *PRESETS))
        raise ConfigError(f"unknown model {name!r}; choose one of: {valid}")
    return key


def decoder_width(name: str, backbone: str) -> int:
    """Decoder width: 256 for SSFormer; 256 (B0/B1) or 768 for the study's heads."""
    if name == "SSFormer":
        return 256
    return 256 if backbone.endswith(("B0", "B1")) else 768


def build_model(
    name: str,
    backbone: str | None = None,
    num_classes: int = 1,
    pretrained: str | Path | None = None,
) -> SegmentationModel:
    """Build model ``name`` on ``backbone``; ``pretrained`` = ImageNet backbone weights file.

    ``name`` is one of :data:`MODELS` or a preset of :data:`PRESETS` (then ``backbone`` may be
    ``None``; if given it must match the preset). Raises :class:`ssformer.errors.ConfigError`
    for unknown names and :class:`ssformer.errors.CheckpointError` for a bad weights file.
    """
    name = canonical_model_name(name)
    if name in PRESETS:
        head_name, preset_backbone = PRESETS[name]
        if backbone is not None and canonical_backbone_name(backbone) != preset_backbone:
            raise ConfigError(
                f"model {name} is {head_name} on {preset_backbone}, not on {backbone!r}; "
                f"drop the backbone argument or use build_model({head_name!r}, {backbone!r})"
            )
        name, backbone = head_name, preset_backbone
    if backbone is None:
        raise ConfigError(f"model {name} needs a backbone; choose one of: {', '.join(BACKBONES)}")
    backbone = canonical_backbone_name(backbone)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")

    encoder = PyramidBackbone(backbone)
    width = decoder_width(name, backbone)
    channels = encoder.out_channels
    head: nn.Module
    if name == "SSFormer":
        head = ProgressiveLocalityDecoder(channels, num_classes, width)
    elif name == "PLDSegFormer":
        head = StudyPLDHead(channels, num_classes, width)
    else:
        head = SegFormerHead(channels, num_classes, width)
    model = SegmentationModel(name, encoder, head, num_classes)
    if pretrained is not None:
        from ssformer.models.checkpoints import load_weights

        load_weights(model.backbone, pretrained)
    return model
