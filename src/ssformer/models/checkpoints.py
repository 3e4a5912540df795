"""Reading, converting and writing checkpoints of every published format, strictly and safely.

Formats (detected from the keys, see DESIGN.md "Checkpoint formats"):

- ``imagenet``: ImageNet MiT ``mit_b*.pth`` / PVTv2 ``pvt_v2_b*.pth`` in the original layout
  (``patch_embed1``, ``block1.0``, ``norm1``, ``mlp.dwconv.dwconv``; ``head.*`` is dropped);
- ``timm``: a backbone in timm's layout (``patch_embed``, ``stages.0.blocks.0``), e.g. the
  Hugging Face Hub's ``timm/pvt_v2_b*.in1k`` ``model.safetensors``;
- ``transformers``: the Hugging Face Hub's ``nvidia/mit-b*`` (``segformer.encoder.*`` of
  transformers' ``SegformerForImageClassification``, key and value split); converted to the
  original layout on reading;
- ``official``: the official SSFormer ``ssformer_S.pth`` / ``ssformer_L.pth``
  (``backbone.<original MiT>`` + ``decode_head.linear_c*/linear_fuse*/linear_pred``);
- ``study``: the reproduction study's ``SegFormer_*`` / ``PLDSegFormer_*`` files
  (``backbone.<original MiT>`` + its ``decode_head.*``);
- ``ssformer``: ours, ``{"format": "ssformer", "model": state_dict, "meta": {...}}``.

Files always go through ``torch.load(path, map_location="cpu", weights_only=True)`` (they come
from the internet), or ``safetensors`` for safetensors files. Every problem becomes a
:class:`ssformer.errors.CheckpointError` that names the file, says what is wrong and what to do.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssformer.data.archives import looks_like_html
from ssformer.errors import CheckpointError, SSFormerError
from ssformer.fileio import save_torch_atomic
from ssformer.models import MODELS, SegmentationModel, build_model, canonical_model_name
from ssformer.models.backbones import (
    VARIANTS,
    PyramidBackbone,
    build_backbone,
    canonical_backbone_name,
    original_to_ours,
    ours_to_original,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "describe_state_dict",
    "export_state_dict",
    "load_payload",
    "load_weights",
    "model_from_checkpoint",
    "model_from_payload",
    "read_checkpoint",
    "read_ssformer_checkpoint",
    "save_checkpoint_file",
    "transformers_to_original",
    "verify_backbone_file",
    "verify_model_file",
]

LOG = logging.getLogger(__name__)
FORMAT = "ssformer"
FORMAT_VERSION = 1
StateDict = dict[str, torch.Tensor]

# The study's PLD head names its last conv ``Conv2d``; ours is ``pred``.
_STUDY_PLD_RENAMES = (("decode_head.Conv2d.", "decode_head.pred."),)
_HEAD_MARKERS = (
    ("SSFormer", "decode_head.linear_fuse34.conv.weight"),
    ("PLDSegFormer", "decode_head.conv_fuse_12.conv.weight"),
    ("SegFormer", "decode_head.linear_c1.proj.weight"),
)
_PUBLISHED = {
    "SSFormer": "the official SSFormer repository (ssformer_S.pth / ssformer_L.pth)",
    "PLDSegFormer": "the reproduction study (PLDSegFormer_*.pth)",
    "SegFormer": "the reproduction study (SegFormer_*.pth)",
}


# ----------------------------------------------------------------------------- reading files


def _sniff(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(1024)


def _first_sentence(error: BaseException) -> str:
    text = str(error).strip()
    return text.split(". ")[0].splitlines()[0] if text else type(error).__name__


def _looks_like_safetensors(head: bytes, path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return int.from_bytes(head[:8], "little") < path.stat().st_size


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} is a damaged or truncated safetensors file "
            f"({_first_sentence(error)}); delete it and download again"
        ) from error


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load ``path`` with ``weights_only=True`` and return the top-level dict.

    Raises :class:`CheckpointError` for a missing, empty, truncated or HTML file, for pickled
    objects that ``weights_only`` refuses and for anything that is not a dict.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path or download it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file (a directory?); pass a .pth file")
    try:
        head = _sniff(path)
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); delete it and download again")
    if looks_like_html(head):
        raise CheckpointError(
            f"checkpoint {path} is an HTML page, not a PyTorch checkpoint: a failed download "
            "(e.g. Google Drive's 'quota exceeded' or 'cannot scan for viruses' page). Delete it "
            "and download again later, or download it manually in a browser from the Drive link "
            "in the README and put it at this path"
        )
    if _looks_like_safetensors(head, path):
        return _read_safetensors(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "weights only" in text.lower() or "weights_only" in text.lower():
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f" ({found[1]})" if found else ""
            raise CheckpointError(
                f"checkpoint {path} contains pickled Python objects{what} that safe loading "
                "(weights_only=True) refuses. Only plain state dicts are accepted: re-save it as "
                "torch.save(model.state_dict(), path) from code you trust"
            ) from error
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({_first_sentence(error)}); delete it "
            "and download again"
        ) from error
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        AttributeError,
        IndexError,
        KeyError,
    ) as error:
        first = _first_sentence(error)
        size = path.stat().st_size
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) is truncated or not a PyTorch file ({first}); "
            "an interrupted download is the usual cause: delete it and download again"
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(payload).__name__}, not a dict of weights; "
            "save checkpoints as torch.save(model.state_dict(), path)"
        )
    return payload


def read_ssformer_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read one of our own checkpoint files (``format == "ssformer"``) and check its structure."""
    return _check_own(read_checkpoint(path), path)


def _check_own(payload: dict[str, Any], path: str | Path) -> dict[str, Any]:
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


def _unwrap_state_dict(payload: Mapping[str, Any], path: Path) -> StateDict:
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


# ------------------------------------------------------------------------- describing weights

_OURS_BLOCK = re.compile(r"^stages\.([0-3])\.blocks\.(\d+)\.")


def _backbone_to_ours(state: Mapping[str, torch.Tensor]) -> tuple[StateDict, list[str]]:
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


def _guess_backbones(state: Mapping[str, torch.Tensor]) -> list[str]:
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
        for name, spec in VARIANTS.items()
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
        head = next((name for name, marker in _HEAD_MARKERS if marker in state), None)
        backbone_part = {
            key[len("backbone.") :]: value
            for key, value in state.items()
            if key.startswith("backbone.")
        }
        converted, _ = _backbone_to_ours(backbone_part)
        layout = "original" if "patch_embed1.proj.weight" in backbone_part else "timm"
        pred = state.get("decode_head.linear_pred.weight")
        if pred is None:
            pred = state.get("decode_head.Conv2d.weight", state.get("decode_head.pred.weight"))
        return {
            "kind": "model",
            "layout": layout,
            "head": head,
            "backbones": _guess_backbones(converted),
            "num_classes": None if pred is None else int(pred.shape[0]),
        }
    if "patch_embed1.proj.weight" in state or "patch_embed.proj.weight" in state:
        converted, _ = _backbone_to_ours(state)
        layout = "original" if "patch_embed1.proj.weight" in state else "timm"
        return {
            "kind": "backbone",
            "layout": layout,
            "head": None,
            "backbones": _guess_backbones(converted),
            "num_classes": None,
        }
    return {"kind": "unknown", "layout": None, "head": None, "backbones": [], "num_classes": None}


def _model_to_ours(state: Mapping[str, torch.Tensor], head: str | None) -> StateDict:
    """Full-model state dict in a published layout -> our module keys."""
    converted: StateDict = {}
    for key, value in state.items():
        if key.startswith("backbone."):
            new_key = original_to_ours(key[len("backbone.") :])
            if new_key is None:  # a classifier kept inside the backbone
                continue
            converted[f"backbone.{new_key}"] = value
            continue
        if head == "PLDSegFormer":
            for old, new in _STUDY_PLD_RENAMES:
                if key.startswith(old):
                    key = new + key[len(old) :]
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
            elif model.name == "PLDSegFormer":
                for old, new in _STUDY_PLD_RENAMES:
                    if key.startswith(new):
                        key = old + key[len(new) :]
            out[key] = value
        return out
    raise CheckpointError(f"unknown layout {layout!r}; use 'imagenet', 'official' or 'study'")


# ----------------------------------------------------------------------------- strict loading


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
    converted, dropped = _backbone_to_ours(state)
    if dropped:
        LOG.info(
            "%s: dropped %d classifier keys (head.*) of the ImageNet weights", path, len(dropped)
        )
    found = _guess_backbones(converted)
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
            f"checkpoint {path} holds a {head} model (decode head of {_PUBLISHED[head]}), but the "
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
    _strict_load(model, _model_to_ours(state, head), path, _model_label(model))


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
                    "or use ssformer.models.checkpoints.model_from_checkpoint(path)"
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
        _load_own(model, _check_own(payload, path), path)
        return
    state = _unwrap_state_dict(payload, path)
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


# ----------------------------------------------------------------------- building from files


def model_from_checkpoint(path: str | Path) -> SegmentationModel:
    """Build the model a checkpoint describes and load it (ours, official or study files)."""
    path = Path(path)
    return model_from_payload(read_checkpoint(path), path)


def model_from_payload(payload: dict[str, Any], path: str | Path) -> SegmentationModel:
    """:func:`model_from_checkpoint` of a checkpoint already read from ``path``."""
    path = Path(path)
    if payload.get("format") == FORMAT:
        meta = _check_own(payload, path)["meta"]
        name, backbone, classes = meta.get("name"), meta.get("backbone"), meta.get("num_classes")
        if name is None or backbone is None or classes is None:
            raise CheckpointError(
                f"checkpoint {path} has no model name/backbone/num_classes in its metadata (a "
                "backbone-only file?); build the model yourself and use load_weights"
            )
    else:
        info = describe_state_dict(_unwrap_state_dict(payload, path))
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
    load_weights(build_backbone(canonical_backbone_name(backbone_name)), path)


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
            num_classes = _check_own(payload, path)["meta"].get("num_classes")
        else:
            num_classes = describe_state_dict(_unwrap_state_dict(payload, Path(path)))[
                "num_classes"
            ]
    model = build_model(name, backbone, num_classes=int(num_classes or 1))
    load_payload(model, payload, path)
