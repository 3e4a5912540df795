"""The config schema: one typed dataclass per YAML section of the reproduction study's files.

Field ``train.batch_size`` <-> key ``TRAIN.BATCH_SIZE``: a field's YAML key is its name in upper
case (:func:`yaml_key`). Keys the study did not have are optional and default to the study's
behaviour unless documented otherwise. Which values are allowed is checked by
:mod:`ssformer.config.validate`, from the names in :mod:`ssformer.registry`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ssformer.image_size import PAPER_SIZE
from ssformer.registry import PRESETS, STUDY_SPLIT_RATIO, STUDY_SPLIT_SEED

__all__ = [
    "DEFAULT_SEED",
    "SWEEP_KEYS",
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
    "to_plain",
    "yaml_fields",
    "yaml_key",
]

DEFAULT_SEED = 42
"""Training seed: the study's ``fix_seeds(42)`` (the official train.py used 1). The data split
has its own seed, ``DATASET.SPLIT.SEED`` = 1337 as in the study."""
SWEEP_KEYS = ("MODEL.NAME", "MODEL.BACKBONE", "MODEL.PRETRAINED", "EVAL.MODEL_PATH")
"""Keys whose value may be a list in a sweep file (dotted YAML key paths)."""


@dataclass
class ModelConfig:
    """``MODEL``: ``NAME`` in :data:`ssformer.registry.MODEL_NAMES`, ``BACKBONE`` in :data:`ssformer.registry.BACKBONES` (optional
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

    seed: int = STUDY_SPLIT_SEED
    ratio: tuple[float, float, float] = STUDY_SPLIT_RATIO


@dataclass
class DatasetConfig:
    """``DATASET``: ``NAME`` (used in checkpoint names: ``Kvasir``, ``CVCClinicDB``, ...),
    ``ROOT`` folder, ``IGNORE_LABEL``, ``PROTOCOL`` (``split``: ROOT/{train,val,test};
    ``pranet``: the PraNet TrainDataset/TestDataset), ``SPLIT`` and ``VAL_FRACTION`` (the part
    of the PraNet TrainDataset held out for model selection under ``pranet``)."""

    name: str = "Kvasir"
    root: str = ""
    ignore_label: int = 255
    protocol: str = "split"
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

    image_size: tuple[int, int] = PAPER_SIZE
    batch_size: int = 16
    epochs: int = 200
    eval_interval: int = 1
    amp: bool = True
    ddp: bool = False
    workers: int | None = None
    augment: str = "study"
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
    """``LOSS``: ``NAME`` in :data:`ssformer.registry.LOSSES` or an alias (default: ``DiceBCE`` for
    SSFormer models, ``DiceLoss`` otherwise); ``CLS_WEIGHTS``: false or one weight per class."""

    name: str = ""
    cls_weights: bool | tuple[float, ...] = False


@dataclass
class OptimizerConfig:
    """``OPTIMIZER``: ``NAME`` in :data:`ssformer.registry.OPTIMIZERS`, ``LR``, ``WEIGHT_DECAY``."""

    name: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.01


@dataclass
class SchedulerConfig:
    """``SCHEDULER``: ``NAME`` in :data:`ssformer.registry.SCHEDULERS`; ``POWER``, ``WARMUP`` (epochs) and
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
    ``IMAGE_SIZE``, ``MSF``, ``RECIPE``: the evaluation pipeline (one of
    :data:`ssformer.registry.EVAL_RECIPES`; default ``study`` for 2-class models, the study's,
    and ``official`` for 1-channel SSFormer models); ``METRICS``: what each validation during
    training computes: ``fast`` (default: Dice/IoU at 0.5, mDice, mIoU, the pooled 2-class
    numbers), ``all`` (the whole table, S-alpha, E-phi, Fw-beta, F-measure and MAE included) or
    a list of names (:data:`ssformer.registry.METRIC_NAMES`); the test scoring at the end
    always computes every metric."""

    model_path: str | None = None
    image_size: tuple[int, int] = PAPER_SIZE
    recipe: str | None = None
    metrics: str | tuple[str, ...] = "fast"
    msf: MSFConfig = field(default_factory=MSFConfig)


@dataclass
class TestConfig:
    """``TEST`` (inference): ``MODEL_PATH``, ``FILE`` (image or folder), ``IMAGE_SIZE``,
    ``OVERLAY``."""

    __test__ = False  # not a pytest test class

    model_path: str | None = None
    file: str | None = None
    image_size: tuple[int, int] = PAPER_SIZE
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
    def experiment_dir(self) -> Path:
        """``SAVE_DIR/<run_name>``: the folder holding this model's run folders."""
        return Path(self.save_dir) / self.run_name

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
        return PRESETS.get(self.model.name, (self.model.name, ""))[0]

    def to_dict(self) -> dict[str, Any]:
        """The config as plain YAML data with the upper-case keys (lists, not tuples)."""
        return to_plain(self)


def yaml_key(f: dataclasses.Field[Any]) -> str:
    """The YAML key of a dataclass field: its name in upper case."""
    return f.name.upper()


def yaml_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """YAML key -> field of a section dataclass (fields marked ``yaml: False`` excluded)."""
    return {yaml_key(f): f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True) is True}


def to_plain(obj: Any) -> Any:
    """A config (or section) as plain YAML data with the upper-case keys (lists, not tuples)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            yaml_key(f): to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.metadata.get("yaml", True) is True
        }
    if isinstance(obj, (tuple, list)):
        return [to_plain(v) for v in obj]
    return obj
