"""Bootstrap intervals and paired comparisons against direct computations on small cases: a
plain loop over the same Generator's draws, the evaluator's own pooling, scipy.stats.wilcoxon."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy import stats

from ssformer.errors import ConfigError
from ssformer.metrics import SegmentationEvaluator
from ssformer.report.statistics import (
    bootstrap_interval,
    paired_comparison,
    resample_weights,
    statistic,
)


def _loop_draws(n: int, resamples: int, seed: int) -> list[np.ndarray]:
    """The resamples drawn one by one, as a plain loop would."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, size=n) for _ in range(resamples)]


def test_weights_count_the_draws_of_a_plain_loop() -> None:
    weights = resample_weights(7, 50, seed=3)
    assert weights.shape == (50, 7) and (weights.sum(1) == 7).all()
    for row, draw in zip(weights, _loop_draws(7, 50, 3), strict=True):
        assert row.tolist() == np.bincount(draw, minlength=7).tolist()


def test_mean_interval_equals_a_plain_loop() -> None:
    values = np.random.default_rng(11).uniform(0.2, 1.0, size=23)
    low, high = bootstrap_interval([values], "Dice@0.5", resamples=500, seed=5)
    means = [values[draw].mean() for draw in _loop_draws(23, 500, 5)]
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), abs=1e-12)
    assert low < values.mean() < high
    # several runs (seeds): the interval of the mean over runs, same draws for every run
    other = np.clip(values + np.random.default_rng(12).normal(0, 0.05, 23), 0, 1)
    both = bootstrap_interval([values, other], "mDice", resamples=500, seed=5)
    pooled = [(values[d].mean() + other[d].mean()) / 2 for d in _loop_draws(23, 500, 5)]
    assert both == pytest.approx(tuple(np.percentile(pooled, [2.5, 97.5])), abs=1e-12)


def _label_pairs(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(4)
    pairs = []
    for index in range(count):
        gt = np.zeros((6, 8), dtype=np.int64)
        gt[1 : 2 + index % 4, 2 : 4 + index % 3] = 1
        pred = gt.copy()
        flip = rng.random(gt.shape) < 0.15
        pred[flip] = 1 - pred[flip]
        pairs.append((pred, gt))
    if count > 2:
        pairs[2] = (np.zeros((6, 8), np.int64), np.zeros((6, 8), np.int64))  # no polyp at all
    return pairs


@pytest.mark.parametrize("key", ["mIoU_2cls", "mDice_2cls"])
def test_pooled_interval_repools_like_the_evaluator(key: str) -> None:
    pairs = _label_pairs(9)
    counts = []
    whole = SegmentationEvaluator((key,))
    for pred, gt in pairs:
        counts.append(whole.update_pooled(pred, gt))
    counts_array = np.stack(counts)
    assert (counts_array.sum(0) == whole.confusion_matrix).all()
    assert statistic(counts_array, key)[0] == pytest.approx(whole.compute()[key], abs=1e-12)
    resampled = []
    for draw in _loop_draws(9, 150, 2):
        evaluator = SegmentationEvaluator((key,))
        for index in draw:
            evaluator.update_pooled(*pairs[index])
        resampled.append(evaluator.compute()[key])
    expected = tuple(np.percentile(resampled, [2.5, 97.5]))
    assert bootstrap_interval([counts_array], key, 150, 2) == pytest.approx(expected, abs=1e-9)


def test_paired_comparison_agrees_with_scipy_and_a_loop() -> None:
    rng = np.random.default_rng(8)
    a = rng.uniform(0.5, 0.9, size=30)
    b = np.clip(a + rng.normal(0.03, 0.04, size=30), 0, 1)
    result = paired_comparison([a], [b], "mDice", resamples=400, seed=1)
    assert result.n == 30
    assert result.mean_difference == pytest.approx(float(np.mean(b - a)), abs=1e-12)
    assert result.p_value == pytest.approx(float(stats.wilcoxon(b, a).pvalue), rel=1e-12)
    diffs = [(b - a)[draw].mean() for draw in _loop_draws(30, 400, 1)]
    assert result.ci95 == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), abs=1e-12)
    assert result.distinguishable  # a shift of 0.03 with sd 0.04 over 30 images

    # seeds per side: per-image means across seeds
    a2 = np.clip(a + rng.normal(0, 0.01, 30), 0, 1)
    b2 = np.clip(b + rng.normal(0, 0.01, 30), 0, 1)
    seeds = paired_comparison([a, a2], [b, b2], "mDice", resamples=400, seed=1)
    mean_a, mean_b = (a + a2) / 2, (b + b2) / 2
    assert seeds.p_value == pytest.approx(float(stats.wilcoxon(mean_b, mean_a).pvalue))
    assert seeds.mean_difference == pytest.approx(float(np.mean(mean_b - mean_a)))


def test_noise_is_not_distinguishable_and_identical_runs_are_equal() -> None:
    rng = np.random.default_rng(21)
    a = rng.uniform(0.5, 0.9, size=12)
    b = a + rng.normal(0, 0.05, size=12)
    noise = paired_comparison([a], [b], "Dice@0.5")
    assert noise.ci95[0] < 0 < noise.ci95[1] and not noise.distinguishable
    same = paired_comparison([a], [a.copy()], "Dice@0.5")
    assert same.mean_difference == 0.0 and same.ci95 == (0.0, 0.0) and not same.distinguishable
    with pytest.warns(RuntimeWarning):  # scipy's answer for all-zero differences, as it is
        assert same.p_value == float(stats.wilcoxon(a, a.copy()).pvalue)
    with pytest.raises(ConfigError, match="same images"):
        paired_comparison([a], [b[:5]], "Dice@0.5")
    with pytest.raises(ConfigError, match="at least one image"):
        resample_weights(0)


def test_pooled_paired_comparison_uses_the_bootstrap_only() -> None:
    pairs = _label_pairs(10)
    a = np.stack([SegmentationEvaluator().update_pooled(p, g) for p, g in pairs])
    better = np.stack([SegmentationEvaluator().update_pooled(g, g) for _, g in pairs])
    result = paired_comparison([a], [better], "mDice_2cls", resamples=300)
    assert result.p_value is None
    assert result.mean_difference == pytest.approx(
        statistic(better, "mDice_2cls")[0] - statistic(a, "mDice_2cls")[0]
    )
    assert result.ci95[0] > 0  # a perfect prediction beats a noisy one on every resample


def test_two_thousand_resamples_of_a_hundred_images_well_under_a_second() -> None:
    values = np.random.default_rng(0).uniform(size=100)
    counts = torch.randint(0, 500, (100, 2, 2)).numpy()
    start = time.perf_counter()
    bootstrap_interval([values], "mDice")
    bootstrap_interval([counts], "mIoU_2cls")
    paired_comparison([values], [values[::-1].copy()], "mDice")
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"three bootstraps of 2000 x 100 took {elapsed:.2f} s"


def test_a_pooled_metric_without_any_pixel_has_no_interval() -> None:
    empty = np.zeros((4, 2, 2))
    assert np.isnan(statistic(empty, "mDice_2cls")[0])
    with pytest.raises(ConfigError, match="no resample gave a number"):
        bootstrap_interval([empty], "mDice_2cls", resamples=20)
