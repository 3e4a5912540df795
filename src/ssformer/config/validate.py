"""Validation of a parsed config: every name against :mod:`ssformer.registry`, every number in
its range, and the defaults that depend on other keys (loss and classes, ``EVAL.MODEL_PATH``).

One function per YAML section, called in order by :func:`validate`; each raises
:class:`~ssformer.errors.ConfigError` naming the file, the key, the value and what is expected.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ssformer.config.schema import Config
from ssformer.config.typed_yaml import parse_section
from ssformer.errors import ConfigError
from ssformer.registry import (
    AUGMENTS,
    BACKBONES,
    EVAL_RECIPES,
    LOSS_ALIASES,
    LOSSES,
    METRIC_NAMES,
    MODEL_NAMES,
    ONE_CHANNEL_LOSSES,
    OPTIMIZERS,
    PRESETS,
    PROTOCOLS,
    SCHEDULERS,
    TRAINING_METRIC_NAMES,
    closest,
)

__all__ = ["DEVICE_PATTERN", "build_config", "validate"]

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda|cuda:?\d+)$")
"""Accepted spellings of ``DEVICE`` (``cuda0`` is the study's)."""


def build_config(raw: Mapping[str, Any], source: str) -> Config:
    """Parse and validate one single-run raw mapping read from ``source``."""
    config: Config = parse_section(Config, raw, "", source)
    config.source = source
    validate(config, source)
    return config


def validate(c: Config, source: str) -> None:
    """Check ``c`` in place and fill the defaults that depend on other keys."""
    if not DEVICE_PATTERN.match(c.device.strip().lower()):
        raise _fail(source, "DEVICE", c.device, "auto, cpu, cuda, cuda:N or cudaN")
    _validate_model(c, source)
    _validate_loss(c, source)
    _validate_dataset(c, source)
    _validate_train(c, source)
    _validate_optimisation(c, source)
    _validate_eval(c, source)


def _fail(source: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{source}: {key}={value!r} is not valid: expected {expected}")


def _choice(value: str, options: Collection[str], source: str, key: str) -> str:
    if value in options:
        return value
    close = closest(value, options)
    hint = f" Did you mean {close}?" if close else ""
    raise ConfigError(f"{source}: {key}={value!r} is not one of {', '.join(options)}.{hint}")


def _validate_model(c: Config, source: str) -> None:
    if not c.model.name:
        raise ConfigError(f"{source}: MODEL.NAME is required (one of {', '.join(MODEL_NAMES)})")
    c.model.name = _choice(c.model.name, MODEL_NAMES, source, "MODEL.NAME")
    if c.model.name in PRESETS:
        preset_backbone = PRESETS[c.model.name][1]
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


def loss_settings_problem(
    name: str, num_classes: int, cls_weights: Sequence[float] | None, double_sigmoid: bool
) -> str | None:
    """What is wrong with loss ``name`` (canonical) for a model of ``num_classes`` outputs
    with these class weights and the official double sigmoid, or ``None``: the one statement
    of the loss rules, asked by config validation and by :func:`ssformer.losses.build_loss`."""
    if name in ONE_CHANNEL_LOSSES:
        if num_classes != 1:
            return (
                f"LOSS.NAME={name} needs MODEL.NUM_CLASSES=1 (one sigmoid channel), "
                f"got {num_classes}"
            )
        if cls_weights is not None:
            return f"LOSS.CLS_WEIGHTS is not supported by LOSS.NAME={name}"
        return None
    if num_classes < 2:
        return (
            f"LOSS.NAME={name} is a softmax loss and needs MODEL.NUM_CLASSES>=2 (background "
            f"and polyp), got {num_classes}"
        )
    if double_sigmoid:
        return (
            "TRAIN.OFFICIAL_DOUBLE_SIGMOID reproduces a quirk of the official DiceBCE "
            f"training; it needs LOSS.NAME=DiceBCE (got {name})"
        )
    if cls_weights is not None and len(cls_weights) != num_classes:
        return (
            f"LOSS.CLS_WEIGHTS has {len(cls_weights)} weights for MODEL.NUM_CLASSES={num_classes}"
        )
    return None


def _validate_loss(c: Config, source: str) -> None:
    """``LOSS.NAME`` (default by architecture) and the ``MODEL.NUM_CLASSES`` it needs."""
    if not c.loss.name:
        c.loss.name = "DiceBCE" if c.architecture == "SSFormer" else "DiceLoss"
    canonical = LOSS_ALIASES.get(c.loss.name.lower(), c.loss.name)
    c.loss.name = _choice(canonical, LOSSES, source, "LOSS.NAME")
    if c.model.num_classes is None:
        c.model.num_classes = 1 if c.loss.name in ONE_CHANNEL_LOSSES else 2
    if c.loss.cls_weights is True:
        raise ConfigError(
            f"{source}: LOSS.CLS_WEIGHTS=true: give one weight per class "
            f"(a list of {c.model.num_classes} numbers) or false"
        )
    weights = c.loss.cls_weights if isinstance(c.loss.cls_weights, tuple) else None
    if weights is not None and (any(w < 0 for w in weights) or not any(w > 0 for w in weights)):
        raise _fail(source, "LOSS.CLS_WEIGHTS", list(weights), "weights >= 0, one > 0")
    problem = loss_settings_problem(
        c.loss.name, c.model.num_classes, weights, c.train.official_double_sigmoid
    )
    if problem:
        raise ConfigError(f"{source}: {problem}")


def _validate_dataset(c: Config, source: str) -> None:
    if not c.dataset.root:
        raise ConfigError(f"{source}: DATASET.ROOT is required (the dataset folder)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", c.dataset.name):
        raise _fail(source, "DATASET.NAME", c.dataset.name, "letters, digits, '.', '_' or '-'")
    c.dataset.protocol = _choice(c.dataset.protocol, PROTOCOLS, source, "DATASET.PROTOCOL")
    for key, seed in (("SEED", c.seed), ("DATASET.SPLIT.SEED", c.dataset.split.seed)):
        if not 0 <= seed < 2**32:  # what NumPy and Python's random accept as a seed
            raise _fail(source, key, seed, "an integer in 0 .. 2**32 - 1")
    if not 0 <= c.dataset.ignore_label <= 255:
        raise _fail(source, "DATASET.IGNORE_LABEL", c.dataset.ignore_label, "a label in 0..255")
    ratio = c.dataset.split.ratio
    if any(r < 0 for r in ratio) or abs(sum(ratio) - 1.0) > 1e-6:
        raise _fail(source, "DATASET.SPLIT.RATIO", list(ratio), "3 fractions >= 0 summing to 1")
    if not 0.0 < c.dataset.val_fraction < 1.0:
        raise _fail(source, "DATASET.VAL_FRACTION", c.dataset.val_fraction, "a number in (0, 1)")


MAX_IMAGE_SIDE = 8192
"""Image sides above this need more memory than any GPU has at these models' widths."""
MAX_BATCH_SIZE = 65536
"""Far above any batch that fits a GPU; a larger value is a typo (it would crash the loader)."""
MAX_EPOCHS = 1_000_000


def _validate_train(c: Config, source: str) -> None:
    t = c.train
    for key, size in (
        ("TRAIN.IMAGE_SIZE", t.image_size),
        ("EVAL.IMAGE_SIZE", c.eval.image_size),
        ("TEST.IMAGE_SIZE", c.test.image_size),
    ):
        if any(s < 32 or s % 32 or s > MAX_IMAGE_SIDE for s in size):
            raise _fail(
                source, key, list(size), f"[height, width], multiples of 32, 32..{MAX_IMAGE_SIDE}"
            )
    for key, number, most in (
        ("TRAIN.BATCH_SIZE", t.batch_size, MAX_BATCH_SIZE),
        ("TRAIN.EPOCHS", t.epochs, MAX_EPOCHS),
        ("TRAIN.EVAL_INTERVAL", t.eval_interval, MAX_EPOCHS),
    ):
        if not 1 <= number <= most:
            raise _fail(source, key, number, f"an integer from 1 to {most}")
    t.augment = _choice(t.augment, AUGMENTS, source, "TRAIN.AUGMENT")
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


def _validate_optimisation(c: Config, source: str) -> None:
    c.optimizer.name = _choice(c.optimizer.name.lower(), OPTIMIZERS, source, "OPTIMIZER.NAME")
    if c.optimizer.lr <= 0:
        raise _fail(source, "OPTIMIZER.LR", c.optimizer.lr, "a number > 0")
    if c.optimizer.weight_decay < 0:
        raise _fail(source, "OPTIMIZER.WEIGHT_DECAY", c.optimizer.weight_decay, "a number >= 0")
    s = c.scheduler
    s.name = _choice(s.name.lower(), SCHEDULERS, source, "SCHEDULER.NAME")
    if s.warmup < 0:
        raise _fail(source, "SCHEDULER.WARMUP", s.warmup, "epochs >= 0")
    if not 0.0 <= s.warmup_ratio <= 1.0:
        raise _fail(source, "SCHEDULER.WARMUP_RATIO", s.warmup_ratio, "a number in [0, 1]")
    if s.max_decay_steps <= 1:
        raise _fail(source, "SCHEDULER.MAX_DECAY_STEPS", s.max_decay_steps, "an integer > 1")
    if s.step_size < 1:
        raise _fail(source, "SCHEDULER.STEP_SIZE", s.step_size, "epochs >= 1")
    for key, number in (("SCHEDULER.POWER", s.power), ("SCHEDULER.PLRD_POWER", s.plrd_power)):
        if number < 0:
            raise _fail(source, key, number, "a number >= 0")
    if s.end_lr < 0:
        raise _fail(source, "SCHEDULER.END_LR", s.end_lr, "a learning rate >= 0")
    if not 0.0 < s.gamma <= 1.0:
        raise _fail(source, "SCHEDULER.GAMMA", s.gamma, "a factor in (0, 1]")
    if s.name == "warmuppolylr" and s.warmup >= c.train.epochs:
        raise _fail(
            source, "SCHEDULER.WARMUP", s.warmup, f"fewer than TRAIN.EPOCHS={c.train.epochs}"
        )


def _validate_eval(c: Config, source: str) -> None:
    if c.eval.model_path in (None, ""):
        c.eval.model_path = str(c.best_checkpoint_path)
    if c.eval.recipe is None:
        c.eval.recipe = "study" if c.model.num_classes == 2 else "official"
    c.eval.recipe = _choice(c.eval.recipe, EVAL_RECIPES, source, "EVAL.RECIPE")
    c.eval.metrics = _eval_metrics(c.eval.metrics, source)
    if not c.eval.msf.scales or any(x <= 0 for x in c.eval.msf.scales):
        raise _fail(source, "EVAL.MSF.SCALES", list(c.eval.msf.scales), "numbers > 0")


def _eval_metrics(value: str | tuple[str, ...], source: str) -> tuple[str, ...]:
    """``EVAL.METRICS``: ``fast`` (the default), ``all`` or a list of metric names, as the
    tuple of names each validation during training computes."""
    if value == "fast":
        return TRAINING_METRIC_NAMES
    if value == "all":
        return METRIC_NAMES
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        _choice(name, METRIC_NAMES, source, "EVAL.METRICS")
    return names
