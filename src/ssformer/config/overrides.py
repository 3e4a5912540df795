"""Command-line overrides and sweep files.

``--set KEY=VALUE`` overrides are applied to the raw YAML before validation; the value is parsed
with ``yaml.safe_load`` (``TRAIN.IMAGE_SIZE=[256,256]``).

Sweeps: in a sweep file (the study's ``cvc-clinicdb-auto.yaml``) ``MODEL.NAME`` and
``MODEL.BACKBONE`` are lists, ``MODEL.PRETRAINED`` is a list zipped with ``MODEL.BACKBONE`` and
``EVAL.MODEL_PATH`` lists the checkpoints ``<NAME>_<BACKBONE>_<DATASET.NAME>.pth``. The runs are
NAMES x BACKBONES in model-major order (all backbones of the first model first), the order of
the study's ``EVAL.MODEL_PATH`` list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ssformer.config.schema import Config, DatasetConfig
from ssformer.config.typed_yaml import canonical_key_path
from ssformer.config.validate import build_config
from ssformer.errors import ConfigError

__all__ = ["apply_overrides", "expand_sweep"]


def apply_overrides(
    raw: Mapping[str, Any], overrides: Sequence[str], source: str = "<config>"
) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``KEY.PATH=VALUE`` overrides applied (values parsed by
    ``yaml.safe_load``). Unknown key paths raise :class:`ConfigError` with a suggestion.

    In a sweep file, overriding the list ``MODEL.BACKBONE`` with one backbone of the list also
    picks its ``MODEL.PRETRAINED`` entry (unless ``MODEL.PRETRAINED`` is overridden too).
    """
    import copy

    import yaml

    result = copy.deepcopy(dict(raw))
    overridden: set[str] = set()
    parsed: list[tuple[list[str], Any]] = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} must look like KEY=VALUE, e.g. TRAIN.EPOCHS=1 "
                f"or TRAIN.IMAGE_SIZE=[256,256]"
            )
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(f"override {item!r}: the value is not valid YAML: {error}") from None
        path = canonical_key_path(key, f"override {item!r}", Config)
        parsed.append((path, value))
        overridden.add(".".join(path))
    for path, value in parsed:
        section = result
        for part in path[:-1]:
            current = section.get(part)
            if not isinstance(current, dict):
                current = {}
                section[part] = current
            section = current
        leaf = path[-1]
        dotted = ".".join(path)
        if (
            dotted == "MODEL.BACKBONE"
            and "MODEL.PRETRAINED" not in overridden
            and isinstance(section.get("BACKBONE"), list)
            and isinstance(section.get("PRETRAINED"), list)
            and not isinstance(value, list)
        ):
            backbones, pretrained = section["BACKBONE"], section["PRETRAINED"]
            if len(backbones) == len(pretrained):
                if value in backbones:
                    section["PRETRAINED"] = pretrained[backbones.index(value)]
                else:
                    raise ConfigError(
                        f"override MODEL.BACKBONE={value!r}: {source!r} pairs MODEL.PRETRAINED "
                        f"with the backbones {backbones}; {value!r} is not one of them, so set "
                        f"MODEL.PRETRAINED as well (a path, or null for none)"
                    )
        section[leaf] = value
    return result


def expand_sweep(raw: Mapping[str, Any], source: str = "<config>") -> list[Config]:
    """Expand a raw (possibly sweep) mapping into validated single-run configs.

    ``MODEL.NAME`` x ``MODEL.BACKBONE`` in model-major order; ``MODEL.PRETRAINED`` zipped with
    ``MODEL.BACKBONE`` (a list of the same length, or one value used for every backbone only
    when it is null/empty); ``EVAL.MODEL_PATH`` (list) matched by file name
    ``<NAME>_<BACKBONE>_<DATASET.NAME>.pth``, else by position in the model-major grid when it
    has one entry per run, else the default ``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>.pth``.
    """
    model = raw.get("MODEL") or {}
    if not isinstance(model, Mapping):
        raise ConfigError(f"{source}: MODEL must be a mapping, not {type(model).__name__}")
    names = _as_list(model.get("NAME"))
    backbones = _as_list(model.get("BACKBONE"))
    pretrained_raw = model.get("PRETRAINED")
    if isinstance(pretrained_raw, list):
        if not isinstance(model.get("BACKBONE"), list) or len(pretrained_raw) != len(backbones):
            raise ConfigError(
                f"{source}: MODEL.PRETRAINED is a list of {len(pretrained_raw)} and must pair "
                f"one file with each entry of the list MODEL.BACKBONE ({len(backbones)} given)"
            )
        pretrained = list(pretrained_raw)
    elif isinstance(model.get("BACKBONE"), list) and len(backbones) > 1 and pretrained_raw:
        raise ConfigError(
            f"{source}: MODEL.BACKBONE lists {len(backbones)} backbones but MODEL.PRETRAINED is "
            f"one file {pretrained_raw!r}; give a list with one file per backbone (or null)"
        )
    else:
        pretrained = [pretrained_raw] * len(backbones)
    eval_section = raw.get("EVAL") or {}
    model_paths = eval_section.get("MODEL_PATH") if isinstance(eval_section, Mapping) else None
    dataset = raw.get("DATASET") or {}
    dataset_name = dataset.get("NAME", DatasetConfig.name) if isinstance(dataset, Mapping) else ""

    configs: list[Config] = []
    grid = [(n, b, p) for n in names for b, p in zip(backbones, pretrained, strict=True)]
    for index, (name, backbone, weights) in enumerate(grid):
        run = dict(raw)
        picked = {"NAME": name, "BACKBONE": backbone, "PRETRAINED": weights}
        run["MODEL"] = {**model, **{k: v for k, v in picked.items() if k in model}}
        if isinstance(model_paths, list):
            run["EVAL"] = {
                **eval_section,
                "MODEL_PATH": _pick_model_path(
                    model_paths, f"{name}_{backbone}_{dataset_name}", index, len(grid)
                ),
            }
        configs.append(build_config(run, source))
    return configs


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _pick_model_path(paths: list[Any], stem: str, index: int, count: int) -> Any:
    """The entry named ``<stem>.pth``; else the entry at ``index`` when the list has one path
    per run; else None (the default ``SAVE_DIR/<stem>.pth``)."""
    for candidate in paths:
        if isinstance(candidate, str) and Path(candidate).stem == stem:
            return candidate
    return paths[index] if len(paths) == count else None
