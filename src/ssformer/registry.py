"""Every name the package knows, once: models, presets, backbones, losses, optimisers,
schedulers, protocols, augmentations, downloadable data sets and file suffixes.

Config validation, the command line and the factories all read these tables; nothing else
spells a list of names. The module imports neither torch nor any other part of the package
except :mod:`ssformer.errors`, so that loading a config or parsing a command line stays fast.

Tables whose names have an implementation (:data:`MODELS`, :data:`LOSSES`) give it as
``"module:attribute"``, one line per name, resolved lazily by :func:`implementation`: the name is
written here only, and validation stays torch-free. To add a decoder: write its class in
:mod:`ssformer.models.heads` (its width rule, checkpoint marker and published layout) and add
its line to :data:`MODELS` here.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ssformer.errors import ConfigError

__all__ = [
    "AUGMENTS",
    "BACKBONES",
    "BACKBONE_SPECS",
    "DATASET_DOWNLOADS",
    "EVAL_RECIPES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_DIR_NAMES",
    "IMAGE_SUFFIXES",
    "LOSSES",
    "LOSS_ALIASES",
    "MASK_DIR_NAMES",
    "METRIC_CONVENTIONS",
    "METRIC_NAMES",
    "MODELS",
    "MODEL_NAMES",
    "ONE_CHANNEL_LOSSES",
    "OPTIMIZERS",
    "PRESETS",
    "PROTOCOLS",
    "SCHEDULERS",
    "STUDY_SPLIT_RATIO",
    "STUDY_SPLIT_SEED",
    "STUDY_WEIGHT_FOLDERS",
    "WEIGHT_NAMES",
    "BackboneSpec",
    "canonical_backbone_name",
    "canonical_model_name",
    "closest",
    "implementation",
]

# ----------------------------------------------------------------------------- models
MODELS: dict[str, str] = {
    "SSFormer": "ssformer.models.heads:ProgressiveLocalityDecoder",
    "PLDSegFormer": "ssformer.models.heads:StudyPLDHead",
    "SegFormer": "ssformer.models.heads:SegFormerHead",
}
"""Architecture -> its decoder class: the official SSFormer (PLD head, Wang et al., MICCAI 2022),
the reproduction study's PLD variant and the SegFormer MLP head (Xie et al., NeurIPS 2021); in
checkpoint-detection order (the official PLD's marker first)."""
PRESETS: dict[str, tuple[str, str]] = {
    "SSFormer-S": ("SSFormer", "MiT-B2"),
    "SSFormer-L": ("SSFormer", "MiT-B4"),
}
"""Preset name -> (architecture, backbone): the paper's two models."""
MODEL_NAMES: tuple[str, ...] = (*MODELS, *PRESETS)


@dataclass(frozen=True)
class BackboneSpec:
    """Hyper-parameters of one backbone variant (the original configs of MiT and PVTv2)."""

    embed_dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    mlp_ratios: tuple[float, float, float, float]
    num_heads: tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: tuple[int, int, int, int] = (8, 4, 2, 1)
    drop_path_rate: float = 0.1  # official MiT configs (mit_b0..b5) and the study's framework


_DEPTHS = {
    "B0": (2, 2, 2, 2),
    "B1": (2, 2, 2, 2),
    "B2": (3, 4, 6, 3),
    "B3": (3, 4, 18, 3),
    "B4": (3, 8, 27, 3),
    "B5": (3, 6, 40, 3),
}


def _backbone_specs() -> dict[str, BackboneSpec]:
    """MiT and PVTv2 differ only in the FFN expansion (MiT 4 everywhere; PVTv2 8/8/4/4, B5 4)."""
    mit: dict[str, BackboneSpec] = {}
    pvt: dict[str, BackboneSpec] = {}
    for size, depths in _DEPTHS.items():
        dims = (32, 64, 160, 256) if size == "B0" else (64, 128, 320, 512)
        mit[f"MiT-{size}"] = BackboneSpec(dims, depths, (4.0, 4.0, 4.0, 4.0))
        pvt_mlp = (4.0, 4.0, 4.0, 4.0) if size == "B5" else (8.0, 8.0, 4.0, 4.0)
        pvt[f"PVTv2-{size}"] = BackboneSpec(dims, depths, pvt_mlp)
    return {**mit, **pvt}


BACKBONE_SPECS: dict[str, BackboneSpec] = _backbone_specs()
BACKBONES: tuple[str, ...] = tuple(BACKBONE_SPECS)

# ----------------------------------------------------------------------------- training
LOSSES: dict[str, str] = {
    "DiceLoss": "ssformer.losses:DiceLoss",
    "CrossEntropy": "ssformer.losses:CrossEntropyLoss",
    "OhemCrossEntropy": "ssformer.losses:OhemCrossEntropyLoss",
    "DiceBCE": "ssformer.losses:DiceBCELoss",
}
"""Canonical loss name -> its class; ``DiceBCE`` is the official SSFormer loss (1 output
channel), the others are the study's 2-class softmax losses."""
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
OPTIMIZERS: tuple[str, ...] = ("adamw", "adamw_default", "sgd", "adamw_official")
SCHEDULERS: tuple[str, ...] = ("plrd", "warmuppolylr", "warmup_step", "constant")
AUGMENTS: tuple[str, ...] = ("study", "official")
PROTOCOLS: tuple[str, ...] = ("split", "pranet")
STUDY_SPLIT_RATIO: tuple[float, float, float] = (0.8, 0.1, 0.1)
STUDY_SPLIT_SEED = 1337
"""The reproduction study's split: ``splitfolders.ratio(..., seed=1337, ratio=(.8, .1, .1))``,
the ``split`` protocol's default and the published data sets' verified split."""
EVAL_RECIPES: tuple[str, ...] = ("study", "official", "pranet-toolbox")
"""Evaluation pipelines (``EVAL.RECIPE``), each that of an original: the reproduction study's
``semseg`` val, the official SSFormer ``test.py``, PraNet's saved 8-bit maps read by its
toolbox (see :mod:`ssformer.data.recipes`)."""

WEIGHT_NAMES: tuple[str, ...] = (
    *(f"mit-b{i}" for i in range(6)),
    *(f"pvtv2-b{i}" for i in range(6)),
    "ssformer-s",
    "ssformer-l",
)
"""Weights ``ssformer download weights`` knows (their sources: :data:`ssformer.models.zoo.WEIGHTS`)."""
STUDY_WEIGHT_FOLDERS: tuple[str, ...] = ("study-kvasir", "study-cvc-clinicdb")
"""The reproduction study's trained weights, one Google Drive folder per data set, that
``ssformer download weights`` also knows (:data:`ssformer.models.study_zoo.STUDY_FOLDERS`)."""

# ----------------------------------------------------------------------------- data
DATASET_DOWNLOADS: tuple[str, ...] = ("kvasir-seg", "cvc-clinicdb", "pranet")
"""Data sets ``ssformer download data`` knows."""
METRIC_CONVENTIONS: dict[str, str] = {
    "mDice": "PraNet toolbox: per image min-max-normalised prob at GT size, Dice at 256 thresholds "
    "(>= k/255), mean over thresholds then images; GT>128 (SSFormer paper, PraNet, Polyp-PVT)",
    "mIoU": "PraNet toolbox: per image min-max-normalised prob at GT size, IoU at 256 thresholds "
    "(>= k/255), mean over thresholds then images; GT>128 (SSFormer paper, PraNet, Polyp-PVT)",
    "Dice@0.5": "per image Dice of prob>0.5, mean over images; GT>128 (FCBFormer)",
    "IoU@0.5": "per image IoU of prob>0.5, mean over images; GT>128 (FCBFormer)",
    "official_dice": "official SSFormer test.py: prob>0.5, then its 256-threshold Dice loop, mean "
    "over images; GT==255 (~0.996 x Dice@0.5; the official repo's test.py)",
    "official_iou": "official SSFormer test.py arithmetic with the loop's IoU output: prob>0.5, "
    "then 256-threshold IoU, mean over images; GT==255",
    "mIoU_2cls": "reproduction study (seed): pooled confusion matrix over all pixels at the model "
    "input size (recipe study: shorter side 352, aspect kept, x32; label == 255), argmax, IoU mean "
    "over background and polyp, x100",
    "mDice_2cls": "reproduction study (seed): pooled confusion matrix over all pixels at the model "
    "input size (recipe study: shorter side 352, aspect kept, x32; label == 255), argmax, F1/Dice "
    "mean over background and polyp, x100",
    "S_alpha": "S-measure (Fan et al. ICCV 2017, alpha=0.5) as PySODMetrics Smeasure on the "
    "min-max-normalised map, mean over images; GT>128 (polyp papers)",
    "E_phi_mean": "E-measure (Fan et al. IJCAI 2018) as PySODMetrics Emeasure: mean over 256 "
    "thresholds (floor(255 p) >= k) of the curve averaged over images; GT>128 (polyp papers)",
    "E_phi_max": "E-measure (Fan et al. IJCAI 2018) as PySODMetrics Emeasure: max over 256 "
    "thresholds (floor(255 p) >= k) of the curve averaged over images; GT>128 (polyp papers)",
    "E_phi_adp": "E-measure (Fan et al. IJCAI 2018) as PySODMetrics Emeasure at the adaptive "
    "threshold p >= min(2 mean(p), 1), mean over images; GT>128",
    "Fw_beta": "weighted F-measure (Margolin et al. CVPR 2014, beta^2=1) as PySODMetrics "
    "WeightedFmeasure on the min-max-normalised map, mean over images; GT>128 (polyp papers)",
    "Fm_mean": "F-measure (beta^2=0.3) as PySODMetrics Fmeasure: mean over 256 thresholds "
    "(floor(255 p) >= k) of the curve averaged over images; GT>128",
    "Fm_max": "F-measure (beta^2=0.3) as PySODMetrics Fmeasure: max over 256 thresholds "
    "(floor(255 p) >= k) of the curve averaged over images; GT>128",
    "Fm_adp": "F-measure (beta^2=0.3) as PySODMetrics Fmeasure at the adaptive threshold "
    "p >= min(2 mean(p), 1), mean over images; GT>128",
    "MAE": "mean absolute error of the min-max-normalised map as in PySODMetrics, mean over "
    "images; GT>128 (polyp papers)",
}
"""Every metric key ``ssformer val`` computes -> the convention it follows (printed beside each
number, written into every ``eval_*.json``); its computation is in :mod:`ssformer.metrics`."""
METRIC_NAMES: tuple[str, ...] = tuple(METRIC_CONVENTIONS)
"""The metric keys, for ``EVAL.METRICS`` (validated before torch is imported)."""
TRAINING_METRIC_NAMES: tuple[str, ...] = (
    "Dice@0.5",
    "IoU@0.5",
    "mDice",
    "mIoU",
    "mDice_2cls",
    "mIoU_2cls",
)
"""``EVAL.METRICS: fast`` (the default): what each validation during training computes."""
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
"""File suffixes (lower case) read as images or masks; every other file is ignored."""
IMAGE_DIR_NAMES: tuple[str, ...] = ("images", "image", "Original")
"""Names of a data set's image folder (Kvasir layout, PraNet's TrainDataset, raw CVC-ClinicDB)."""
MASK_DIR_NAMES: tuple[str, ...] = ("masks", "mask", "Ground Truth")


IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""The normalisation of every recipe (after dividing by 255): ImageNet's mean and std."""


# ----------------------------------------------------------------------------- lookups
def implementation(table: Mapping[str, str], name: str) -> Any:
    """What ``table[name]`` (``"module:attribute"``) names, importing its module now."""
    module, _, attribute = table[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def closest(value: str, options: Iterable[str]) -> str | None:
    """The option that ``value`` most likely means (same letters and digits, or a near miss)."""
    by_norm = {re.sub(r"[^a-z0-9]", "", o.lower()): o for o in options}
    exact = by_norm.get(re.sub(r"[^a-z0-9]", "", value.lower()))
    if exact is not None:
        return exact
    return next(iter(difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)), None)


def canonical_model_name(name: str) -> str:
    """Canonical spelling of a model or preset name (case-insensitive)."""
    lookup = {key.lower(): key for key in MODEL_NAMES}
    key = lookup.get(str(name).strip().lower())
    if key is None:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)}")
    return key


def canonical_backbone_name(name: str) -> str:
    """Canonical spelling of a backbone name (case-insensitive, ``_`` for ``-``): ``mit-b2``."""
    lookup = {key.lower(): key for key in BACKBONES}
    key = lookup.get(str(name).strip().lower().replace("_", "-"))
    if key is None:
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return key
