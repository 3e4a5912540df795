"""Typed, validated run configuration in the reproduction study's YAML schema.

A config file uses the study's upper-case keys (``DEVICE``, ``MODEL.NAME``, ``TRAIN.BATCH_SIZE``,
...); both of the study's files load unmodified. The package is in four parts:

- :mod:`~ssformer.config.schema`: the dataclasses, one per YAML section;
- :mod:`~ssformer.config.typed_yaml`: reading YAML into them, strictly ("did you mean ...?");
- :mod:`~ssformer.config.overrides`: ``--set KEY=VALUE`` overrides and sweep files;
- :mod:`~ssformer.config.validate`: allowed names (from :mod:`ssformer.registry`) and ranges.

The configs shipped with the package are found by name (:func:`resolve_config_path`), then a
file, then the command line's overrides apply, as in DINOv2. :func:`load_configs` returns one
:class:`Config` per run; :func:`load_config` returns the single run of a non-sweep file and
refuses a sweep of several runs (use ``load_configs`` / ``ssformer sweep``, or pick one run
with ``--set``). Nothing here imports torch (loading a config takes milliseconds).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from pathlib import Path

from ssformer.config.overrides import apply_overrides, expand_sweep
from ssformer.config.schema import (
    DEFAULT_SEED,
    Config,
    DatasetConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    MSFConfig,
    OptimizerConfig,
    SchedulerConfig,
    SplitConfig,
    TestConfig,
    TrainConfig,
)
from ssformer.config.typed_yaml import canonical_key_path, read_raw
from ssformer.config.validate import build_config
from ssformer.errors import ConfigError

__all__ = [
    "DEFAULT_SEED",
    "Config",
    "DatasetConfig",
    "EvalConfig",
    "LossConfig",
    "MSFConfig",
    "ModelConfig",
    "OptimizerConfig",
    "SchedulerConfig",
    "SplitConfig",
    "TestConfig",
    "TrainConfig",
    "apply_overrides",
    "build_config",
    "expand_sweep",
    "load_config",
    "load_configs",
    "packaged_configs",
    "read_raw",
    "resolve_config_path",
    "save_config",
]

_PACKAGED_DIR = Path(__file__).resolve().parent.parent / "configs"


def packaged_configs() -> dict[str, Path]:
    """Name (file stem) -> path of the default configs shipped inside the package."""
    if not _PACKAGED_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(_PACKAGED_DIR.glob("*.yaml"))}


def resolve_config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """An existing file path as is; otherwise a packaged config by name (``kvasir-seg`` or
    ``kvasir-seg.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = packaged_configs()
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if path.parent == Path(".") and stem in packaged:
        return packaged[stem]
    if path.is_dir():
        raise ConfigError(
            f"--cfg {str(path)!r} is a folder, not a config file: give a .yaml file "
            f"(e.g. {path / 'config.yaml'} of a run folder) or a packaged config "
            f"({', '.join(packaged) or 'none'})"
        )
    hint = difflib.get_close_matches(stem, list(packaged), n=1)
    did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
    raise ConfigError(
        f"config file {str(path)!r} not found, and it is not a packaged config "
        f"({', '.join(packaged) or 'none'}).{did_you_mean}"
    )


def load_configs(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> list[Config]:
    """Load a config file (or packaged config name) as one config per run (1..N)."""
    resolved = resolve_config_path(path)
    source = str(resolved)
    raw = read_raw(resolved)
    try:
        return expand_sweep(apply_overrides(raw, overrides, source), source)
    except ConfigError as error:
        raise _blame_override(error, source, overrides) from None


def _blame_override(error: ConfigError, source: str, overrides: Sequence[str]) -> ConfigError:
    """``error`` naming the ``--set KEY=VALUE`` that gave the refused value, not the file."""
    message = str(error)
    for item in reversed(overrides):  # the last --set of a key is the value that was used
        key = item.split("=", 1)[0].strip()
        try:
            dotted = ".".join(canonical_key_path(key, item, Config))
        except ConfigError:
            continue
        if message.startswith(f"{source}: ") and dotted in message:
            return ConfigError(f"--set {item} (over {source}): {message[len(source) + 2 :]}")
    return error


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """Load a single-run config; a sweep of several runs raises :class:`ConfigError` that says
    to use :func:`load_configs` / ``ssformer sweep`` or to pick one run with ``--set``."""
    configs = load_configs(path, overrides)
    if len(configs) != 1:
        runs = ", ".join(c.run_name for c in configs[:3]) + (", ..." if len(configs) > 3 else "")
        raise ConfigError(
            f"{configs[0].source} is a sweep of {len(configs)} runs ({runs}): run it with "
            f"`ssformer sweep --cfg {configs[0].source}`, or pick one run with --set MODEL.NAME=... "
            f"--set MODEL.BACKBONE=..."
        )
    return configs[0]


def save_config(config: Config, path: str | os.PathLike[str]) -> Path:
    """Write the merged config as YAML, atomically (temporary file + ``os.replace``)."""
    import yaml

    from ssformer.io.atomic import write_text_atomic

    text = f"# merged ssformer config (from {config.source})\n" + yaml.safe_dump(
        config.to_dict(), sort_keys=False, default_flow_style=None
    )
    path = write_text_atomic(path, text)
    return path
