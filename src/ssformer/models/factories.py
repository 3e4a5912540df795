"""Building models: by name (:func:`build_model`, the public API), from a config
(:func:`model_from_config`) and from a checkpoint file (:func:`model_from_checkpoint`,
:func:`load_model`), plus the checks that a downloaded file is the weights it claims to be."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssformer.errors import CheckpointError, ConfigError, SSFormerError
from ssformer.io.checkpoint_file import read_checkpoint
from ssformer.io.paths import why_not_file
from ssformer.models.backbones import PyramidBackbone
from ssformer.models.layouts import describe_state_dict, unwrap_state_dict
from ssformer.models.loading import FORMAT, check_own, load_payload, load_weights
from ssformer.models.model import SegmentationModel, assemble_model
from ssformer.registry import (
    BACKBONES,
    PRESETS,
    WEIGHT_NAMES,
    canonical_backbone_name,
    canonical_model_name,
)

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = [
    "build_backbone",
    "build_model",
    "load_model",
    "model_from_checkpoint",
    "model_from_config",
    "model_from_payload",
    "verify_backbone_file",
    "verify_model_file",
]


def build_model(
    name: str,
    backbone: str | None = None,
    num_classes: int = 1,
    pretrained: str | Path | None = None,
) -> SegmentationModel:
    """Build model ``name`` on ``backbone``; ``pretrained`` = ImageNet backbone weights file.

    ``name`` is one of :data:`ssformer.registry.MODELS` or a preset of :data:`ssformer.registry.PRESETS` (then ``backbone`` may be
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

    model = assemble_model(name, backbone, num_classes)
    if pretrained is not None:
        load_weights(model.backbone, pretrained)
    return model


def build_backbone(name: str, pretrained: str | Path | None = None) -> PyramidBackbone:
    """Build backbone ``name`` (one of :data:`ssformer.registry.BACKBONES`), optionally loading
    ImageNet weights (a ``mit_b*.pth`` / ``pvt_v2_b*.pth`` file, or any other format that
    :func:`ssformer.load_weights` accepts)."""
    backbone = PyramidBackbone(canonical_backbone_name(name))
    if pretrained is not None:
        load_weights(backbone, pretrained)
    return backbone


def model_from_config(config: Config, *, pretrained: bool = True) -> SegmentationModel:
    """The model of ``config.model``; with ``pretrained``, ``MODEL.PRETRAINED`` (if set) loaded
    into its backbone, and a missing file named with the command that downloads it."""
    weights = config.model.pretrained if pretrained else None
    if weights and not Path(weights).is_file():
        name = config.model.backbone.lower()
        fetch = (
            f"download the ImageNet weights with `ssformer download weights {name}`"
            if name in WEIGHT_NAMES
            else f"{config.model.backbone} has no published ImageNet weights to download"
        )
        raise CheckpointError(
            f"MODEL.PRETRAINED={weights} does not exist; {fetch}, or train from scratch with "
            "--set MODEL.PRETRAINED=null"
        )
    return build_model(
        config.model.name,
        config.model.backbone,
        num_classes=int(config.model.num_classes or 1),
        pretrained=weights or None,
    )


def model_from_checkpoint(path: str | Path) -> SegmentationModel:
    """Build the model a checkpoint describes and load it (ours, official or study files)."""
    path = Path(path)
    return model_from_payload(read_checkpoint(path), path)


def model_from_payload(payload: dict[str, Any], path: str | Path) -> SegmentationModel:
    """:func:`model_from_checkpoint` of a checkpoint already read from ``path``."""
    path = Path(path)
    if payload.get("format") == FORMAT:
        meta = check_own(payload, path)["meta"]
        name, backbone, classes = meta.get("name"), meta.get("backbone"), meta.get("num_classes")
        if name is None or backbone is None or classes is None:
            raise CheckpointError(
                f"checkpoint {path} has no model name/backbone/num_classes in its metadata (a "
                "backbone-only file?); build the model yourself and use load_weights"
            )
    else:
        info = describe_state_dict(unwrap_state_dict(payload, path))
        if info["kind"] != "model" or info["head"] is None or not info["backbones"]:
            raise CheckpointError(
                f"checkpoint {path} does not describe a whole known model (kind {info['kind']}); "
                "build the model with ssformer.build_model(...) and call load_weights"
            )
        name, backbone, classes = info["head"], info["backbones"][0], info["num_classes"] or 1
    try:
        model = build_model(str(name), str(backbone), num_classes=int(classes))
    except SSFormerError as error:
        raise CheckpointError(f"checkpoint {path} describes an unknown model: {error}") from error
    load_payload(model, payload, path)
    return model


def verify_backbone_file(path: str | Path, backbone_name: str) -> None:
    """Raise :class:`CheckpointError` unless ``path`` loads strictly into ``backbone_name``."""
    load_weights(build_backbone(backbone_name), path)


def verify_model_file(
    path: str | Path, name: str, backbone: str | None = None, num_classes: int | None = None
) -> None:
    """Raise :class:`CheckpointError` unless ``path`` loads strictly into model ``name``.

    ``num_classes`` defaults to the number of classes stored in the file.
    """
    canonical_model_name(name)
    payload = read_checkpoint(path)
    if num_classes is None:
        if payload.get("format") == FORMAT:
            num_classes = check_own(payload, path)["meta"].get("num_classes")
        else:
            num_classes = describe_state_dict(unwrap_state_dict(payload, Path(path)))["num_classes"]
    model = build_model(name, backbone, num_classes=int(num_classes or 1))
    load_payload(model, payload, path)


def load_model(weights: str | Path, config: Config | None = None) -> SegmentationModel:
    """The model stored in ``weights``, ready for inference: built from its own metadata (our
    checkpoints) or from the config's ``MODEL`` section (official SSFormer and
    reproduction-study files, which :func:`ssformer.load_weights` converts and loads strictly),
    and fused (:meth:`~ssformer.models.model.SegmentationModel.fuse`)."""
    path = Path(weights)
    if not path.is_file():
        raise CheckpointError(
            f"weights file {path} {why_not_file(path)}; train a model (ssformer train --cfg CONFIG), "
            "download published weights (`ssformer download weights ssformer-s`) or pass "
            "--weights PATH"
        )
    payload = read_checkpoint(path)  # read once: checkpoints can be hundreds of MB
    if config is None or payload.get("format") == FORMAT:
        return model_from_payload(payload, path).fuse()
    model = model_from_config(config, pretrained=False)
    load_payload(model, payload, path)
    return model.fuse()
