"""Models: a pyramid backbone (MiT / PVTv2) plus one of three decoders, and their weights.

``build_model(name, backbone, num_classes=1, pretrained=None)`` builds

- ``SSFormer``: the official Progressive Locality Decoder (Wang et al., MICCAI 2022);
- ``PLDSegFormer``: the reproduction study's PLD variant;
- ``SegFormer``: the SegFormer MLP decoder (Xie et al., NeurIPS 2021);

on any backbone of :data:`ssformer.registry.BACKBONES`; presets ``SSFormer-S`` (MiT-B2) and
``SSFormer-L`` (MiT-B4) fix the backbone. The modules, lowest first:

- :mod:`~ssformer.models.backbones`: the backbone and its key maps;
- :mod:`~ssformer.models.heads`: the decoders, each with its name and checkpoint markers;
- :mod:`~ssformer.models.model`: backbone + decoder;
- :mod:`~ssformer.models.layouts`: pure state-dict layout transforms;
- :mod:`~ssformer.models.loading`: strict loading of every format, our own checkpoint format;
- :mod:`~ssformer.models.factories`: models from a name, a config or a checkpoint;
- :mod:`~ssformer.models.zoo`: the published weights and their download.

This package never imports :mod:`ssformer.data`.
"""

from __future__ import annotations

from ssformer.models.factories import (
    build_backbone,
    build_model,
    load_model,
    model_from_checkpoint,
    model_from_config,
)
from ssformer.models.loading import load_weights, save_checkpoint_file
from ssformer.models.model import SegmentationModel

__all__ = [
    "SegmentationModel",
    "build_backbone",
    "build_model",
    "load_model",
    "load_weights",
    "model_from_checkpoint",
    "model_from_config",
    "save_checkpoint_file",
]
