"""Loading weights into a model strictly, and writing our own checkpoint format.

:func:`load_weights` takes any supported file (see the formats below), detects its layout
(:func:`ssformer.models.layouts.describe_state_dict`), converts the keys and loads with
``strict=True``; anything that does not fit raises a
:class:`~ssformer.errors.CheckpointError` that names the missing, unexpected or mis-shaped keys
and says how to build the model that fits. Files are read by
:func:`ssformer.io.checkpoint_file.read_checkpoint` (``weights_only=True``).

Formats (see DESIGN.md "Checkpoint formats"):

- ``imagenet``: ImageNet MiT ``mit_b*.pth`` / PVTv2 ``pvt_v2_b*.pth`` in the original layout
  (``head.*`` is dropped); ``timm``: a backbone in timm's layout (the Hub's
  ``timm/pvt_v2_b*.in1k``); ``transformers``: the Hub's ``nvidia/mit-b*``;
- ``official``: the official SSFormer ``ssformer_S.pth`` / ``ssformer_L.pth``;
- ``study``: the reproduction study's ``SegFormer_*`` / ``PLDSegFormer_*`` files;
- ``ssformer``: ours, ``{"format": "ssformer", "model": state_dict, "meta": {...}}``, written
  atomically by :func:`save_checkpoint_file`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssformer.errors import CheckpointError
from ssformer.io.atomic import save_torch_atomic
from ssformer.io.checkpoint_file import read_checkpoint
from ssformer.models.backbones import PyramidBackbone
from ssformer.models.layouts import (
    StateDict,
    backbone_to_ours,
    describe_state_dict,
    guess_backbones,
    model_to_ours,
    unwrap_state_dict,
)
from ssformer.models.model import SegmentationModel
from ssformer.registry import MODELS, implementation

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "check_own",
    "load_payload",
    "load_weights",
    "read_ssformer_checkpoint",
    "save_checkpoint_file",
]

LOG = logging.getLogger(__name__)
FORMAT = "ssformer"
FORMAT_VERSION = 1


def read_ssformer_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read one of our own checkpoint files (``format == "ssformer"``) and check its structure."""
    return check_own(read_checkpoint(path), path)


def check_own(payload: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``payload`` (read from ``path``) if it is a well-formed ssformer checkpoint."""
    if payload.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is not an ssformer checkpoint (no 'format': 'ssformer' entry); "
            "load published weights with ssformer.load_weights(model, path) instead"
        )
    model_state = payload.get("model")
    meta = payload.get("meta")
    if not isinstance(model_state, dict) or not isinstance(meta, dict):
        raise CheckpointError(
            f"checkpoint {path} is an ssformer checkpoint without a 'model' state dict or "
            "'meta' dict; it is damaged: use another copy"
        )
    return payload


def _strict_load(
    module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str
) -> None:
    """``load_state_dict(strict=True)`` with a clear error listing what does not fit."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch (file vs model)", mismatched),
        ):
            if items:
                shown = ", ".join(items[:6]) + (
                    f", ... ({len(items)} in all)" if len(items) > 6 else ""
                )
                parts.append(f"{label}: {shown}")
        raise CheckpointError(
            f"checkpoint {path} does not fit {what}: "
            + "; ".join(parts)
            + ". Check that the file is for this model, backbone and number of classes"
        )
    module.load_state_dict(state, strict=True)


def _model_label(model: nn.Module) -> str:
    if isinstance(model, SegmentationModel):
        return f"{model.name} on {model.backbone_name} with {model.num_classes} classes"
    if isinstance(model, PyramidBackbone):
        return f"backbone {model.name}"
    return type(model).__name__


def _check_backbone_fits(found: list[str], expected: str, path: Path, fix: str) -> None:
    if found and expected not in found:
        raise CheckpointError(
            f"checkpoint {path} holds a {' / '.join(found)} backbone, but the model's backbone "
            f"is {expected}: {fix}"
        )


def _load_backbone_state(
    backbone: PyramidBackbone, state: StateDict, path: Path, *, in_model: bool
) -> None:
    converted, dropped = backbone_to_ours(state)
    if dropped:
        LOG.info(
            "%s: dropped %d classifier keys (head.*) of the ImageNet weights", path, len(dropped)
        )
    found = guess_backbones(converted)
    fix = (
        f"build the model with backbone={found[0]!r}"
        if in_model and found
        else f"use build_backbone({found[0]!r})"
        if found
        else "use the file for the right backbone"
    )
    _check_backbone_fits(found, backbone.name, path, fix)
    _strict_load(backbone, converted, path, f"backbone {backbone.name}")


def _load_model_state(model: SegmentationModel, state: StateDict, path: Path) -> None:
    info = describe_state_dict(state)
    head = info["head"]
    if head is None:
        raise CheckpointError(
            f"checkpoint {path} holds a backbone and a decode head of an unknown kind; supported "
            f"heads: {', '.join(MODELS)}"
        )
    if head != model.name:
        raise CheckpointError(
            f"checkpoint {path} holds a {head} model (decode head of {implementation(MODELS, head).published_in}), but the "
            f"model is {model.name}: build it with build_model({head!r}, ...)"
        )
    _check_backbone_fits(
        info["backbones"],
        model.backbone_name,
        path,
        f"build the model with backbone={info['backbones'][0]!r}" if info["backbones"] else "",
    )
    classes = info["num_classes"]
    if classes is not None and classes != model.num_classes:
        raise CheckpointError(
            f"checkpoint {path} has {classes} output classes, but the model has "
            f"{model.num_classes}: build it with num_classes={classes}"
        )
    _strict_load(model, model_to_ours(state, head), path, _model_label(model))


def _load_own(model: nn.Module, payload: Mapping[str, Any], path: Path) -> None:
    meta = payload["meta"]
    state = payload["model"]
    if isinstance(model, SegmentationModel):
        wanted = {
            "name": model.name,
            "backbone": model.backbone_name,
            "num_classes": model.num_classes,
        }
        fixes = {
            "name": "build_model({!r}, ...)",
            "backbone": "backbone={!r}",
            "num_classes": "num_classes={!r}",
        }
        for field, value in wanted.items():
            stored = meta.get(field)
            if stored is not None and stored != value:
                raise CheckpointError(
                    f"checkpoint {path} was saved from a model with {field} {stored!r}, but this "
                    f"model has {value!r}: build it with {fixes[field].format(stored)} "
                    "or use ssformer.models.model_from_checkpoint(path)"
                )
    elif isinstance(model, PyramidBackbone):
        stored = meta.get("backbone")
        if stored is not None and stored != model.name:
            raise CheckpointError(
                f"checkpoint {path} holds a {stored} backbone, but the model's backbone is "
                f"{model.name}: use build_backbone({stored!r})"
            )
        if meta.get("name") is not None:
            state = {
                k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")
            }
    _strict_load(model, state, path, _model_label(model))


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load any supported checkpoint file into ``model`` (a model or a backbone), strictly.

    ImageNet backbone files load into a backbone or into a model's ``backbone``; full-model files
    (official, study, ours) load into a model built with the same name, backbone and classes.
    Raises :class:`CheckpointError` naming the file and the fix when anything does not fit.
    """
    path = Path(path)
    load_payload(model, read_checkpoint(path), path)


def load_payload(model: nn.Module, payload: dict[str, Any], path: str | Path) -> None:
    """:func:`load_weights` of a checkpoint already read from ``path`` (no second read)."""
    path = Path(path)
    if payload.get("format") == FORMAT:
        _load_own(model, check_own(payload, path), path)
        return
    state = unwrap_state_dict(payload, path)
    info = describe_state_dict(state)
    if info["kind"] == "unknown":
        shown = ", ".join(list(state)[:4])
        raise CheckpointError(
            f"checkpoint {path} is not a supported format (first keys: {shown}); expected ImageNet "
            "MiT/PVTv2 weights (original, timm or transformers layout), an official SSFormer, a "
            "reproduction-study or an ssformer checkpoint"
        )
    if info["kind"] == "backbone":
        if isinstance(model, SegmentationModel):
            _load_backbone_state(model.backbone, state, path, in_model=True)
        elif isinstance(model, PyramidBackbone):
            _load_backbone_state(model, state, path, in_model=False)
        else:
            raise CheckpointError(
                f"checkpoint {path} holds backbone weights; load it into an ssformer model or "
                f"backbone, not a {type(model).__name__}"
            )
        return
    if not isinstance(model, SegmentationModel):
        raise CheckpointError(
            f"checkpoint {path} holds a full {info['head'] or 'segmentation'} model (backbone + "
            "decode head), not only backbone weights: load it into a model from "
            "ssformer.build_model(...) or use model_from_checkpoint(path)"
        )
    _load_model_state(model, state, path)


# ----------------------------------------------------------------------------- writing files


def _check_storable(value: Any, where: str) -> None:
    """Metadata must load back under ``weights_only=True``: plain Python and tensors only."""
    if value is None or isinstance(value, (str, int, float, bool, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_storable(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"checkpoint entry {where} has a non-string key {key!r}")
            _check_storable(item, f"{where}.{key}")
        return
    raise CheckpointError(
        f"checkpoint entry {where} is a {type(value).__name__}, which safe loading cannot read; "
        "store plain str/int/float/bool/list/dict values (e.g. str(path))"
    )


def save_checkpoint_file(
    path: str | Path, model: nn.Module, *, extra: Mapping[str, Any] | None = None, **meta: Any
) -> Path:
    """Write ``{"format": "ssformer", "model": state_dict, "meta": {...}, **extra}`` atomically.

    ``meta`` gets ``name``, ``backbone`` and ``num_classes`` from the model plus the keyword
    arguments (e.g. ``config=...``, ``epoch=...``); ``extra`` adds top-level entries such as
    ``optimizer`` state. The file is written to a temporary file in the same folder and renamed.
    """
    path = Path(path)
    full_meta: dict[str, Any] = {
        "name": getattr(model, "name", None) if isinstance(model, SegmentationModel) else None,
        "backbone": getattr(model, "backbone_name", getattr(model, "name", None)),
        "num_classes": getattr(model, "num_classes", None),
        **meta,
    }
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "meta": full_meta,
    }
    for key, value in (extra or {}).items():
        if key in payload:
            raise CheckpointError(
                f"extra entry {key!r} would overwrite a reserved checkpoint entry"
            )
        payload[key] = value
    _check_storable({k: v for k, v in payload.items() if k != "model"}, "checkpoint")
    return save_torch_atomic(payload, path)
