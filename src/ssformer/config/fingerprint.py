"""The settings a training result depends on: every config key except where and how fast it runs.

A sweep entry is known by these settings, not by its run name: an entry whose settings changed
since it finished is a new entry. Left out are only the keys that cannot change what is trained
or measured: the device, the data-loader workers, the output folders and the inference-only
``TEST`` section and ``EVAL.MODEL_PATH``. ``DATASET.ROOT`` is kept, as an absolute path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = ["IGNORED_KEYS", "describe_changes", "result_settings", "settings_digest"]

IGNORED_KEYS: tuple[str, ...] = (
    "DEVICE",
    "SAVE_DIR",
    "LOG_DIR",
    "TRAIN.WORKERS",
    "EVAL.MODEL_PATH",
    "TEST",
)
"""Dotted keys (or whole sections) that do not change a training result."""


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in IGNORED_KEYS)


def result_settings(config: Config) -> dict[str, Any]:
    """Dotted key -> value of every key the training result depends on (JSON-ready)."""
    flat = _flatten(config.to_dict())
    if flat.get("DATASET.ROOT"):
        flat["DATASET.ROOT"] = str(Path(flat["DATASET.ROOT"]).expanduser().resolve())
    return {key: value for key, value in sorted(flat.items()) if not _ignored(key)}


def settings_digest(settings: dict[str, Any]) -> str:
    """A short SHA-256 of the settings (the same settings always give the same digest)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``KEY: old -> new`` for every key whose value differs (a key only one side has shows
    ``(absent)`` on the other)."""
    missing = "(absent)"
    return [
        f"{key}: {old.get(key, missing)!r} -> {new.get(key, missing)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key, missing) != new.get(key, missing)
    ]
