"""Polyp-segmentation metrics, each named by the convention (and the paper) it follows.

Every number this package reports names its convention (see :data:`METRIC_CONVENTIONS`):

``mDice``, ``mIoU`` -- PraNet evaluation toolbox (Fan et al., MICCAI 2020; used by the SSFormer
    paper, Wang et al., MICCAI 2022, and by Polyp-PVT). Per image: the probability map at the
    original GT size is min-max normalised like MATLAB ``mapminmax`` (a constant map is left as
    it is); GT = pixel > 128; for each of the 256 thresholds of MATLAB ``Thresholds = 1:-1/255:0``
    (we use the same values as ``numpy.linspace(1, 0, 256)``, i.e. ``t_k = k/255`` up to one ulp)
    the map is binarised with ``>= t`` (the toolbox's ``Fmeasure_calu``) and
    ``Dice = 2 TP / (|G| + |P|)``, ``IoU = TP / (|G| + FP)``, both defined as 0 when ``TP = 0``.
    Mean over the 256 thresholds, then mean over images. Under ``EVAL.RECIPE: pranet-toolbox``
    these (and ``MAE``, ``S_alpha``, ``E_phi``, ``Fw_beta``) come from the 8-bit map the
    toolbox reads (``saved_map``, :func:`saved_map_histograms`); otherwise from the float map.
``Dice@0.5``, ``IoU@0.5`` -- FCBFormer (Sanderson & Matuszewski, MIUA 2022): per image, the
    probability binarised with ``> 0.5`` (no normalisation), GT = pixel > 128, mean over images.
    Like its ``sklearn.metrics.f1_score``/``jaccard_score``, an image whose GT and prediction are
    both empty scores 0. (FCBFormer itself scores at 352x352; we score at whatever size is given,
    normally the original GT size.)
``official_dice``, ``official_iou`` -- the official SSFormer ``test.py``: the sigmoid probability
    (bilinearly resized, ``align_corners=False``, to the image size, see
    :func:`resize_probability`) is binarised with ``> 0.5``, then min-max normalised with
    ``(p - min) / (max - min + 1e-8)`` in float32 (so a constant map, e.g. an all-foreground
    prediction, becomes all zeros), then the 256-threshold loop of ``np.linspace(1, 0, 256)``
    with ``>=`` and the toolbox's ``Fmeasure_calu`` (0 when ``TP = 0``); GT = pixel == 255.
    For a non-constant binary map this equals ``(255 * Dice(bin) + Dice(all ones)) / 256``.
``mIoU_2cls``, ``mDice_2cls`` -- the reproduction study's framework (``semseg/metrics.py``): one
    confusion matrix pooled over all pixels of all images at the model input size (under the
    ``study`` recipe the study's aspect-kept size, label = mask pixel == 255),
    prediction = argmax over 2 classes (for a 1-channel sigmoid model: ``prob > 0.5``), per class
    ``IoU = diag / (rows + cols - diag)`` and ``F1 = 2 diag / (rows + cols)``, classes whose value
    is NaN (absent from GT and prediction) dropped, mean over background and polyp, x100. The
    study rounds to 2 decimals for display; we return the unrounded value.
``S_alpha`` (S-measure, Fan et al. ICCV 2017), ``E_phi_mean``/``E_phi_max`` (E-measure, Fan et
    al. IJCAI 2018), ``Fw_beta`` (weighted F-measure, Margolin et al. CVPR 2014, beta^2 = 1),
    ``MAE`` -- as PySODMetrics computes them on the ``mapminmax``-normalised map with GT = pixel >
    128. ``E_phi`` uses PySODMetrics' 256 thresholds on ``floor(255 p)``; ``E_phi_mean`` /
    ``E_phi_max`` are the mean / max of the per-threshold curve averaged over images.
    ``S_alpha`` and ``Fw_beta`` call PySODMetrics itself (they have no threshold loop); ``E_phi``
    and ``MAE`` are computed here from the same histogram pass as ``mDice`` and agree with
    PySODMetrics to rounding.

All threshold metrics come from one pass per image: each pixel's threshold bin is
``floor(255 p)`` (re-checked exactly against the thresholds where ``255 p`` is within rounding of
an integer) and one ``torch.bincount`` over ``(gt, bin)`` gives the foreground and
background histograms; reverse cumulative sums give TP and predicted-positive counts at all 256
thresholds at once. This runs on CPU or on CUDA tensors as given.

Edge cases (all follow the convention's reference code):
  empty GT: ``mDice``/``mIoU``/``official_*`` = 0 (TP is always 0); ``Dice@0.5``/``IoU@0.5`` = 0;
  ``Fw_beta`` = 0; ``S_alpha`` = 1 - mean(p); ``E_phi`` from PySODMetrics' all-background rule.
  all-foreground GT: the formulas apply as they are; ``S_alpha`` = mean(p).
  constant probability map: ``mDice`` keeps its value (``mapminmax``); ``official_*`` turns it to
  zeros, so only the threshold ``t = 0`` predicts anything (an all-foreground prediction scores
  about 1/256 of its Dice there).
  ``E_phi`` divides by ``N - 1`` like PySODMetrics/MATLAB, so ``E_phi_max`` can exceed 1 by
  ``1/(N-1)`` (e.g. a perfect prediction).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ssformer.errors import DataError

__all__ = [
    "DEFAULT_METRICS",
    "DISPLAY_NAMES",
    "METRIC_CONVENTIONS",
    "NUM_THRESHOLDS",
    "PER_IMAGE_METRICS",
    "POOLED_METRICS",
    "SegmentationEvaluator",
    "absolute_error_sum",
    "binned_histograms",
    "dice_iou_curves",
    "emeasure_curve",
    "evaluate_pairs",
    "normalize_minmax",
    "official_binary_value",
    "resize_probability",
    "saved_map_histograms",
    "threshold_counts",
]

NUM_THRESHOLDS = 256

METRIC_CONVENTIONS: dict[str, str] = {
    "mDice": "PraNet toolbox: per image min-max-normalised prob at GT size, Dice at 256 thresholds "
    "(>= k/255), mean over thresholds then images; GT>128 (SSFormer paper, PraNet, Polyp-PVT)",
    "mIoU": "PraNet toolbox: per image min-max-normalised prob at GT size, IoU at 256 thresholds "
    "(>= k/255), mean over thresholds then images; GT>128 (SSFormer paper, PraNet, Polyp-PVT)",
    "Dice@0.5": "per image Dice of prob>0.5, mean over images; GT>128 (FCBFormer)",
    "IoU@0.5": "per image IoU of prob>0.5, mean over images; GT>128 (FCBFormer)",
    "official_dice": "official SSFormer test.py: prob>0.5, then its 256-threshold Dice loop, mean "
    "over images; GT==255 (~0.996 x Dice@0.5; the official repo's result images)",
    "official_iou": "official SSFormer test.py arithmetic with the loop's IoU output: prob>0.5, "
    "then 256-threshold IoU, mean over images; GT==255",
    "mIoU_2cls": "reproduction study (seed): pooled confusion matrix over all pixels at the model "
    "input size (recipe study: shorter side 352, aspect kept, x32; label == 255), argmax, IoU mean "
    "over background and polyp, x100",
    "mDice_2cls": "reproduction study (seed): pooled confusion matrix over all pixels at the model "
    "input size (recipe study: shorter side 352, aspect kept, x32; label == 255), argmax, F1/Dice "
    "mean over background and polyp, x100",
    "S_alpha": "S-measure (alpha=0.5) as in PySODMetrics on the min-max-normalised map, mean over "
    "images; GT>128 (polyp papers)",
    "E_phi_mean": "E-measure as in PySODMetrics: mean over 256 thresholds of the curve averaged "
    "over images; GT>128 (polyp papers)",
    "E_phi_max": "E-measure as in PySODMetrics: max over 256 thresholds of the curve averaged "
    "over images; GT>128 (polyp papers)",
    "Fw_beta": "weighted F-measure (beta^2=1) as in PySODMetrics on the min-max-normalised map, "
    "mean over images; GT>128 (polyp papers)",
    "MAE": "mean absolute error of the min-max-normalised map as in PySODMetrics, mean over "
    "images; GT>128 (polyp papers)",
}

DISPLAY_NAMES: dict[str, str] = {
    "S_alpha": "Sα",
    "E_phi_mean": "Eφ mean",
    "E_phi_max": "Eφ max",
    "Fw_beta": "Fwβ",
}

POOLED_METRICS: tuple[str, ...] = ("mIoU_2cls", "mDice_2cls")
PER_IMAGE_METRICS: tuple[str, ...] = tuple(k for k in METRIC_CONVENTIONS if k not in POOLED_METRICS)
DEFAULT_METRICS: tuple[str, ...] = tuple(METRIC_CONVENTIONS)

_THRESHOLD_METRICS = frozenset({"mDice", "mIoU", "E_phi_mean", "E_phi_max", "MAE"})
_OFFICIAL_METRICS = frozenset({"official_dice", "official_iou"})
_HALF_METRICS = frozenset({"Dice@0.5", "IoU@0.5"})
_PYSOD_METRICS = frozenset({"S_alpha", "Fw_beta"})

# numpy.spacing(1), the MATLAB `eps` that PySODMetrics uses.
_EPS = float(np.spacing(1))
# Thresholds of `np.linspace(1, 0, 256)` (official test.py; MATLAB's `1:-1/255:0` up to an ulp),
# ascending (t_0 = 0, t_255 = 1); bin k of p = index of the largest threshold t_k <= p.
_THRESHOLDS_ASCENDING = np.ascontiguousarray(np.linspace(1.0, 0.0, NUM_THRESHOLDS)[::-1])
_boundaries_cache: dict[torch.device, torch.Tensor] = {}


def _boundaries(device: torch.device) -> torch.Tensor:
    if device not in _boundaries_cache:
        padded = np.append(_THRESHOLDS_ASCENDING, np.inf)
        _boundaries_cache[device] = torch.from_numpy(padded).to(device)
    return _boundaries_cache[device]


def _as_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    tensor = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    while tensor.ndim > 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 2:
        raise DataError(
            f"{name} must be a 2-D [h, w] map (leading size-1 dims allowed), got shape "
            f"{tuple(tensor.shape)}; pass one image at a time."
        )
    return tensor


def _prepare_prob(prob: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
    """Return (probability map as float, (min, max)); uint8 maps are saved 8-bit PNGs: /255."""
    p = _as_tensor(prob, "prob")
    if p.dtype == torch.uint8:
        p = p.to(torch.float64) / 255.0
    if not torch.is_floating_point(p):
        raise DataError(
            f"prob has dtype {p.dtype}; pass float probabilities in [0, 1] (after sigmoid) or a "
            "uint8 map in 0..255."
        )
    if p.numel() == 0:
        raise DataError("prob is empty (0 pixels); check the image and mask sizes.")
    lo, hi = torch.aminmax(p)
    lo_f, hi_f = float(lo), float(hi)
    if not (math.isfinite(lo_f) and math.isfinite(hi_f)) or lo_f < 0.0 or hi_f > 1.0:
        raise DataError(
            f"prob values span [{lo_f}, {hi_f}]; expected finite probabilities in [0, 1]. Apply "
            "sigmoid to the logits before evaluation."
        )
    return p, (lo_f, hi_f)


def _prepare_gt(
    gt: np.ndarray | torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (GT > 128 mask, GT == 255 mask); a bool mask is used as both."""
    g = _as_tensor(gt, "gt").to(device)
    if g.dtype == torch.bool:
        return g, g
    if torch.is_floating_point(g) or torch.is_complex(g):
        raise DataError(
            f"gt has dtype {g.dtype}; pass a bool mask or the raw uint8 mask pixels (0..255)."
        )
    return g > 128, g == 255


def normalize_minmax(prob: torch.Tensor) -> torch.Tensor:
    """Min-max normalise to [0, 1] in float64 like MATLAB ``mapminmax`` / PySODMetrics.

    A constant map is returned unchanged (as ``mapminmax`` and PySODMetrics do).
    """
    p = prob.to(torch.float64)
    lo, hi = torch.aminmax(p)
    if bool(hi > lo):
        p = (p - lo) / (hi - lo)
    return p


def official_binary_value(n_positive: int, n_pixels: int) -> float:
    """Value of the predicted pixels after the official test.py normalisation of ``prob > 0.5``.

    test.py computes ``(b - b.min()) / (b.max() - b.min() + 1e-8)`` on the float32 binary map b:
    1.0 in float32 when b has both values, and 0.0 (every pixel) when b is constant.
    """
    if 0 < n_positive < n_pixels:
        one, zero = np.float32(1.0), np.float32(0.0)
        return float((one - zero) / (one - zero + np.float32(1e-8)))
    return 0.0


def _minmax_affine(lo: float, hi: float) -> tuple[float, float]:
    """(offset, divisor) of ``mapminmax``: ``(p - lo) / (hi - lo)``, identity when constant."""
    return (lo, hi - lo) if hi > lo else (0.0, 1.0)


def _exact_bins(norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact bins of normalised values (float64): (``floor(255 p)``, largest k with t_k <= p)."""
    floor_bins = torch.floor(norm * 255.0).to(torch.int64).clamp_(0, NUM_THRESHOLDS - 1)
    thresholds = _boundaries(norm.device)  # ascending, with +inf appended
    threshold_bins = (
        floor_bins
        - (norm < thresholds[floor_bins]).to(torch.int64)
        + (norm >= thresholds[floor_bins + 1]).to(torch.int64)
    )
    return floor_bins, threshold_bins.clamp_(0, NUM_THRESHOLDS - 1)


def binned_histograms(
    prob: torch.Tensor, gt: torch.Tensor, value_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """One pass over a probability map: the histograms behind every threshold metric.

    The map is min-max normalised like ``mapminmax`` (:func:`normalize_minmax`).
    Returns ``(em_hist, thr_hist, abs_error_sum)``:
    ``em_hist[g, k]`` counts pixels of GT class g (0 = background, 1 = foreground) with
    ``floor(255 p) = k`` (PySODMetrics' bins, for E-measure); ``thr_hist[g, k]`` counts those
    whose largest ``np.linspace(1, 0, 256)`` threshold ``t <= p`` is ``t_k`` (ascending, so
    ``p >= t_k`` holds exactly for the pixels of bins ``>= k``: Dice/IoU); ``abs_error_sum`` is
    ``sum |p - gt|`` (for MAE).

    Speed: the bins are computed in float32; every pixel whose ``255 p`` lies within 1e-3 of an
    integer (where float32 rounding, or the difference between ``floor`` and the exact
    thresholds, could matter; few pixels for float maps, all of them for maps read from 8-bit
    PNGs) is re-binned from its float64 normalised value, so the histograms are exactly those
    of the float64 computation.

    Args:
        prob: [h, w] probabilities (float; float64 for maps read from uint8).
        gt: [h, w] bool mask on the same device.
        value_range: ``(min, max)`` of ``prob`` if already known.
    """
    if value_range is None:
        lo_t, hi_t = torch.aminmax(prob)
        value_range = (float(lo_t), float(hi_t))
    offset, divisor = _minmax_affine(*value_range)
    p32 = prob if prob.dtype == torch.float32 else prob.to(torch.float32)
    scaled = (p32 - offset).mul_(255.0 / divisor)
    floored = torch.floor(scaled)
    frac = scaled.sub_(floored)
    near = (frac.sub_(0.5).abs_() > 0.5 - 1e-3).nonzero(as_tuple=True)
    nbins = 2 * NUM_THRESHOLDS
    combined = floored.clamp_(0, NUM_THRESHOLDS - 1).add_(gt, alpha=NUM_THRESHOLDS)
    combined_int = combined.to(torch.int32).reshape(-1)
    em_hist = torch.bincount(combined_int, minlength=nbins)
    thr_hist = em_hist
    if near[0].numel():
        old = combined[near].to(torch.int64)
        norm_near = (prob[near].to(torch.float64) - offset) / divisor
        floor_near, thr_near = _exact_bins(norm_near)
        g_near = gt[near].to(torch.int64) * NUM_THRESHOLDS
        removed = torch.bincount(old, minlength=nbins)
        em_hist = em_hist - removed + torch.bincount(floor_near + g_near, minlength=nbins)
        thr_hist = thr_hist - removed + torch.bincount(thr_near + g_near, minlength=nbins)
    thr_np = thr_hist.cpu().numpy().astype(np.int64).reshape(2, NUM_THRESHOLDS)
    em_np = em_hist.cpu().numpy().astype(np.int64).reshape(2, NUM_THRESHOLDS)
    return em_np, thr_np, absolute_error_sum(prob, gt, value_range)


def absolute_error_sum(
    prob: torch.Tensor, gt: torch.Tensor, value_range: tuple[float, float]
) -> float:
    """``sum |norm - gt|`` of the ``mapminmax``-normalised map, in float64 pixel by pixel as
    PySODMetrics' MAE (no sums of ``p`` that cancel: a map in [0.999, 1] or two values one ulp
    apart are exact)."""
    offset, divisor = _minmax_affine(*value_range)
    norm = prob.to(torch.float64)
    if (offset, divisor) != (0.0, 1.0):
        norm = (norm - offset) / divisor
    return float(torch.abs(norm - gt.to(torch.float64)).sum())


_EXACT_THRESHOLDS = np.arange(NUM_THRESHOLDS, dtype=np.float64) / 255.0


def saved_map_histograms(
    saved: torch.Tensor, gt: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`binned_histograms` of an 8-bit map as the PraNet toolbox reads it.

    ``im2double`` (v / 255) then ``mapminmax``; the thresholds are ``k / 255`` exactly, so a
    map that spans 0..255 is binarised at threshold ``k`` as ``v >= k`` (the ties of MATLAB's
    ``1:-1/255:0``, which can differ from ``k / 255`` by an ulp, are not reproduced).
    """
    v = saved.to(torch.int64)
    lo, hi = int(v.min()), int(v.max())
    norm = v.to(torch.float64) / 255.0
    if hi > lo:
        norm = (norm - lo / 255.0) / (hi / 255.0 - lo / 255.0)
    if (lo, hi) == (0, 255):
        thr_bins = v
    else:
        boundaries = torch.from_numpy(_EXACT_THRESHOLDS).to(norm.device)
        thr_bins = torch.searchsorted(boundaries, norm, right=True) - 1
    em_bins = torch.floor(norm * 255.0).to(torch.int64).clamp_(0, NUM_THRESHOLDS - 1)
    offset = gt.reshape(-1).to(torch.int64) * NUM_THRESHOLDS
    nbins = 2 * NUM_THRESHOLDS
    thr = torch.bincount(thr_bins.reshape(-1) + offset, minlength=nbins)
    em = torch.bincount(em_bins.reshape(-1) + offset, minlength=nbins)
    abs_error = float(torch.abs(norm - gt.to(torch.float64)).sum())
    return (
        em.cpu().numpy().reshape(2, NUM_THRESHOLDS),
        thr.cpu().numpy().reshape(2, NUM_THRESHOLDS),
        abs_error,
    )


def threshold_counts(prob: torch.Tensor, gt: torch.Tensor) -> tuple[np.ndarray, np.ndarray, int]:
    """TP and predicted-positive counts of ``norm >= t`` for the 256 thresholds, descending.

    ``norm`` is ``prob`` min-max normalised (``mapminmax``). Index 0 is ``t = 1``, index 255 is
    ``t = 0`` (the order of ``np.linspace(1, 0, 256)``).
    Returns (tp[256] int64, positives[256] int64, number of GT pixels).
    """
    return _counts_from_hist(binned_histograms(prob, gt)[1])


def _counts_from_hist(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    rev = np.cumsum(hist[:, ::-1], axis=1)  # count of pixels with bin >= k, k = 255 .. 0
    tp = rev[1]
    positives = rev[0] + rev[1]
    return tp, positives, int(hist[1].sum())


def dice_iou_curves(
    tp: np.ndarray, positives: np.ndarray, n_gt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU per threshold as the toolbox's ``Fmeasure_calu``: 0 where TP = 0."""
    tp_f = tp.astype(np.float64)
    pos_f = positives.astype(np.float64)
    has_tp = tp > 0
    dice = np.zeros_like(tp_f)
    iou = np.zeros_like(tp_f)
    dice[has_tp] = 2.0 * tp_f[has_tp] / (n_gt + pos_f[has_tp])
    iou[has_tp] = tp_f[has_tp] / (n_gt - tp_f[has_tp] + pos_f[has_tp])
    return dice, iou


def emeasure_curve(
    fg_hist: np.ndarray, bg_hist: np.ndarray, n_gt: int, n_pixels: int
) -> np.ndarray:
    """E-measure (Fan et al., IJCAI 2018) for every threshold of a binned map, as PySODMetrics.

    ``fg_hist``/``bg_hist`` count GT-foreground/background pixels per bin ``floor(255 p)``;
    the curve's index i is the threshold ``p >= (255 - i) / 255``.
    """
    tp = np.cumsum(fg_hist[::-1]).astype(np.float64)  # predicted fg on GT fg
    fp = np.cumsum(bg_hist[::-1]).astype(np.float64)  # predicted fg on GT bg
    pred_fg = tp + fp
    pred_bg = n_pixels - pred_fg
    if n_gt == 0:
        enhanced_sum = pred_bg
    elif n_gt == n_pixels:
        enhanced_sum = pred_fg
    else:
        fn = n_gt - tp
        tn = pred_bg - fn
        mean_pred = pred_fg / n_pixels
        mean_gt = n_gt / n_pixels
        enhanced_sum = np.zeros_like(tp)
        # (region count, demeaned prediction value, demeaned GT value)
        for count, pred_value, gt_value in (
            (tp, 1.0 - mean_pred, 1.0 - mean_gt),
            (fp, 1.0 - mean_pred, 0.0 - mean_gt),
            (fn, 0.0 - mean_pred, 1.0 - mean_gt),
            (tn, 0.0 - mean_pred, 0.0 - mean_gt),
        ):
            align = 2.0 * pred_value * gt_value / (pred_value**2 + gt_value**2 + _EPS)
            enhanced_sum = enhanced_sum + (align + 1.0) ** 2 / 4.0 * count
    return enhanced_sum / (n_pixels - 1 + _EPS)


def resize_probability(prob: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize probabilities [..., h, w] to ``size = (H, W)`` as the official test.py does.

    The official SSFormer test.py resizes the sigmoid *probability* bilinearly with
    ``align_corners=False`` to the original image size (PraNet/Polyp-PVT resize the logits and
    apply sigmoid afterwards; the difference is small but not zero).
    """
    if prob.ndim < 2:
        raise DataError(f"prob must have at least 2 dims [.., h, w], got {tuple(prob.shape)}.")
    lead = prob.shape[:-2]
    x = prob.reshape(-1, 1, *prob.shape[-2:])
    out = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return out.reshape(*lead, *out.shape[-2:])


def _official_values(n_pred: int, tp_ones: int, n_gt: int, n_pixels: int) -> dict[str, float]:
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
    tp, positives, total_gt = _counts_from_hist(hist)
    dice, iou = dice_iou_curves(tp, positives, total_gt)
    return {"official_dice": float(dice.mean()), "official_iou": float(iou.mean())}


class SegmentationEvaluator:
    """Streaming accumulator of the metrics named in :data:`METRIC_CONVENTIONS`.

    ``update(prob, gt)`` per image (prob at the original GT size), ``update_pooled(pred, gt)``
    per image at the evaluation size for the reproduction study's pooled 2-class numbers, then
    ``compute()``. The reproduction study (seed) computes ``mIoU_2cls``/``mDice_2cls`` at the
    evaluation size 352x352; the evaluation loop of this package feeds ``update_pooled`` with
    the 352x352 prediction (``prob > 0.5``) and the 352x352 GT labels. Feeding it original-size
    labels instead gives the same convention at original size.

    Args:
        metrics: keys of :data:`METRIC_CONVENTIONS` to compute. ``None`` computes every
            per-image metric if ``update`` was called and the pooled ones if ``update_pooled``
            was called. Named metrics whose inputs were never fed raise :class:`DataError`.
    """

    def __init__(self, metrics: Sequence[str] | None = None) -> None:
        if metrics is not None:
            unknown = [m for m in metrics if m not in METRIC_CONVENTIONS]
            if unknown:
                raise DataError(
                    f"unknown metric(s) {unknown}; choose from {sorted(METRIC_CONVENTIONS)}."
                )
        self._explicit = metrics is not None
        self.metrics: tuple[str, ...] = tuple(metrics) if metrics is not None else DEFAULT_METRICS
        wanted = set(self.metrics)
        self._need_threshold = bool(wanted & _THRESHOLD_METRICS)
        self._need_official = bool(wanted & _OFFICIAL_METRICS)
        self._need_half = bool(wanted & _HALF_METRICS)
        self._need_pysod = bool(wanted & _PYSOD_METRICS)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self.num_images = 0
        self.num_pooled = 0
        self._sums: dict[str, float] = dict.fromkeys(PER_IMAGE_METRICS, 0.0)
        self._em_curve_sum = np.zeros(NUM_THRESHOLDS, dtype=np.float64)
        self._confusion = np.zeros((2, 2), dtype=np.int64)
        self._smeasure: Any = None
        self._wfmeasure: Any = None
        if self._need_pysod:
            from py_sod_metrics import Smeasure, WeightedFmeasure

            self._smeasure = Smeasure()
            self._wfmeasure = WeightedFmeasure()

    @torch.no_grad()
    def update(
        self,
        prob: np.ndarray | torch.Tensor,
        gt: np.ndarray | torch.Tensor,
        saved_map: np.ndarray | torch.Tensor | None = None,
    ) -> dict[str, float]:
        """Add one image; returns its own values of the averaged per-image metrics computed
        (``mDice``, ``mIoU``, ``MAE``, ``official_*``, ``Dice@0.5``, ``IoU@0.5`` as requested).

        Args:
            prob: [h, w] float probabilities in [0, 1] at the original GT size (numpy or torch,
                CPU or CUDA); a uint8 map is read as a saved 8-bit PNG (value / 255).
            gt: [h, w] mask: bool (used by every convention as it is) or the raw uint8 mask
                pixels, from which each convention takes its own GT (> 128, or == 255 for
                ``official_*``).
            saved_map: the prediction as the PraNet toolbox reads it (uint8 [h, w], see
                :func:`ssformer.data.recipes.toolbox_map`): when given, the toolbox and
                PySODMetrics metrics (``mDice``, ``mIoU``, ``MAE``, ``S_alpha``, ``E_phi_*``,
                ``Fw_beta``) are computed from it, the others from ``prob``.
        """
        p, value_range = _prepare_prob(prob)
        p_map = p if saved_map is None else _as_tensor(saved_map, "saved_map").to(p.device)
        if saved_map is not None and p_map.dtype != torch.uint8:
            raise DataError(f"saved_map has dtype {p_map.dtype}; pass the uint8 map (0..255)")
        gt_pranet, gt_official = _prepare_gt(gt, p.device)
        if gt_pranet.shape != p.shape or p_map.shape != p.shape:
            raise DataError(
                f"prob shape {tuple(p.shape)} != gt shape {tuple(gt_pranet.shape)}; resize the "
                "prediction to the GT size first (see ssformer.metrics.resize_probability)."
            )
        n_pixels = p.numel()
        values: dict[str, float] = {}

        if self._need_threshold:
            if saved_map is None:
                em_hist, thr_hist, abs_error_sum = binned_histograms(p, gt_pranet, value_range)
            else:
                em_hist, thr_hist, abs_error_sum = saved_map_histograms(p_map, gt_pranet)
            tp, positives, n_gt = _counts_from_hist(thr_hist)
            dice, iou = dice_iou_curves(tp, positives, n_gt)
            values["mDice"] = float(dice.mean())
            values["mIoU"] = float(iou.mean())
            self._em_curve_sum += emeasure_curve(em_hist[1], em_hist[0], n_gt, n_pixels)
            values["MAE"] = abs_error_sum / n_pixels

        if self._need_official or self._need_half:
            binary = p > 0.5
            n_pred = int(torch.count_nonzero(binary))
            inter = int(torch.count_nonzero(binary & gt_pranet))
            n_gt_half = int(torch.count_nonzero(gt_pranet))
        if self._need_official:
            if gt_official is not gt_pranet:
                n_gt_off = int(torch.count_nonzero(gt_official))
                tp_ones = int(torch.count_nonzero(binary & gt_official))
            else:
                n_gt_off, tp_ones = n_gt_half, inter
            values.update(_official_values(n_pred, tp_ones, n_gt_off, n_pixels))
        if self._need_half:  # 0 when prediction and GT do not overlap (both empty included)
            values["Dice@0.5"] = 2.0 * inter / (n_pred + n_gt_half) if inter > 0 else 0.0
            values["IoU@0.5"] = inter / (n_pred + n_gt_half - inter) if inter > 0 else 0.0

        if self._need_pysod:
            as_read = p_map if saved_map is None else p_map.to(torch.float64) / 255.0
            norm_np = normalize_minmax(as_read).cpu().numpy()
            gt_np = gt_pranet.cpu().numpy()
            if "S_alpha" in self.metrics:
                self._smeasure.step(norm_np, gt_np, normalize=False)
            if "Fw_beta" in self.metrics:
                self._wfmeasure.step(norm_np, gt_np, normalize=False)
        for key, value in values.items():
            self._sums[key] += value
        self.num_images += 1
        return values

    @torch.no_grad()
    def update_pooled(
        self,
        pred_labels: np.ndarray | torch.Tensor,
        gt_labels: np.ndarray | torch.Tensor,
        ignore_index: int | None = None,
    ) -> None:
        """Add one image (or a batch) to the pooled 2-class confusion matrix.

        Args:
            pred_labels: predicted class per pixel, 0 = background, 1 = polyp (bool or int),
                any shape; for a 1-channel sigmoid model use ``prob > 0.5`` (= argmax over
                [1 - p, p] with ties to background, like ``torch.argmax``).
            gt_labels: GT class per pixel, same shape, 0/1 (or ``ignore_index``).
            ignore_index: GT label to leave out, as the study's ``ignore_label``.
        """
        pred = (
            pred_labels
            if isinstance(pred_labels, torch.Tensor)
            else torch.from_numpy(np.asarray(pred_labels))
        )
        target = (
            gt_labels
            if isinstance(gt_labels, torch.Tensor)
            else torch.from_numpy(np.asarray(gt_labels))
        )
        target = target.to(pred.device)
        if pred.shape != target.shape:
            raise DataError(
                f"pred_labels shape {tuple(pred.shape)} != gt_labels shape "
                f"{tuple(target.shape)}; both must be at the same (evaluation) size."
            )
        if torch.is_floating_point(pred) or torch.is_floating_point(target):
            raise DataError(
                "update_pooled takes class labels (bool or integer), not probabilities; pass "
                "prob > 0.5 and the 0/1 GT labels."
            )
        pred = pred.reshape(-1).to(torch.int64)
        target = target.reshape(-1).to(torch.int64)
        if ignore_index is not None:
            keep = target != ignore_index
            pred, target = pred[keep], target[keep]
        if pred.numel() and (
            int(pred.min()) < 0
            or int(pred.max()) > 1
            or int(target.min()) < 0
            or int(target.max()) > 1
        ):
            raise DataError(
                "update_pooled expects labels 0 (background) and 1 (polyp); got values outside "
                "{0, 1}. Binarise the GT (e.g. mask > 128) or pass ignore_index."
            )
        counts = torch.bincount(target * 2 + pred, minlength=4).reshape(2, 2)
        self._confusion += counts.cpu().numpy().astype(np.int64)
        self.num_pooled += 1

    @property
    def confusion_matrix(self) -> np.ndarray:
        """The pooled 2x2 confusion matrix, rows = GT class, columns = predicted class."""
        return self._confusion.copy()

    def compute(self) -> dict[str, float]:
        """Return {metric key: value} for the requested metrics (pooled ones x100)."""
        results: dict[str, float] = {}
        for key in self.metrics:
            if key in POOLED_METRICS:
                if self.num_pooled == 0:
                    if self._explicit:
                        raise DataError(
                            f"{key} needs update_pooled(pred_labels, gt_labels); it was never "
                            "called."
                        )
                    continue
                results[key] = self._pooled_value(key)
                continue
            if self.num_images == 0:
                if self._explicit:
                    raise DataError(f"{key} needs update(prob, gt); no image was evaluated.")
                continue
            results[key] = self._per_image_value(key)
        return results

    def _per_image_value(self, key: str) -> float:
        n = self.num_images
        if key == "E_phi_mean":
            return float((self._em_curve_sum / n).mean())
        if key == "E_phi_max":
            return float((self._em_curve_sum / n).max())
        if key == "S_alpha":
            return float(self._smeasure.get_results()["sm"])
        if key == "Fw_beta":
            return float(self._wfmeasure.get_results()["wfm"])
        return self._sums[key] / n

    def _pooled_value(self, key: str) -> float:
        hist = self._confusion.astype(np.float64)
        diag = np.diag(hist)
        with np.errstate(divide="ignore", invalid="ignore"):
            if key == "mIoU_2cls":
                per_class = diag / (hist.sum(0) + hist.sum(1) - diag)
            else:
                per_class = 2.0 * diag / (hist.sum(0) + hist.sum(1))
        valid = per_class[~np.isnan(per_class)]
        return float(valid.mean() * 100.0) if valid.size else float("nan")


def evaluate_pairs(
    pairs: Iterable[tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]],
    metrics: Sequence[str] | None = None,
) -> dict[str, float]:
    """Convenience: run :class:`SegmentationEvaluator` over (prob, gt) pairs."""
    evaluator = SegmentationEvaluator(metrics)
    for prob, gt in pairs:
        evaluator.update(prob, gt)
    return evaluator.compute()
