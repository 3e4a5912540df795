"""Metric keys, the convention each follows, display names and the default sets."""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_METRICS",
    "DISPLAY_NAMES",
    "EPS",
    "METRIC_CONVENTIONS",
    "NUM_THRESHOLDS",
    "PER_IMAGE_METRICS",
    "POOLED_METRICS",
    "PYSOD_METRICS",
]

NUM_THRESHOLDS = 256

# numpy.spacing(1), the MATLAB `eps` that PySODMetrics and the MATLAB toolboxes use.
EPS = float(np.spacing(1))

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

DISPLAY_NAMES: dict[str, str] = {
    "S_alpha": "Sα",
    "E_phi_mean": "Eφ mean",
    "E_phi_max": "Eφ max",
    "E_phi_adp": "Eφ adp",
    "Fw_beta": "Fwβ",
    "Fm_mean": "Fβ mean",
    "Fm_max": "Fβ max",
    "Fm_adp": "Fβ adp",
}

POOLED_METRICS: tuple[str, ...] = ("mIoU_2cls", "mDice_2cls")
PER_IMAGE_METRICS: tuple[str, ...] = tuple(k for k in METRIC_CONVENTIONS if k not in POOLED_METRICS)
DEFAULT_METRICS: tuple[str, ...] = tuple(METRIC_CONVENTIONS)
# What PySODMetrics' Smeasure, Emeasure, WeightedFmeasure, MAE and Fmeasure compute (the suite
# of the polyp papers' tables, compared with PySODMetrics in the tests and benchmarks).
PYSOD_METRICS: tuple[str, ...] = (
    "S_alpha",
    "E_phi_mean",
    "E_phi_max",
    "E_phi_adp",
    "Fw_beta",
    "MAE",
    "Fm_mean",
    "Fm_max",
    "Fm_adp",
)
