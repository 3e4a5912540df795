"""The metrics' display names, sets and constants; each key's convention is
:data:`ssformer.registry.METRIC_CONVENTIONS` (re-exported here)."""

from __future__ import annotations

import numpy as np

from ssformer.registry import METRIC_CONVENTIONS

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
