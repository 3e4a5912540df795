"""The segmentation model: a pyramid backbone (MiT / PVTv2) followed by one decoder.

The module layout is ``backbone.*`` + ``decode_head.*``, as in both research repositories, so
their checkpoints map with a key rename of the backbone only (:mod:`ssformer.models.layouts`).
"""

from __future__ import annotations

import torch
from torch import nn

from ssformer.models.backbones import PyramidBackbone
from ssformer.registry import MODELS, implementation

__all__ = ["SegmentationModel", "assemble_model"]


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

    def fuse(self) -> SegmentationModel:
        """Run the decoder in its fused form (same logits, BN statistics and gradients up to
        float rounding, fewer FLOPs; see :mod:`ssformer.models.heads`): the step that training,
        ``val``, ``predict``, ``export``, ``bench`` and ``info`` take after building a model.
        The state dict is unchanged. Returns self."""
        self.decode_head.fuse()
        return self

    def extra_repr(self) -> str:
        return f"name={self.name}, backbone={self.backbone_name}, num_classes={self.num_classes}"


def assemble_model(name: str, backbone: str, num_classes: int) -> SegmentationModel:
    """Decoder ``name`` (canonical, a key of :data:`~ssformer.registry.MODELS`) on a freshly
    initialised ``backbone`` (canonical); the decoder is sized from the backbone's channels."""
    encoder = PyramidBackbone(backbone)
    head_class = implementation(MODELS, name)
    head = head_class(encoder.out_channels, num_classes, head_class.width_for(backbone))
    return SegmentationModel(name, encoder, head, num_classes)
