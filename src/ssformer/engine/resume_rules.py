"""Which config keys may change when a run is resumed, checked before any file is touched.

A resumed run continues the stored training state (``last.pth``), so everything that state
depends on must stay as it was: the model, loss, optimiser, schedule, data protocol and split,
augmentation, batch and image size, seed. What may change is where and how fast the run goes on:
:data:`RESUMABLE_KEYS` (device, workers, precision and compile settings, folders, the number of
epochs and the time or step limits, evaluation and inference settings). Changing ``TRAIN.EPOCHS``
lets the schedule go on as in a run of the new length (the run's log says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssformer.errors import ConfigError, SSFormerError
from ssformer.run_files import LAST

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = ["RESUMABLE_KEYS", "check_resumable", "config_changes"]

RESUMABLE_KEYS: tuple[str, ...] = (
    "DEVICE",
    "LOG_DIR",
    "SAVE_DIR",
    "DATASET.ROOT",
    "TRAIN.EPOCHS",
    "TRAIN.EVAL_INTERVAL",
    "TRAIN.MAX_STEPS",
    "TRAIN.TIME_LIMIT_MIN",
    "TRAIN.WORKERS",
    "TRAIN.AMP",
    "TRAIN.AMP_DTYPE",
    "TRAIN.COMPILE",
    "TRAIN.CHANNELS_LAST",
    "TRAIN.DDP",
    "TRAIN.SYNC_BN",
    "EVAL.",
    "TEST.",
)
"""Keys (and, ending in ``.``, sections) that may differ from the stored config on resume."""


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config mappings."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changed.extend(config_changes(a, b, f"{prefix}{key}."))
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


def _resumable(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_KEYS)


def _value(mapping: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(part)  # type: ignore[assignment]
    return mapping


def _stored_config(stored: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The stored config with this version's defaults filled in (as it is, if it no longer
    validates)."""
    from ssformer.config import build_config

    try:
        return build_config(dict(stored), source).to_dict()
    except SSFormerError:
        return dict(stored)


def check_resumable(stored: Mapping[str, Any], config: Config, run_dir: Path) -> list[str]:
    """The changed keys that may change (to log); :class:`ConfigError` naming every other
    changed key, its stored and new value and what to do."""
    old = _stored_config(stored, str(run_dir / LAST))
    new = config.to_dict()
    changed = config_changes(old, new)
    refused = [key for key in changed if not _resumable(key)]
    if refused:
        listed = "; ".join(f"{k}: {_value(old, k)!r} -> {_value(new, k)!r}" for k in refused)
        restore = " ".join(
            f"{k}={_value(old, k)}"
            for k in refused
            if isinstance(_value(old, k), (str, int, float, bool))
            and " " not in str(_value(old, k))
        )
        back = (
            f"`ssformer train --resume {run_dir} --set {restore}`" if restore else "the old values"
        )
        raise ConfigError(
            f"cannot resume {run_dir}: the config differs from the one it was trained with in "
            f"{listed}. Its training state depends on these keys: resume with {back}, or start "
            "a new run with the new values (the same command without --resume). Keys that may "
            f"change on resume: {', '.join(RESUMABLE_KEYS)}"
        )
    return changed
