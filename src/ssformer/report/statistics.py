"""Is a difference real? Bootstrap intervals over test images and paired comparisons.

Every number of an evaluation is a statistic of its test images: a mean of per-image values
(``mDice``, ``Dice@0.5``, ``official_dice``, ...) or a pooled value of per-image confusion
counts (``mIoU_2cls``/``mDice_2cls``, the reproduction study's). Resampling the images with
replacement and recomputing the statistic gives its percentile bootstrap interval: a pooled
metric is re-pooled from the resampled images' counts, not averaged.

- :func:`resample_weights`: how often each image appears in each resample, drawn with
  :class:`numpy.random.Generator` (``integers(0, n, size=(resamples, n))``, a fixed seed);
- :func:`statistic`: the metric of every resample at once (one matrix product);
- :func:`bootstrap_interval`: the 95 % percentile interval of one evaluation or of the mean
  over several runs (seeds) scored on the same images;
- :func:`paired_comparison`: B − A on the same images: the mean paired difference, its paired
  bootstrap interval and, for a per-image metric, the two-sided Wilcoxon signed-rank p-value as
  :func:`scipy.stats.wilcoxon` computes it with its defaults.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ssformer.errors import ConfigError

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "POOLED_KEYS",
    "PairedResult",
    "bootstrap_interval",
    "paired_comparison",
    "percentile_interval",
    "pooled_value",
    "resample_weights",
    "statistic",
]

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
LEVEL = 0.95
POOLED_KEYS: tuple[str, ...] = ("mIoU_2cls", "mDice_2cls")
"""Metrics pooled over the images: their per-image data is a 2x2 confusion matrix each."""


def resample_weights(
    n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> np.ndarray:
    """``[resamples, n]`` counts: how often each of ``n`` images is drawn in each resample.

    The draws are ``numpy.random.default_rng(seed).integers(0, n, size=(resamples, n))``; row
    ``r`` of the result counts the indices of draw row ``r``.
    """
    if n < 1:
        raise ConfigError("a bootstrap needs at least one image; none were given")
    if resamples < 1:
        raise ConfigError(f"the number of resamples must be at least 1, got {resamples}")
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    flat = draws + n * np.arange(resamples)[:, None]
    return np.bincount(flat.ravel(), minlength=resamples * n).reshape(resamples, n)


def pooled_value(confusion: np.ndarray, key: str) -> np.ndarray:
    """``mIoU_2cls``/``mDice_2cls`` (x100) of confusion matrices ``[..., 2, 2]`` (rows GT,
    columns prediction), as :class:`ssformer.metrics.SegmentationEvaluator` computes them: the
    mean over the classes that occur (a class with no pixel in GT nor prediction is left out)."""
    hist = np.asarray(confusion, dtype=np.float64)
    diag = np.diagonal(hist, axis1=-2, axis2=-1)
    sizes = hist.sum(-2) + hist.sum(-1)  # predicted + GT pixels per class
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = diag / (sizes - diag) if key == "mIoU_2cls" else 2.0 * diag / sizes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no class at all: NaN, as the evaluator
        return np.nanmean(per_class, axis=-1) * 100.0


def statistic(data: np.ndarray, key: str, weights: np.ndarray | None = None) -> np.ndarray:
    """The metric ``key`` of each resample: ``data`` holds one value per image ``[n]`` (a
    per-image metric: the weighted mean) or one confusion matrix per image ``[n, 2, 2]`` (a
    pooled metric: re-pooled); ``weights`` ``[resamples, n]`` (``None``: all images once,
    the evaluation's own number, shape ``[1]``)."""
    data = np.asarray(data, dtype=np.float64)
    n = data.shape[0]
    if weights is None:
        weights = np.ones((1, n))
    if key in POOLED_KEYS:
        pooled = weights @ data.reshape(n, 4)
        return pooled_value(pooled.reshape(-1, 2, 2), key)
    return weights @ data / n


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap ``samples`` (NaN-free): ``(low, high)``; a
    :class:`~ssformer.errors.ConfigError` when there is none."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size == 0:
        raise ConfigError(
            "no resample gave a number (a pooled metric of images without any pixel of either "
            "class?); this metric has no interval on these images"
        )
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def _side(runs: Sequence[np.ndarray], key: str, weights: np.ndarray | None) -> np.ndarray:
    """The mean over runs (seeds) of each run's statistic, per resample."""
    return np.mean([statistic(run, key, weights) for run in runs], axis=0)


def bootstrap_interval(
    runs: Sequence[np.ndarray],
    key: str,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap interval over images of the mean over ``runs`` of metric ``key``.

    ``runs``: one array per run, rows in the same image order (see :func:`statistic`); one
    run gives the interval of its own number. The same resamples serve every run.
    """
    if not runs:
        raise ConfigError("a bootstrap interval needs at least one run")
    weights = resample_weights(len(runs[0]), resamples, seed)
    samples = _side(runs, key, weights)
    return percentile_interval(samples[~np.isnan(samples)], level)


@dataclass(frozen=True)
class PairedResult:
    """B − A on ``n`` shared images: mean paired difference (pooled metric: difference of the
    pooled values), its paired bootstrap interval and the Wilcoxon signed-rank p-value
    (``None`` for a pooled metric, which has no per-image value to rank)."""

    n: int
    mean_difference: float
    ci95: tuple[float, float]
    p_value: float | None

    @property
    def distinguishable(self) -> bool:
        """The interval excludes 0 and, where there is one, p < 0.05."""
        low, high = self.ci95
        excludes_zero = low > 0.0 or high < 0.0
        return excludes_zero and (self.p_value is None or self.p_value < 0.05)


def wilcoxon_p_value(a: np.ndarray, b: np.ndarray) -> float | None:
    """``scipy.stats.wilcoxon(b, a)`` with its defaults (two-sided); ``None`` where scipy
    gives NaN. (For all-zero differences scipy warns and, by its exact method, says 1.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-zero differences: scipy says NaN
        p_value = float(stats.wilcoxon(b, a).pvalue)
    return p_value if math.isfinite(p_value) else None


def paired_comparison(
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    key: str,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = LEVEL,
) -> PairedResult:
    """Compare side B with side A on the same images (rows in the same order).

    Each side is one or more runs (seeds); a per-image metric is compared on the per-image
    means across a side's runs (the Wilcoxon test on those), a pooled metric on the mean of
    the runs' pooled values. The interval resamples the images once for both sides.
    """
    if not a or not b:
        raise ConfigError("a paired comparison needs at least one run on each side")
    n = len(a[0])
    if any(len(run) != n for run in (*a, *b)):
        raise ConfigError("every run of a paired comparison must hold the same images")
    weights = resample_weights(n, resamples, seed)
    samples = _side(b, key, weights) - _side(a, key, weights)
    difference = float(_side(b, key, None)[0] - _side(a, key, None)[0])
    p_value = None
    if key not in POOLED_KEYS:
        p_value = wilcoxon_p_value(np.mean(a, axis=0), np.mean(b, axis=0))
    ci = percentile_interval(samples[~np.isnan(samples)], level)
    return PairedResult(n=n, mean_difference=difference, ci95=ci, p_value=p_value)
