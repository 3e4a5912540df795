"""Pure state-dict layout transforms: every published key layout to ours and back.

- the original MiT / PVTv2 layout (``patch_embed1``, ``block1.0``, ``norm1``,
  ``mlp.dwconv.dwconv``) and timm's (``patch_embed``, ``stages.0.blocks.0``), key by key through
  :func:`ssformer.models.backbones.original_to_ours`;
- transformers' SegFormer encoder (the Hugging Face Hub's ``nvidia/mit-b*``:
  ``segformer.encoder.*``, key and value split) to the original layout;
- full models (``backbone.<original>`` + ``decode_head.*``), each decoder's published renames
  taken from its class in :mod:`ssformer.models.heads`.

:func:`describe_state_dict` says what a state dict holds (backbone or model, which decoder,
which backbones fit, how many classes). Nothing here reads a file or changes a module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssformer.errors import CheckpointError
from ssformer.models.backbones import original_to_ours, ours_to_original
from ssformer.models.model import SegmentationModel
from ssformer.registry import BACKBONE_SPECS, MODELS, implementation

__all__ = [
    "StateDict",
    "backbone_to_ours",
    "describe_state_dict",
    "export_state_dict",
    "guess_backbones",
    "model_to_ours",
    "transformers_to_original",
    "unwrap_state_dict",
]

StateDict = dict[str, torch.Tensor]


def unwrap_state_dict(payload: Mapping[str, Any], path: Path) -> StateDict:
    """The tensor dict inside a published checkpoint (handles ``state_dict``/``module.``)."""
    state: Mapping[str, Any] = payload
    for wrapper in ("state_dict", "model"):
        inner = state.get(wrapper)
        if isinstance(inner, Mapping) and not any(
            isinstance(value, torch.Tensor) for value in state.values()
        ):
            state = inner
            break
    non_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if non_tensors or not state:
        shown = ", ".join(map(str, non_tensors[:5])) or "(empty)"
        raise CheckpointError(
            f"checkpoint {path} is not a state dict of tensors (entries: {shown}); "
            "pass a weights file (.pth) of one of the supported formats"
        )
    keys = list(state)
    if all(key.startswith("module.") for key in keys):  # saved from DataParallel/DDP
        state = {key[len("module.") :]: value for key, value in state.items()}
    if any(key.startswith(_TRANSFORMERS_PREFIXES) for key in state):
        return transformers_to_original(state, path)
    return dict(state)


# transformers' SegformerModel names (see its convert_segformer_original_to_pytorch.py) -> the
# original MiT names, inside one block; key and value are two Linear layers there, one ``kv``
# (key rows first) in the original.
_TRANSFORMERS_PREFIXES = ("segformer.encoder.", "encoder.")
_TRANSFORMERS_BLOCK_RENAMES = (
    ("attention.self.query.", "attn.q."),
    ("attention.self.sr.", "attn.sr."),
    ("attention.self.layer_norm.", "attn.norm."),
    ("attention.output.dense.", "attn.proj."),
    ("layer_norm_1.", "norm1."),
    ("layer_norm_2.", "norm2."),
    ("mlp.dense1.", "mlp.fc1."),
    ("mlp.dense2.", "mlp.fc2."),
)
_TRANSFORMERS_PATCH = re.compile(r"^patch_embeddings\.([0-3])\.(proj|layer_norm)\.(weight|bias)$")
_TRANSFORMERS_BLOCK = re.compile(r"^block\.([0-3])\.(\d+)\.(.+)$")
_TRANSFORMERS_NORM = re.compile(r"^layer_norm\.([0-3])\.(weight|bias)$")
_TRANSFORMERS_KV = re.compile(r"^(block\d\.\d+\.)attention\.self\.(key|value)\.(weight|bias)$")


def transformers_to_original(state: Mapping[str, torch.Tensor], path: Path | str) -> StateDict:
    """A MiT encoder in transformers' SegFormer layout -> the original MiT layout.

    The ImageNet ``classifier.*`` becomes ``head.*`` (dropped with a log line when loading into a
    backbone); keys of a decode head (``decode_head.*``) are refused: only encoders convert.
    """
    converted: StateDict = {}
    pairs: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("classifier."):
            converted["head." + key[len("classifier.") :]] = value
            continue
        prefix = next((p for p in _TRANSFORMERS_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise CheckpointError(
                f"checkpoint {path} is in transformers' SegFormer layout but also holds {key!r}; "
                "only the MiT encoder (nvidia/mit-b*) converts: pass an encoder checkpoint"
            )
        rest = key[len(prefix) :]
        if match := _TRANSFORMERS_PATCH.match(rest):
            part = "norm" if match[2] == "layer_norm" else "proj"
            converted[f"patch_embed{int(match[1]) + 1}.{part}.{match[3]}"] = value
        elif match := _TRANSFORMERS_NORM.match(rest):
            converted[f"norm{int(match[1]) + 1}.{match[2]}"] = value
        elif match := _TRANSFORMERS_BLOCK.match(rest):
            block = f"block{int(match[1]) + 1}.{match[2]}."
            inner = match[3]
            if kv := _TRANSFORMERS_KV.match(block + inner):
                pairs.setdefault((kv[1], kv[3]), {})[kv[2]] = value
                continue
            for old, new in _TRANSFORMERS_BLOCK_RENAMES:
                if inner.startswith(old):
                    inner = new + inner[len(old) :]
                    break
            converted[block + inner] = value
        else:
            converted[rest] = value  # unknown: strict loading names it
    for (block, kind), parts in pairs.items():
        if set(parts) != {"key", "value"}:
            raise CheckpointError(
                f"checkpoint {path} has attention {kind}s of {block} without their "
                f"{'value' if 'key' in parts else 'key'}; the file is incomplete: download it again"
            )
        converted[f"{block}attn.kv.{kind}"] = torch.cat([parts["key"], parts["value"]])
    return converted


_OURS_BLOCK = re.compile(r"^stages\.([0-3])\.blocks\.(\d+)\.")


def backbone_to_ours(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, list[str]]:
    """Backbone keys (original or timm layout) -> ours; returns (state, dropped keys)."""
    converted: StateDict = {}
    dropped: list[str] = []
    for key, value in state.items():
        new_key = original_to_ours(key)
        if new_key is None:
            dropped.append(key)
        else:
            converted[new_key] = value
    return converted, dropped


def guess_backbones(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Backbone names whose shapes fit a state dict in our backbone layout."""
    try:
        dims = [int(state["patch_embed.proj.weight"].shape[0])]
        dims += [int(state[f"stages.{i}.downsample.proj.weight"].shape[0]) for i in (1, 2, 3)]
        depths = [0, 0, 0, 0]
        for key in state:
            if match := _OURS_BLOCK.match(key):
                stage, index = int(match[1]), int(match[2])
                depths[stage] = max(depths[stage], index + 1)
        ratios = [state[f"stages.{i}.blocks.0.mlp.fc1.weight"].shape[0] / dims[i] for i in range(4)]
    except (KeyError, IndexError):
        return []
    return [
        name
        for name, spec in BACKBONE_SPECS.items()
        if list(spec.embed_dims) == dims
        and list(spec.depths) == depths
        and [float(r) for r in spec.mlp_ratios] == ratios
    ]


def describe_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """What a published state dict holds: ``kind`` (``backbone``/``model``), ``layout``,
    ``head`` (model name or None), ``backbones`` (names that fit), ``num_classes`` (or None)."""
    keys = list(state)
    if any(key.startswith("backbone.") for key in keys) and any(
        key.startswith("decode_head.") for key in keys
    ):
        head = next(
            (name for name in MODELS if implementation(MODELS, name).checkpoint_marker in state),
            None,
        )
        backbone_part = {
            key[len("backbone.") :]: value
            for key, value in state.items()
            if key.startswith("backbone.")
        }
        converted, _ = backbone_to_ours(backbone_part)
        layout = "original" if "patch_embed1.proj.weight" in backbone_part else "timm"
        pred = state.get("decode_head.linear_pred.weight")
        if pred is None:
            pred = state.get("decode_head.Conv2d.weight", state.get("decode_head.pred.weight"))
        return {
            "kind": "model",
            "layout": layout,
            "head": head,
            "backbones": guess_backbones(converted),
            "num_classes": None if pred is None else int(pred.shape[0]),
        }
    if "patch_embed1.proj.weight" in state or "patch_embed.proj.weight" in state:
        converted, _ = backbone_to_ours(state)
        layout = "original" if "patch_embed1.proj.weight" in state else "timm"
        return {
            "kind": "backbone",
            "layout": layout,
            "head": None,
            "backbones": guess_backbones(converted),
            "num_classes": None,
        }
    return {"kind": "unknown", "layout": None, "head": None, "backbones": [], "num_classes": None}


def model_to_ours(state: Mapping[str, torch.Tensor], head: str | None) -> StateDict:
    """Full-model state dict in a published layout -> our module keys."""
    converted: StateDict = {}
    for key, value in state.items():
        if key.startswith("backbone."):
            new_key = original_to_ours(key[len("backbone.") :])
            if new_key is None:  # a classifier kept inside the backbone
                continue
            converted[f"backbone.{new_key}"] = value
            continue
        for published, ours in implementation(MODELS, head).published_renames if head else ():
            if key.startswith(published):
                key = ours + key[len(published) :]
        converted[key] = value
    return converted


def export_state_dict(model: nn.Module, layout: str) -> StateDict:
    """Our model's weights in a published layout, e.g. to share them or to test loaders.

    ``layout``: ``"imagenet"`` (a backbone, original MiT/PVTv2 keys), ``"official"`` (an
    ``SSFormer`` as the official repo saves it) or ``"study"`` (a ``SegFormer``/``PLDSegFormer``
    as the reproduction study saves it).
    """
    state = {
        key: value.detach() if value.is_meta else value.detach().cpu()
        for key, value in model.state_dict().items()
    }
    if layout == "imagenet":
        if isinstance(model, SegmentationModel):
            state = {
                k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")
            }
        return {ours_to_original(key): value for key, value in state.items()}
    if layout in ("official", "study"):
        if not isinstance(model, SegmentationModel):
            raise CheckpointError(
                f"layout {layout!r} needs a full model, not {type(model).__name__}"
            )
        out: StateDict = {}
        for key, value in state.items():
            if key.startswith("backbone."):
                key = "backbone." + ours_to_original(key[len("backbone.") :])
            else:
                for published, ours in implementation(MODELS, model.name).published_renames:
                    if key.startswith(ours):
                        key = published + key[len(ours) :]
            out[key] = value
        return out
    raise CheckpointError(f"unknown layout {layout!r}; use 'imagenet', 'official' or 'study'")
