"""Typed, validated run configuration in the reproduction study's YAML schema.

A config file uses the study's upper-case keys (``DEVICE``, ``MODEL.NAME``, ``TRAIN.BATCH_SIZE``,
...); both of the study's files load unmodified. Every key has a typed field in one of the
dataclasses below (field ``train.batch_size`` <-> key ``TRAIN.BATCH_SIZE``). Keys the study did
not have are optional and default to the study's behaviour unless documented otherwise.

Loading is strict: an unknown key, a wrong type or a value outside the allowed set raises
:class:`~ssformer.errors.ConfigError` naming the file, the key path and what is expected (with a
"did you mean ...?" for near-misses). ``--set KEY=VALUE`` overrides are applied to the raw YAML
before validation; the value is parsed with ``yaml.safe_load`` (``TRAIN.IMAGE_SIZE=[256,256]``).

Sweeps: in a sweep file (the study's ``cvc-clinicdb-auto.yaml``) ``MODEL.NAME`` and
``MODEL.BACKBONE`` are lists, ``MODEL.PRETRAINED`` is a list zipped with ``MODEL.BACKBONE`` and
``EVAL.MODEL_PATH`` lists the checkpoints ``<NAME>_<BACKBONE>_<DATASET.NAME>.pth``. The runs are
NAMES x BACKBONES in model-major order (all backbones of the first model first), the order of
the study's ``EVAL.MODEL_PATH`` list. :func:`load_configs` returns one :class:`Config` per run;
:func:`load_config` returns the single run of a non-sweep file and refuses a sweep of several
runs (use ``load_configs`` / ``ssformer sweep``, or pick one run with ``--set``).

This module does not import torch at import time (loading a config takes milliseconds).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ssformer.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "AUGMENTS",
    "BACKBONES",
    "DEFAULT_SEED",
    "LOSS_ALIASES",
    "LOSS_NAMES",
    "MODEL_NAMES",
    "MODEL_PRESETS",
    "ONE_CHANNEL_LOSSES",
    "OPTIMIZER_NAMES",
    "PROTOCOLS",
    "SCHEDULER_NAMES",
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
    "expand_sweep",
    "load_config",
    "load_configs",
    "packaged_configs",
    "read_raw",
    "resolve_config_path",
    "resolve_device",
    "save_config",
]

MODEL_NAMES: tuple[str, ...] = ("SSFormer", "PLDSegFormer", "SegFormer", "SSFormer-S", "SSFormer-L")
"""Model names: the official SSFormer (PLD head), the study's PLD variant, the SegFormer MLP head,
and the official presets."""
MODEL_PRESETS: dict[str, tuple[str, str]] = {
    "SSFormer-S": ("SSFormer", "MiT-B2"),
    "SSFormer-L": ("SSFormer", "MiT-B4"),
}
"""Preset name -> (architecture, backbone)."""
BACKBONES: tuple[str, ...] = tuple(f"MiT-B{i}" for i in range(6)) + tuple(
    f"PVTv2-B{i}" for i in range(6)
)
LOSS_NAMES: tuple[str, ...] = ("DiceLoss", "CrossEntropy", "OhemCrossEntropy", "DiceBCE")
"""Canonical loss names; ``DiceBCE`` is the official SSFormer loss (1 output channel), the
others are the study's 2-class softmax losses."""
LOSS_ALIASES: dict[str, str] = {
    "dice": "DiceLoss",
    "diceloss": "DiceLoss",
    "ce": "CrossEntropy",
    "crossentropy": "CrossEntropy",
    "ohemce": "OhemCrossEntropy",
    "ohemcrossentropy": "OhemCrossEntropy",
    "dicebce": "DiceBCE",
    "dice_bce": "DiceBCE",
}
"""Lower-case spelling -> canonical loss name (the study's short names included)."""
ONE_CHANNEL_LOSSES: frozenset[str] = frozenset({"DiceBCE"})
OPTIMIZER_NAMES: tuple[str, ...] = ("adamw", "adamw_default", "sgd", "adamw_official")
SCHEDULER_NAMES: tuple[str, ...] = ("plrd", "warmuppolylr", "warmup_step", "constant")
AUGMENTS: tuple[str, ...] = ("study", "official")
PROTOCOLS: tuple[str, ...] = ("split", "pranet")
DEFAULT_SEED = 42
"""Training seed: the study's ``fix_seeds(42)`` (the official train.py used 1). The data split
has its own seed, ``DATASET.SPLIT.SEED`` = 1337 as in the study."""

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda|cuda:?\d+)$")
_PACKAGED_DIR = Path(__file__).resolve().parent / "configs"
# Keys whose value may be a list in a sweep file (dotted YAML key paths).
_SWEEP_KEYS = ("MODEL.NAME", "MODEL.BACKBONE", "MODEL.PRETRAINED", "EVAL.MODEL_PATH")


# --------------------------------------------------------------------------- dataclasses
@dataclass
class ModelConfig:
    """``MODEL``: ``NAME`` in :data:`MODEL_NAMES`, ``BACKBONE`` in :data:`BACKBONES` (optional
    for a preset), ``PRETRAINED`` backbone weights (path, or null/'' for none), ``NUM_CLASSES``
    output channels: default 1 with the DiceBCE loss, 2 with the study's softmax losses."""

    name: str = ""
    backbone: str = ""
    pretrained: str | None = None
    num_classes: int | None = None


@dataclass
class SplitConfig:
    """``DATASET.SPLIT``: the seed and train/val/test ratio of the ``split`` protocol
    (``splitfolders.ratio`` semantics)."""

    seed: int = 1337
    ratio: tuple[float, float, float] = (0.8, 0.1, 0.1)


@dataclass
class DatasetConfig:
    """``DATASET``: ``NAME`` (used in checkpoint names: ``Kvasir``, ``CVCClinicDB``, ...),
    ``ROOT`` folder, ``IGNORE_LABEL``, ``PROTOCOL`` (``split``: ROOT/{train,val,test};
    ``pranet``: the PraNet TrainDataset/TestDataset), ``SPLIT`` and ``VAL_FRACTION`` (the part
    of the PraNet TrainDataset held out for model selection under ``pranet``)."""

    name: str = "Kvasir"
    root: str = ""
    ignore_label: int = 255
    protocol: Literal["split", "pranet"] = "split"
    split: SplitConfig = field(default_factory=SplitConfig)
    val_fraction: float = 0.1


@dataclass
class TrainConfig:
    """``TRAIN``. The study's keys plus: ``WORKERS`` (null: automatic), ``AUGMENT``
    (``study`` | ``official``), ``AMP_DTYPE``, ``CHANNELS_LAST``, ``COMPILE``, ``SYNC_BN``,
    ``SELECT_ON`` (``val``; ``test`` only with ``SELECT_BEST_ON_TEST_LEAKS: true``, the
    official repo's practice), ``OFFICIAL_DOUBLE_SIGMOID`` (the official quirk: sigmoid
    before a loss that applies sigmoid again), ``MAX_STEPS`` / ``TIME_LIMIT_MIN`` (stop early,
    for demos; null = no limit)."""

    image_size: tuple[int, int] = (352, 352)
    batch_size: int = 16
    epochs: int = 200
    eval_interval: int = 1
    amp: bool = True
    ddp: bool = False
    workers: int | None = None
    augment: Literal["study", "official"] = "study"
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    channels_last: bool = False
    compile: bool = False
    sync_bn: bool = False
    select_on: Literal["val", "test"] = "val"
    select_best_on_test_leaks: bool = False
    official_double_sigmoid: bool = False
    max_steps: int | None = None
    time_limit_min: float | None = None


@dataclass
class LossConfig:
    """``LOSS``: ``NAME`` in :data:`LOSS_NAMES` or an alias (default: ``DiceBCE`` for
    SSFormer models, ``DiceLoss`` otherwise); ``CLS_WEIGHTS``: false or one weight per class."""

    name: str = ""
    cls_weights: bool | tuple[float, ...] = False


@dataclass
class OptimizerConfig:
    """``OPTIMIZER``: ``NAME`` in :data:`OPTIMIZER_NAMES`, ``LR``, ``WEIGHT_DECAY``."""

    name: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.01


@dataclass
class SchedulerConfig:
    """``SCHEDULER``: ``NAME`` in :data:`SCHEDULER_NAMES`; ``POWER``, ``WARMUP`` (epochs) and
    ``WARMUP_RATIO`` as in the study; ``MAX_DECAY_STEPS`` (epochs) and ``END_LR`` for ``plrd``
    (the study's PolynomialLRDecay defaults; note that the study's ``plrd`` ignored ``POWER``
    and used power 1.0, which ``PLRD_POWER`` keeps); ``STEP_SIZE`` / ``GAMMA`` (epochs) for the
    official ``warmup_step``."""

    name: str = "plrd"
    power: float = 0.9
    warmup: int = 0
    warmup_ratio: float = 0.1
    max_decay_steps: int = 40
    end_lr: float = 1e-4
    plrd_power: float = 1.0
    step_size: int = 200
    gamma: float = 0.1


@dataclass
class MSFConfig:
    """``EVAL.MSF``: multi-scale and flip evaluation."""

    enable: bool = False
    flip: bool = True
    scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


@dataclass
class EvalConfig:
    """``EVAL``: ``MODEL_PATH`` (default ``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>.pth``),
    ``IMAGE_SIZE``, ``MSF``."""

    model_path: str | None = None
    image_size: tuple[int, int] = (352, 352)
    msf: MSFConfig = field(default_factory=MSFConfig)


@dataclass
class TestConfig:
    """``TEST`` (inference): ``MODEL_PATH``, ``FILE`` (image or folder), ``IMAGE_SIZE``,
    ``OVERLAY``."""

    __test__ = False  # not a pytest test class

    model_path: str | None = None
    file: str | None = None
    image_size: tuple[int, int] = (352, 352)
    overlay: bool = True


@dataclass
class Config:
    """A validated run configuration (one model, one backbone). ``source`` is the file it came
    from (not a YAML key)."""

    device: str = "auto"
    save_dir: str = "output"
    log_dir: str | None = None
    seed: int = DEFAULT_SEED
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    test: TestConfig = field(default_factory=TestConfig)
    source: str = field(default="<dict>", compare=False, metadata={"yaml": False})

    @property
    def run_name(self) -> str:
        """``<NAME>_<BACKBONE>_<DATASET.NAME>``: the study's checkpoint stem."""
        return f"{self.model.name}_{self.model.backbone}_{self.dataset.name}"

    @property
    def best_checkpoint_path(self) -> Path:
        """Where training writes the best model: ``SAVE_DIR/<run_name>.pth`` (the study's)."""
        return Path(self.save_dir) / f"{self.run_name}.pth"

    @property
    def resolved_log_dir(self) -> Path:
        """``LOG_DIR``, or ``SAVE_DIR/logs_txt`` when unset (the study's ``output/logs_txt``)."""
        return Path(self.log_dir) if self.log_dir else Path(self.save_dir) / "logs_txt"

    @property
    def architecture(self) -> str:
        """The model architecture without preset: ``SSFormer``, ``PLDSegFormer`` or ``SegFormer``."""
        return MODEL_PRESETS.get(self.model.name, (self.model.name, ""))[0]

    def to_dict(self) -> dict[str, Any]:
        """The config as plain YAML data with the upper-case keys (lists, not tuples)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "<dict>") -> Config:
        """Validate a single-run raw mapping (e.g. a config stored in a checkpoint)."""
        return _build(raw, source)


# --------------------------------------------------------------------------- public API
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
    hint = difflib.get_close_matches(stem, list(packaged), n=1)
    did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
    raise ConfigError(
        f"config file {str(path)!r} not found, and it is not a packaged config "
        f"({', '.join(packaged) or 'none'}).{did_you_mean}"
    )


def read_raw(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file as a raw mapping (no validation)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error}") from error
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from error
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of keys (DEVICE, MODEL, ...), "
            f"not {type(raw).__name__}"
        )
    return raw


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
        path = _canonical_key_path(key, f"override {item!r}")
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
        configs.append(_build(run, source))
    return configs


def load_configs(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> list[Config]:
    """Load a config file (or packaged config name) as one config per run (1..N)."""
    resolved = resolve_config_path(path)
    source = str(resolved)
    raw = apply_overrides(read_raw(resolved), overrides, source)
    return expand_sweep(raw, source)


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """Load a single-run config; a sweep of several runs raises :class:`ConfigError` that says
    to use :func:`load_configs` / ``ssformer sweep`` or to pick one run with ``--set``."""
    configs = load_configs(path, overrides)
    if len(configs) != 1:
        runs = ", ".join(c.run_name for c in configs[:3]) + (", ..." if len(configs) > 3 else "")
        raise ConfigError(
            f"{configs[0].source} is a sweep of {len(configs)} runs ({runs}): run it with "
            f"`ssformer sweep`, or pick one run with --set MODEL.NAME=... "
            f"--set MODEL.BACKBONE=..."
        )
    return configs[0]


def save_config(config: Config, path: str | os.PathLike[str]) -> Path:
    """Write the merged config as YAML, atomically (temporary file + ``os.replace``)."""
    import yaml

    from ssformer.fileio import write_text_atomic

    text = f"# merged ssformer config (from {config.source})\n" + yaml.safe_dump(
        config.to_dict(), sort_keys=False, default_flow_style=None
    )
    path = write_text_atomic(path, text)
    return path


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda0`` -> ``cuda:0``; ``cpu``, ``mps``.
    Asking for CUDA on a machine without it raises :class:`ConfigError`."""
    import torch

    text = str(name).strip().lower()
    if not _DEVICE_RE.match(text):
        raise ConfigError(f"DEVICE={name!r} is not a device: use auto, cpu, cuda, cuda:0 / cuda0")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        index = text[4:].lstrip(":")
        if not torch.cuda.is_available():
            raise ConfigError(
                f"DEVICE={name!r} but no CUDA GPU is visible to torch; "
                f"use DEVICE=auto or DEVICE=cpu (e.g. --set DEVICE=cpu)"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"DEVICE={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device(f"cuda:{index}" if index else "cuda")
    if text == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"DEVICE={name!r} but MPS is not available; use DEVICE=auto or cpu")
    return torch.device(text)


def resolve_workers(config: Config, device: torch.device, world_size: int = 1) -> int:
    """Data-loader worker processes: ``TRAIN.WORKERS``, or when null none on a CPU with at
    most 4 cores (the model needs them; cached data loads fast in the main process), else
    one fewer than the cores per process, at most 8."""
    if config.train.workers is not None:
        return config.train.workers
    cpus = os.cpu_count() or 1
    if device.type == "cpu" and cpus <= 4:
        return 0
    return max(0, min(8, cpus // world_size - 1))


# --------------------------------------------------------------------------- internals
def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _pick_model_path(paths: list[Any], stem: str, index: int, count: int) -> Any:
    """The entry named ``<stem>.pth``; else the entry at ``index`` when the list has one path
    per run; else None (the default ``SAVE_DIR/<stem>.pth``)."""
    for candidate in paths:
        if isinstance(candidate, str) and Path(candidate).stem == stem:
            return candidate
    return paths[index] if len(paths) == count else None


def _yaml_key(f: dataclasses.Field[Any]) -> str:
    return f.name.upper()


def _yaml_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {
        _yaml_key(f): f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True) is True
    }


_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS_CACHE:
        _HINTS_CACHE[cls] = typing.get_type_hints(cls)
    return _HINTS_CACHE[cls]


def _suggest(key: str, options: Sequence[str]) -> str:
    by_upper = {o.upper(): o for o in options}
    if key.upper() in by_upper:
        return f" Did you mean {by_upper[key.upper()]}?"
    close = difflib.get_close_matches(key.upper(), list(by_upper), n=1, cutoff=0.6)
    return f" Did you mean {by_upper[close[0]]}?" if close else ""


def _canonical_key_path(key: str, where: str) -> list[str]:
    """Validate a dotted key path against the schema (for overrides)."""
    parts = [p for p in key.split(".") if p]
    if not parts:
        raise ConfigError(f"{where}: empty key")
    cls: type | None = Config
    done: list[str] = []
    for part in parts:
        if cls is None:
            raise ConfigError(f"{where}: {'.'.join(done)} is a value, not a section")
        fields = _yaml_fields(cls)
        if part not in fields:
            prefix = ".".join(done) + "." if done else ""
            suggestion = _suggest(part, list(fields))
            if suggestion:
                suggestion = suggestion.replace("mean ", f"mean {prefix}")
            raise ConfigError(f"{where}: unknown key {prefix}{part}.{suggestion}")
        done.append(part)
        tp = _hints(cls)[fields[part].name]
        cls = tp if dataclasses.is_dataclass(tp) else None
    return done


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        plural = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}
        item = plural.get(args[0], _type_name(args[0]))
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {item}"
        return f"a list of {len(args)} {item}"
    if tp is type(None):
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


class _Invalid(Exception):
    pass


def _convert(value: Any, tp: Any) -> Any:
    """Convert a YAML value to type ``tp`` or raise :class:`_Invalid`."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg)
            except _Invalid:
                continue
        raise _Invalid
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _Invalid
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise _Invalid
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _Invalid
        return tuple(_convert(v, a) for v, a in zip(value, args, strict=True))
    if tp is type(None):
        if value is None:
            return None
        raise _Invalid
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Invalid
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Invalid
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise _Invalid from None
        raise _Invalid
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Invalid
    raise TypeError(f"unsupported config field type {tp!r}")


def _parse_section(cls: type, raw: Any, path: str, source: str) -> Any:
    where = path or "the top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: {where} must be a mapping of keys, not {type(raw).__name__} {raw!r}"
        )
    fields = _yaml_fields(cls)
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            suggestion = _suggest(str(key), list(fields))
            if suggestion and path:
                suggestion = suggestion.replace("mean ", f"mean {path}.")
            raise ConfigError(
                f"{source}: unknown key {key_path}.{suggestion} Known keys in {where}: "
                f"{', '.join(fields)}"
            )
        f = fields[key]
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _parse_section(tp, value, key_path, source)
            continue
        try:
            kwargs[f.name] = _convert(value, tp)
        except _Invalid:
            if isinstance(value, list) and key_path in _SWEEP_KEYS:
                raise ConfigError(
                    f"{source}: {key_path} is a list (a sweep); load it with load_configs / "
                    f"`ssformer sweep`"
                ) from None
            raise ConfigError(
                f"{source}: {key_path} must be {_type_name(tp)}, got {value!r}"
            ) from None
    return cls(**kwargs)


def _fail(source: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{source}: {key}={value!r} is not valid: expected {expected}")


def _choice(value: str, options: Sequence[str], source: str, key: str) -> str:
    if value in options:
        return value
    by_norm = {re.sub(r"[^a-z0-9]", "", o.lower()): o for o in options}
    close = by_norm.get(re.sub(r"[^a-z0-9]", "", value.lower())) or next(
        iter(difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)), None
    )
    hint = f" Did you mean {close}?" if close else ""
    raise ConfigError(f"{source}: {key}={value!r} is not one of {', '.join(options)}.{hint}")


def _build(raw: Mapping[str, Any], source: str) -> Config:
    config: Config = _parse_section(Config, raw, "", source)
    config.source = source
    _validate(config, source)
    return config


def _validate(c: Config, source: str) -> None:
    if not _DEVICE_RE.match(c.device.strip().lower()):
        raise _fail(source, "DEVICE", c.device, "auto, cpu, cuda, cuda:N or cudaN")
    # MODEL
    if not c.model.name:
        raise ConfigError(f"{source}: MODEL.NAME is required (one of {', '.join(MODEL_NAMES)})")
    c.model.name = _choice(c.model.name, MODEL_NAMES, source, "MODEL.NAME")
    if c.model.name in MODEL_PRESETS:
        preset_backbone = MODEL_PRESETS[c.model.name][1]
        if c.model.backbone and c.model.backbone != preset_backbone:
            raise ConfigError(
                f"{source}: MODEL.NAME={c.model.name} is SSFormer with {preset_backbone}, but "
                f"MODEL.BACKBONE={c.model.backbone}; drop MODEL.BACKBONE or use MODEL.NAME=SSFormer"
            )
        c.model.backbone = preset_backbone
    if not c.model.backbone:
        raise ConfigError(f"{source}: MODEL.BACKBONE is required (one of {', '.join(BACKBONES)})")
    c.model.backbone = _choice(c.model.backbone, BACKBONES, source, "MODEL.BACKBONE")
    if c.model.pretrained == "":
        c.model.pretrained = None
    # LOSS and classes
    one_channel_default = c.architecture == "SSFormer"
    if not c.loss.name:
        c.loss.name = "DiceBCE" if one_channel_default else "DiceLoss"
    canonical = LOSS_ALIASES.get(c.loss.name.lower(), c.loss.name)
    c.loss.name = _choice(canonical, LOSS_NAMES, source, "LOSS.NAME")
    needed = 1 if c.loss.name in ONE_CHANNEL_LOSSES else 2
    if c.model.num_classes is None:
        c.model.num_classes = needed
    if needed == 1 and c.model.num_classes != 1:
        raise ConfigError(
            f"{source}: LOSS.NAME={c.loss.name} needs MODEL.NUM_CLASSES=1 (one sigmoid "
            f"channel), got {c.model.num_classes}"
        )
    if needed == 2 and c.model.num_classes < 2:
        raise ConfigError(
            f"{source}: LOSS.NAME={c.loss.name} is a softmax loss and needs "
            f"MODEL.NUM_CLASSES>=2 (background and polyp), got {c.model.num_classes}"
        )
    if c.loss.cls_weights is True:
        raise ConfigError(
            f"{source}: LOSS.CLS_WEIGHTS=true: give one weight per class "
            f"(a list of {c.model.num_classes} numbers) or false"
        )
    if isinstance(c.loss.cls_weights, tuple):
        if c.loss.name == "DiceBCE":
            raise ConfigError(f"{source}: LOSS.CLS_WEIGHTS is not supported by LOSS.NAME=DiceBCE")
        if len(c.loss.cls_weights) != c.model.num_classes:
            raise ConfigError(
                f"{source}: LOSS.CLS_WEIGHTS has {len(c.loss.cls_weights)} weights for "
                f"MODEL.NUM_CLASSES={c.model.num_classes}"
            )
    # DATASET
    if not c.dataset.root:
        raise ConfigError(f"{source}: DATASET.ROOT is required (the dataset folder)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", c.dataset.name):
        raise _fail(source, "DATASET.NAME", c.dataset.name, "letters, digits, '.', '_' or '-'")
    ratio = c.dataset.split.ratio
    if any(r < 0 for r in ratio) or abs(sum(ratio) - 1.0) > 1e-6:
        raise _fail(source, "DATASET.SPLIT.RATIO", list(ratio), "3 fractions >= 0 summing to 1")
    if not 0.0 < c.dataset.val_fraction < 1.0:
        raise _fail(source, "DATASET.VAL_FRACTION", c.dataset.val_fraction, "a number in (0, 1)")
    # TRAIN
    t = c.train
    for key, size in (
        ("TRAIN.IMAGE_SIZE", t.image_size),
        ("EVAL.IMAGE_SIZE", c.eval.image_size),
        ("TEST.IMAGE_SIZE", c.test.image_size),
    ):
        if any(s < 32 or s % 32 for s in size):
            raise _fail(source, key, list(size), "[height, width], multiples of 32, >= 32")
    for key, number in (
        ("TRAIN.BATCH_SIZE", t.batch_size),
        ("TRAIN.EPOCHS", t.epochs),
        ("TRAIN.EVAL_INTERVAL", t.eval_interval),
    ):
        if number < 1:
            raise _fail(source, key, number, "an integer >= 1")
    if t.workers is not None and t.workers < 0:
        raise _fail(source, "TRAIN.WORKERS", t.workers, "an integer >= 0, or null for automatic")
    if t.max_steps is not None and t.max_steps < 1:
        raise _fail(source, "TRAIN.MAX_STEPS", t.max_steps, "an integer >= 1, or null")
    if t.time_limit_min is not None and t.time_limit_min <= 0:
        raise _fail(source, "TRAIN.TIME_LIMIT_MIN", t.time_limit_min, "minutes > 0, or null")
    if t.select_on == "test" and not t.select_best_on_test_leaks:
        raise ConfigError(
            f"{source}: TRAIN.SELECT_ON=test picks the best epoch on the test set, which leaks "
            f"test data into model selection (the official repo's practice); to do it anyway "
            f"also set TRAIN.SELECT_BEST_ON_TEST_LEAKS=true, else use TRAIN.SELECT_ON=val"
        )
    if t.official_double_sigmoid and c.loss.name != "DiceBCE":
        raise ConfigError(
            f"{source}: TRAIN.OFFICIAL_DOUBLE_SIGMOID reproduces a quirk of the official DiceBCE "
            f"training; it needs LOSS.NAME=DiceBCE (got {c.loss.name})"
        )
    # OPTIMIZER / SCHEDULER
    c.optimizer.name = _choice(c.optimizer.name.lower(), OPTIMIZER_NAMES, source, "OPTIMIZER.NAME")
    if c.optimizer.lr <= 0:
        raise _fail(source, "OPTIMIZER.LR", c.optimizer.lr, "a number > 0")
    if c.optimizer.weight_decay < 0:
        raise _fail(source, "OPTIMIZER.WEIGHT_DECAY", c.optimizer.weight_decay, "a number >= 0")
    s = c.scheduler
    s.name = _choice(s.name.lower(), SCHEDULER_NAMES, source, "SCHEDULER.NAME")
    if s.warmup < 0:
        raise _fail(source, "SCHEDULER.WARMUP", s.warmup, "epochs >= 0")
    if not 0.0 <= s.warmup_ratio <= 1.0:
        raise _fail(source, "SCHEDULER.WARMUP_RATIO", s.warmup_ratio, "a number in [0, 1]")
    if s.max_decay_steps <= 1:
        raise _fail(source, "SCHEDULER.MAX_DECAY_STEPS", s.max_decay_steps, "an integer > 1")
    if s.step_size < 1:
        raise _fail(source, "SCHEDULER.STEP_SIZE", s.step_size, "epochs >= 1")
    if s.name == "warmuppolylr" and s.warmup >= t.epochs:
        raise _fail(source, "SCHEDULER.WARMUP", s.warmup, f"fewer than TRAIN.EPOCHS={t.epochs}")
    # EVAL
    if c.eval.model_path in (None, ""):
        c.eval.model_path = str(c.best_checkpoint_path)
    if not c.eval.msf.scales or any(x <= 0 for x in c.eval.msf.scales):
        raise _fail(source, "EVAL.MSF.SCALES", list(c.eval.msf.scales), "numbers > 0")


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            _yaml_key(f): _to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("yaml", True) is True
        }
    if isinstance(obj, (tuple, list)):
        return [_to_plain(v) for v in obj]
    return obj
