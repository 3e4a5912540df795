"""Threshold metrics from one histogram pass: Dice/IoU, E-measure and F-measure curves, their
adaptive-threshold values, and the official test.py arithmetic.

Each pixel gets two bins: ``floor(255 p)`` (PySODMetrics' bins: E-measure, F-measure,
precision/recall) and the index of the largest ``np.linspace(1, 0, 256)`` threshold ``<= p``
(the PraNet toolbox's ``>=`` thresholds: Dice/IoU). One ``bincount`` over (image, GT class, bin)
gives both histograms for a whole batch; reverse cumulative sums give the counts at all 256
thresholds at once. The curves are computed on the ``[B, 256]`` counts (numpy, float64).
"""

from __future__ import annotations

import numpy as np
import torch

from ssformer.metrics.conventions import EPS, NUM_THRESHOLDS
from ssformer.metrics.inputs import Workspace, minmax_affine, normalize_batch, prepare_prob

__all__ = [
    "FM_BETA2",
    "absolute_error_sum",
    "binned_histograms",
    "counts_from_hist",
    "dice_iou_curves",
    "em_histograms",
    "emeasure_at",
    "emeasure_curve",
    "emeasure_curves",
    "exact_bins",
    "fmeasure_at",
    "fmeasure_curves",
    "histograms",
    "official_binary_value",
    "official_values",
    "saved_histograms",
    "saved_map_histograms",
    "threshold_counts",
]

# beta^2 of the F-measure (PySODMetrics Fmeasure, the SOD convention of Achanta et al. 2009).
FM_BETA2 = 0.3

# Thresholds of `np.linspace(1, 0, 256)` (official test.py; MATLAB's `1:-1/255:0` up to an ulp),
# ascending (t_0 = 0, t_255 = 1); bin k of p = index of the largest threshold t_k <= p.
_THRESHOLDS_ASCENDING = np.ascontiguousarray(np.linspace(1.0, 0.0, NUM_THRESHOLDS)[::-1])
# The 8-bit toolbox map's thresholds: k / 255 exactly.
_EXACT_THRESHOLDS = np.arange(NUM_THRESHOLDS, dtype=np.float64) / 255.0
_table_cache: dict[tuple[str, torch.device], torch.Tensor] = {}


def _table(name: str, device: torch.device) -> torch.Tensor:
    key = (name, device)
    if key not in _table_cache:
        values = {
            "linspace+inf": np.append(_THRESHOLDS_ASCENDING, np.inf),
            "exact": _EXACT_THRESHOLDS,
        }[name]
        _table_cache[key] = torch.from_numpy(values).to(device)
    return _table_cache[key]


def exact_bins(norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact bins of normalised values (float64): (``floor(255 p)``, largest k with t_k <= p)."""
    floor_bins = torch.floor(norm * 255.0).to(torch.int64).clamp_(0, NUM_THRESHOLDS - 1)
    thresholds = _table("linspace+inf", norm.device)  # ascending, with +inf appended
    threshold_bins = (
        floor_bins
        - (norm < thresholds[floor_bins]).to(torch.int64)
        + (norm >= thresholds[floor_bins + 1]).to(torch.int64)
    )
    return floor_bins, threshold_bins.clamp_(0, NUM_THRESHOLDS - 1)


def histograms(
    prob: torch.Tensor, gt: torch.Tensor, offset: torch.Tensor, divisor: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Histograms of the min-max-normalised maps of a batch: ``(em_hist, thr_hist)``, int64
    ``[B, 2, 256]`` on the maps' device.

    ``em_hist[b, g, k]`` counts the pixels of image b and GT class g (0 = background,
    1 = foreground) with ``floor(255 p) = k`` (PySODMetrics' bins); ``thr_hist[b, g, k]`` those
    whose largest ``np.linspace(1, 0, 256)`` threshold ``t <= p`` is ``t_k`` (ascending, so
    ``p >= t_k`` holds exactly for the pixels of bins ``>= k``), where
    ``p = (prob - offset) / divisor`` in float64 (:func:`ssformer.metrics.inputs.minmax_affine`).

    Speed: the bins are computed in float32; every pixel whose ``255 p`` lies within 1e-3 of an
    integer (where float32 rounding, or the difference between ``floor`` and the exact
    thresholds, could matter; few pixels for float maps) is re-binned from its float64
    normalised value, so the histograms are exactly those of the float64 computation.
    """
    batch = prob.shape[0]
    per_image = prob[0].numel()
    prob, gt = prob.reshape(batch, per_image), gt.reshape(batch, per_image)  # any map shape
    view = (batch, 1)
    p32 = prob if prob.dtype == torch.float32 else prob.to(torch.float32)
    scale = (255.0 / divisor).to(torch.float32).view(view)
    scaled = (p32 - offset.to(torch.float32).view(view)).mul_(scale)
    floored = torch.floor(scaled)
    frac = scaled.sub_(floored)
    near = (frac.sub_(0.5).abs_() > 0.5 - 1e-3).view(-1).nonzero()[:, 0]
    nbins = 2 * NUM_THRESHOLDS
    image_offset = torch.arange(batch, device=prob.device, dtype=torch.float32) * nbins
    combined = floored.clamp_(0, NUM_THRESHOLDS - 1).add_(
        gt.view(torch.uint8), alpha=NUM_THRESHOLDS
    )
    combined = combined.add_(image_offset.view(view)).to(torch.int32).view(-1)
    size = batch * nbins
    em_hist = torch.bincount(combined, minlength=size)
    thr_hist = em_hist
    if near.numel():
        b_near = near // per_image
        p_near = prob.reshape(-1).take(near).to(torch.float64)
        norm_near = (p_near - offset[b_near]) / divisor[b_near]
        floor_near, thr_near = exact_bins(norm_near)
        base = gt.reshape(-1).take(near).to(torch.int64) * NUM_THRESHOLDS + b_near * nbins
        removed = torch.bincount(combined.take(near), minlength=size)
        em_hist = em_hist - removed + torch.bincount(floor_near + base, minlength=size)
        thr_hist = thr_hist - removed + torch.bincount(thr_near + base, minlength=size)
    shape = (batch, 2, NUM_THRESHOLDS)
    return em_hist.to(torch.int64).reshape(shape), thr_hist.to(torch.int64).reshape(shape)


def em_histograms(
    norm: torch.Tensor, gt: torch.Tensor, workspace: Workspace | None = None
) -> torch.Tensor:
    """PySODMetrics' histograms alone (the ``em_hist`` of :func:`histograms`), int64
    [B, 2, 256], straight from the float64 normalised maps ``norm`` [B, h, w]: ``int(255 p)``
    is numpy's ``(pred * 255).astype(np.uint8)``, exactly."""
    batch = norm.shape[0]
    nbins = 2 * NUM_THRESHOLDS
    ws = Workspace() if workspace is None else workspace
    scaled = torch.mul(norm, 255.0, out=ws.get("scaled", norm.shape, norm.dtype, norm.device))
    bins = ws.get("bins", norm.shape, torch.int32, norm.device).copy_(scaled)  # truncates
    bins.add_(gt.view(torch.uint8), alpha=NUM_THRESHOLDS)
    bins.add_((torch.arange(batch, device=norm.device, dtype=torch.int32) * nbins).view(-1, 1, 1))
    hist = torch.bincount(bins.view(-1), minlength=batch * nbins)
    return hist.to(torch.int64).reshape(batch, 2, NUM_THRESHOLDS)


def saved_histograms(
    saved: torch.Tensor, norm: torch.Tensor, gt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`histograms` of 8-bit maps ``saved`` [B, h, w] as the PraNet toolbox reads them.

    ``norm`` is the map as read: ``im2double`` (v / 255) then ``mapminmax``. The thresholds are
    ``k / 255`` exactly, so a map that spans 0..255 is binarised at threshold ``k`` as
    ``v >= k`` (the ties of MATLAB's ``1:-1/255:0``, which can differ from ``k / 255`` by an
    ulp, are not reproduced).
    """
    batch = saved.shape[0]
    v = saved.to(torch.int64)
    flat = v.reshape(batch, -1)
    full_range = (flat.amin(1) == 0) & (flat.amax(1) == NUM_THRESHOLDS - 1)
    if bool(full_range.all()):
        thr_bins = v
    else:
        boundaries = _table("exact", norm.device)
        searched = torch.searchsorted(boundaries, norm.contiguous(), right=True) - 1
        thr_bins = torch.where(full_range.view(-1, 1, 1), v, searched)
    em_bins = torch.floor(norm * 255.0).to(torch.int64).clamp_(0, NUM_THRESHOLDS - 1)
    nbins = 2 * NUM_THRESHOLDS
    base = gt.to(torch.int64) * NUM_THRESHOLDS
    base += (torch.arange(batch, device=saved.device) * nbins).view(-1, 1, 1)
    shape = (batch, 2, NUM_THRESHOLDS)
    thr = torch.bincount((thr_bins + base).reshape(-1), minlength=batch * nbins)
    em = torch.bincount((em_bins + base).reshape(-1), minlength=batch * nbins)
    return em.reshape(shape), thr.reshape(shape)


def counts_from_hist(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(TP, predicted positives, GT count) of ``bin >= k`` from histograms ``[..., 2, 256]``,
    thresholds descending (index 0 is ``k = 255``, index 255 is ``k = 0``)."""
    rev = np.cumsum(hist[..., ::-1], axis=-1)  # count of pixels with bin >= k, k = 255 .. 0
    tp = rev[..., 1, :]
    positives = rev[..., 0, :] + rev[..., 1, :]
    return tp, positives, hist[..., 1, :].sum(-1)


def dice_iou_curves(
    tp: np.ndarray, positives: np.ndarray, n_gt: int | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU per threshold as the toolbox's ``Fmeasure_calu``: 0 where TP = 0.
    ``n_gt`` broadcasts against the last axis (a ``[B, 1]`` array for ``[B, 256]`` counts)."""
    tp_f = tp.astype(np.float64)
    pos_f = positives.astype(np.float64)
    n_gt_f = np.asarray(n_gt, dtype=np.float64)
    has_tp = tp > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(has_tp, 2.0 * tp_f / (n_gt_f + pos_f), 0.0)
        iou = np.where(has_tp, tp_f / (n_gt_f - tp_f + pos_f), 0.0)
    return dice, iou


def _enhanced_sum(
    tp: np.ndarray, pred_fg: np.ndarray, n_gt: np.ndarray, n_pixels: int
) -> np.ndarray:
    """Sum of the enhanced-alignment matrix of a binary prediction with ``pred_fg`` predicted
    pixels, ``tp`` of them on the GT (``n_gt`` pixels), as PySODMetrics' Emeasure."""
    pred_fg = pred_fg.astype(np.float64)
    tp = tp.astype(np.float64)
    n_gt = np.broadcast_to(np.asarray(n_gt, dtype=np.float64), tp.shape)
    pred_bg = n_pixels - pred_fg
    fp = pred_fg - tp
    fn = n_gt - tp
    tn = pred_bg - fn
    mean_pred = pred_fg / n_pixels
    mean_gt = n_gt / n_pixels
    general = np.zeros_like(tp)
    # (region count, demeaned prediction value, demeaned GT value)
    for count, pred_value, gt_value in (
        (tp, 1.0 - mean_pred, 1.0 - mean_gt),
        (fp, 1.0 - mean_pred, 0.0 - mean_gt),
        (fn, 0.0 - mean_pred, 1.0 - mean_gt),
        (tn, 0.0 - mean_pred, 0.0 - mean_gt),
    ):
        align = 2.0 * (pred_value * gt_value) / (pred_value**2 + gt_value**2 + EPS)
        general = general + (align + 1.0) ** 2 / 4.0 * count
    return np.where(n_gt == 0, pred_bg, np.where(n_gt == n_pixels, pred_fg, general))


def emeasure_curves(hist: np.ndarray, n_pixels: int) -> np.ndarray:
    """E-measure (Fan et al., IJCAI 2018) at the 256 thresholds ``floor(255 p) >= k`` of each
    image, as PySODMetrics' ``Emeasure`` curve: ``[B, 256]`` from ``hist`` ``[B, 2, 256]``
    (PySODMetrics' bins); index i is the threshold ``k = 255 - i``.

    An all-background GT scores the predicted background, an all-foreground GT the predicted
    foreground; the sum is divided by ``N - 1 + eps`` as in MATLAB, so values can exceed 1
    slightly (and a 1-pixel image divides by ``eps``).
    """
    tp, positives, n_gt = counts_from_hist(hist)
    return _enhanced_sum(tp, positives, n_gt[..., None], n_pixels) / (n_pixels - 1 + EPS)


def emeasure_curve(
    fg_hist: np.ndarray, bg_hist: np.ndarray, n_gt: int, n_pixels: int
) -> np.ndarray:
    """E-measure curve of one image (see :func:`emeasure_curves`) from its foreground and
    background histograms over ``floor(255 p)``; index i is the threshold ``(255 - i) / 255``."""
    return emeasure_curves(np.stack([bg_hist, fg_hist])[None], n_pixels)[0]


def emeasure_at(tp: np.ndarray, pred_fg: np.ndarray, n_gt: np.ndarray, n_pixels: int) -> np.ndarray:
    """E-measure of binary predictions from their counts (PySODMetrics ``cal_em_with_threshold``),
    e.g. at the adaptive threshold."""
    return _enhanced_sum(tp, pred_fg, n_gt, n_pixels) / (n_pixels - 1 + EPS)


def fmeasure_curves(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F-measure (beta^2 = 0.3) ``[B, 256]`` at the thresholds
    ``floor(255 p) >= k`` (index i is ``k = 255 - i``), as PySODMetrics ``Fmeasure.cal_pr``:
    precision 0 where nothing is predicted, recall over ``max(|G|, 1)``, F 0 where P * R = 0."""
    tp, positives, n_gt = counts_from_hist(hist)
    tp = tp.astype(np.float64)
    precision = tp / np.where(positives == 0, 1, positives)
    recall = tp / np.maximum(n_gt, 1)[..., None]
    numerator = (1 + FM_BETA2) * precision * recall
    denominator = np.where(numerator == 0, 1, FM_BETA2 * precision + recall)
    return precision, recall, numerator / denominator


def fmeasure_at(tp: np.ndarray, pred_fg: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    """F-measure (beta^2 = 0.3) of binary predictions from their counts, as PySODMetrics
    ``Fmeasure.cal_adaptive_fm``: 0 when TP = 0."""
    tp = np.asarray(tp, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pre = tp / pred_fg
        rec = tp / n_gt
        fm = (1 + FM_BETA2) * pre * rec / (FM_BETA2 * pre + rec)
    return np.where(tp == 0, 0.0, fm)


def official_binary_value(n_positive: int, n_pixels: int) -> float:
    """Value of the predicted pixels after the official test.py normalisation of ``prob > 0.5``.

    test.py computes ``(b - b.min()) / (b.max() - b.min() + 1e-8)`` on the float32 binary map b:
    1.0 in float32 when b has both values, and 0.0 (every pixel) when b is constant.
    """
    if 0 < n_positive < n_pixels:
        one, zero = np.float32(1.0), np.float32(0.0)
        return float((one - zero) / (one - zero + np.float32(1e-8)))
    return 0.0


def official_values(n_pred: int, tp_ones: int, n_gt: int, n_pixels: int) -> dict[str, float]:
    """``official_dice`` / ``official_iou`` of one image from the counts of ``prob > 0.5``
    (``n_pred`` predicted pixels, ``tp_ones`` of them in the GT of ``n_gt`` pixels)."""
    value = official_binary_value(n_pred, n_pixels)
    # Two distinct values at most: `value` on the predicted pixels, 0 elsewhere.
    ones_bin = int(np.searchsorted(_THRESHOLDS_ASCENDING, value, side="right")) - 1
    hist = np.zeros((2, NUM_THRESHOLDS), dtype=np.int64)
    hist[1, ones_bin] += tp_ones
    hist[0, ones_bin] += n_pred - tp_ones
    hist[1, 0] += n_gt - tp_ones
    hist[0, 0] += n_pixels - n_pred - (n_gt - tp_ones)
    tp, positives, total_gt = counts_from_hist(hist)
    dice, iou = dice_iou_curves(tp, positives, total_gt)
    return {"official_dice": float(dice.mean()), "official_iou": float(iou.mean())}


# ----------------------------------------------------------------------------- one image
def absolute_error_sum(
    prob: torch.Tensor, gt: torch.Tensor, value_range: tuple[float, float]
) -> float:
    """``sum |norm - gt|`` of the ``mapminmax``-normalised map, in float64 pixel by pixel as
    PySODMetrics' MAE (no sums of ``p`` that cancel: a map in [0.999, 1] or two values one ulp
    apart are exact)."""
    lo, hi = value_range
    offset, divisor = (lo, hi - lo) if hi > lo else (0.0, 1.0)
    norm = prob.to(torch.float64)
    if (offset, divisor) != (0.0, 1.0):
        norm = (norm - offset) / divisor
    return float(torch.abs(norm - gt.to(torch.float64)).sum())


def binned_histograms(
    prob: torch.Tensor, gt: torch.Tensor, value_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`histograms` of one map [h, w] (min-max normalised like ``mapminmax``), as numpy
    ``(em_hist [2, 256], thr_hist [2, 256], sum |p - gt|)``.

    Args:
        prob: [h, w] probabilities (float; float64 for maps read from uint8).
        gt: [h, w] bool mask on the same device.
        value_range: ``(min, max)`` of ``prob`` if already known.
    """
    if value_range is None:
        lo_t, hi_t = torch.aminmax(prob)
        value_range = (float(lo_t), float(hi_t))
    lo, hi = (torch.tensor([v], dtype=torch.float64, device=prob.device) for v in value_range)
    offset, divisor = minmax_affine(lo, hi)
    em, thr = histograms(prob[None], gt[None], offset, divisor)
    return (
        em[0].cpu().numpy(),
        thr[0].cpu().numpy(),
        absolute_error_sum(prob, gt, value_range),
    )


def saved_map_histograms(
    saved: torch.Tensor, gt: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`saved_histograms` of one 8-bit map [h, w], as numpy ``(em_hist, thr_hist,
    sum |p - gt|)`` with p the map as the toolbox reads it (v / 255, then ``mapminmax``)."""
    p, lo, hi = prepare_prob(saved[None])
    norm = normalize_batch(p, *minmax_affine(lo, hi))
    em, thr = saved_histograms(saved[None], norm, gt[None])
    abs_error = float(torch.abs(norm[0] - gt.to(torch.float64)).sum())
    return em[0].cpu().numpy(), thr[0].cpu().numpy(), abs_error


def threshold_counts(prob: torch.Tensor, gt: torch.Tensor) -> tuple[np.ndarray, np.ndarray, int]:
    """TP and predicted-positive counts of ``norm >= t`` for the 256 thresholds, descending.

    ``norm`` is ``prob`` min-max normalised (``mapminmax``). Index 0 is ``t = 1``, index 255 is
    ``t = 0`` (the order of ``np.linspace(1, 0, 256)``).
    Returns (tp[256] int64, positives[256] int64, number of GT pixels).
    """
    tp, positives, n_gt = counts_from_hist(binned_histograms(prob, gt)[1])
    return tp, positives, int(n_gt)
