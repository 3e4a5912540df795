"""The streaming evaluator: per-image (or per-batch) updates, dataset means, pooled 2-class."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from ssformer.errors import DataError
from ssformer.metrics.conventions import (
    DEFAULT_METRICS,
    METRIC_CONVENTIONS,
    PER_IMAGE_METRICS,
    POOLED_METRICS,
)
from ssformer.metrics.inputs import (
    ArrayLike,
    Workspace,
    as_batch,
    as_map,
    intra_op_threads,
    minmax_affine,
    normalize_batch,
    prepare_gt,
    prepare_prob,
)
from ssformer.metrics.structure import s_measure
from ssformer.metrics.thresholds import (
    counts_from_hist,
    dice_iou_curves,
    em_histograms,
    emeasure_at,
    emeasure_curves,
    fmeasure_at,
    fmeasure_curves,
    histograms,
    official_values,
    saved_histograms,
)
from ssformer.metrics.weighted_f import gt_geometry_async, weighted_fmeasure_async

__all__ = ["CURVE_NAMES", "SegmentationEvaluator", "evaluate_pairs"]

# Dataset-mean curves over the 256 thresholds (index i: threshold (255 - i) / 255, descending).
CURVE_NAMES: tuple[str, ...] = ("dice", "iou", "E_phi", "Fm", "precision", "recall")

_DICE_METRICS = frozenset({"mDice", "mIoU"})
_EM_CURVE_METRICS = frozenset({"E_phi_mean", "E_phi_max"})
_FM_CURVE_METRICS = frozenset({"Fm_mean", "Fm_max"})
_ADAPTIVE_METRICS = frozenset({"E_phi_adp", "Fm_adp"})
_OFFICIAL_METRICS = frozenset({"official_dice", "official_iou"})
_HALF_METRICS = frozenset({"Dice@0.5", "IoU@0.5"})
# Metrics read from the map as the toolbox / PySODMetrics see it (the saved 8-bit map if given).
_MAP_METRICS = (
    _DICE_METRICS
    | _EM_CURVE_METRICS
    | _FM_CURVE_METRICS
    | _ADAPTIVE_METRICS
    | {"S_alpha", "Fw_beta", "MAE"}
)
# Per-image values that are means over images (returned by update; max-of-curve ones are not).
_IMAGE_MEANS = tuple(k for k in PER_IMAGE_METRICS if k not in ("E_phi_max", "Fm_max"))


class _SharedMaps(NamedTuple):
    """What several map metrics read: ``p * G``, the row sums of p and of ``p * G``, |G|."""

    pg: torch.Tensor
    p_rows: torch.Tensor
    pg_rows: torch.Tensor
    n_gt: torch.Tensor


def _count(mask: torch.Tensor) -> torch.Tensor:
    """True pixels per image of a bool [B, h, w] (summed as uint8 into int64: no int64 copy of
    the mask, as ``sum`` and ``count_nonzero`` of a bool tensor make)."""
    return mask.view(torch.uint8).sum((1, 2), dtype=torch.int64)


def _curve_values(
    em_hist: torch.Tensor, thr_hist: torch.Tensor, n_pixels: int, wanted: set[str]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(per-image values [B], per-image curves [B, 256]) of the threshold metrics."""
    values: dict[str, np.ndarray] = {}
    curves: dict[str, np.ndarray] = {}
    if wanted & _DICE_METRICS:
        tp, positives, n_gt = counts_from_hist(thr_hist.cpu().numpy())
        curves["dice"], curves["iou"] = dice_iou_curves(tp, positives, n_gt[:, None])
        values["mDice"], values["mIoU"] = curves["dice"].mean(1), curves["iou"].mean(1)
    em = em_hist.cpu().numpy() if wanted & (_EM_CURVE_METRICS | _FM_CURVE_METRICS) else None
    if em is not None and wanted & _EM_CURVE_METRICS:
        curves["E_phi"] = emeasure_curves(em, n_pixels)
        values["E_phi_mean"] = curves["E_phi"].mean(1)
    if em is not None and wanted & _FM_CURVE_METRICS:
        curves["precision"], curves["recall"], curves["Fm"] = fmeasure_curves(em)
        values["Fm_mean"] = curves["Fm"].mean(1)
    return values, curves


def _shared_maps(norm: torch.Tensor, gt: torch.Tensor, ws: Workspace) -> _SharedMaps:
    pg = torch.mul(norm, gt, out=ws.get("pg", norm.shape, norm.dtype, norm.device))
    n_gt = _count(gt).to(norm.dtype)
    return _SharedMaps(pg, norm.sum(2), pg.sum(2), n_gt)


def _map_values(
    norm: torch.Tensor,
    gt: torch.Tensor,
    shared: _SharedMaps,
    wanted: set[str],
    ws: Workspace,
) -> dict[str, np.ndarray]:
    """S-measure, MAE and the adaptive E/F values [B] of normalised maps."""
    batch, h, w = norm.shape
    n_pixels = h * w
    pg, p_rows, pg_rows, n_gt = shared
    values: dict[str, torch.Tensor | np.ndarray] = {}
    if "S_alpha" in wanted:
        values["S_alpha"] = s_measure(norm, gt, pg=pg, workspace=ws, row_sums=(p_rows, pg_rows))
    sum_p, sum_pg = p_rows.sum(1), pg_rows.sum(1)
    if "MAE" in wanted:  # sum |p - G| = sum of p off G + sum of (1 - p) on G
        values["MAE"] = ((sum_p - sum_pg) + (n_gt - sum_pg)) / n_pixels
    if wanted & _ADAPTIVE_METRICS:
        # PySODMetrics' adaptive threshold: min(2 mean(p), 1), binarised with >=
        threshold = (2.0 * (sum_p / n_pixels)).clamp(max=1.0)
        binary = torch.ge(
            norm,
            threshold.view(batch, 1, 1),
            out=ws.get("binary", norm.shape, torch.bool, norm.device),
        )
        pred_fg = _count(binary).cpu().numpy()
        tp = _count(binary.logical_and_(gt)).cpu().numpy()
        n_gt_np = n_gt.cpu().numpy().astype(np.int64)
        values["E_phi_adp"] = emeasure_at(tp, pred_fg, n_gt_np, n_pixels)
        values["Fm_adp"] = fmeasure_at(tp, pred_fg, n_gt_np)
    return {
        k: v.cpu().numpy() if isinstance(v, torch.Tensor) else v
        for k, v in values.items()
        if k in wanted
    }


def _binary_values(
    p: torch.Tensor, gt_pranet: torch.Tensor, gt_official: torch.Tensor, wanted: set[str]
) -> dict[str, np.ndarray]:
    """``official_*`` and ``Dice@0.5``/``IoU@0.5`` [B] from ``prob > 0.5``."""
    values: dict[str, np.ndarray] = {}
    binary = p > 0.5
    n_pred = _count(binary).cpu().numpy()
    inter = _count(binary & gt_pranet).cpu().numpy().astype(np.float64)
    n_gt = _count(gt_pranet).cpu().numpy()
    if wanted & _OFFICIAL_METRICS:
        if gt_official is not gt_pranet:
            n_gt_off = _count(gt_official).cpu().numpy()
            tp_ones = _count(binary & gt_official).cpu().numpy()
        else:
            n_gt_off, tp_ones = n_gt, inter.astype(np.int64)
        n_pixels = p.shape[1] * p.shape[2]
        rows = [
            official_values(int(a), int(b), int(c), n_pixels)
            for a, b, c in zip(n_pred, tp_ones, n_gt_off, strict=True)
        ]
        values["official_dice"] = np.array([r["official_dice"] for r in rows])
        values["official_iou"] = np.array([r["official_iou"] for r in rows])
    if wanted & _HALF_METRICS:  # 0 when prediction and GT do not overlap (both empty included)
        with np.errstate(divide="ignore", invalid="ignore"):
            values["Dice@0.5"] = np.where(inter > 0, 2.0 * inter / (n_pred + n_gt), 0.0)
            values["IoU@0.5"] = np.where(inter > 0, inter / (n_pred + n_gt - inter), 0.0)
    return values


def _check_inputs(
    prob: torch.Tensor, gt: torch.Tensor, saved: torch.Tensor | None, official: bool
) -> tuple[torch.Tensor, ...]:
    """(prob, min, max, GT > 128, GT == 255 if ``official``, saved map) after the checks."""
    p, lo, hi = prepare_prob(prob)
    gt_pranet, gt_official = prepare_gt(gt, p.device, official)
    if saved is not None:
        saved = saved.to(p.device)
        if saved.dtype != torch.uint8:
            raise DataError(f"saved_map has dtype {saved.dtype}; pass the uint8 map (0..255)")
    if gt_pranet.shape != p.shape or (saved is not None and saved.shape != p.shape):
        raise DataError(
            f"prob shape {tuple(p.shape[1:])} != gt shape {tuple(gt_pranet.shape[1:])}; resize "
            "the prediction to the GT size first (see ssformer.metrics.resize_probability)."
        )
    return p, lo, hi, gt_pranet, gt_official, saved


class SegmentationEvaluator:
    """Streaming accumulator of the metrics named in :data:`METRIC_CONVENTIONS`.

    ``update(prob, gt)`` per image (prob at the original GT size) or ``update_batch(probs, gts)``
    for a stack of images of one size (the same numbers, fewer passes), ``update_pooled(pred,
    gt)`` per image at the evaluation size for the reproduction study's pooled 2-class numbers,
    then ``compute()`` (and ``curves()`` for the dataset-mean threshold curves). The
    reproduction study (seed) computes ``mIoU_2cls``/``mDice_2cls`` at the evaluation size
    352x352; the evaluation loop of this package feeds ``update_pooled`` with the 352x352
    prediction (``prob > 0.5``) and the 352x352 GT labels. Feeding it original-size labels
    instead gives the same convention at original size.

    Args:
        metrics: keys of :data:`METRIC_CONVENTIONS` to compute. ``None`` computes every
            per-image metric if ``update`` was called and the pooled ones if ``update_pooled``
            was called. Named metrics whose inputs were never fed raise :class:`DataError`.
        threads: torch intra-op threads for the updates' CPU work, set around each update and
            restored after (``None``: torch's setting as it is). The default 1 leaves the other
            core(s) to the worker thread that computes ``Fw_beta`` (the GT's distance
            transform, the blur) meanwhile; the maps are streamed once per pass, so more threads gain
            little, and on a busy machine OpenMP threads that lose their core stall every
            operation (measured: several times slower). CUDA tensors are unaffected.
    """

    def __init__(self, metrics: Sequence[str] | None = None, threads: int | None = 1) -> None:
        if metrics is not None:
            unknown = [m for m in metrics if m not in METRIC_CONVENTIONS]
            if unknown:
                raise DataError(
                    f"unknown metric(s) {unknown}; choose from {sorted(METRIC_CONVENTIONS)}."
                )
        self._explicit = metrics is not None
        self.metrics: tuple[str, ...] = tuple(metrics) if metrics is not None else DEFAULT_METRICS
        self._wanted = set(self.metrics)
        self._threads = threads
        self._workspace = Workspace()
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self.num_images = 0
        self.num_pooled = 0
        self._sums: dict[str, float] = dict.fromkeys(PER_IMAGE_METRICS, 0.0)
        self._curve_sums: dict[str, np.ndarray] = {}
        self._confusion = np.zeros((2, 2), dtype=np.int64)

    @torch.no_grad()
    def update(
        self,
        prob: ArrayLike,
        gt: ArrayLike,
        saved_map: ArrayLike | None = None,
    ) -> dict[str, float]:
        """Add one image; returns its own values of the metrics that are means over images
        (all requested per-image metrics except ``E_phi_max`` and ``Fm_max``).

        Args:
            prob: [h, w] float probabilities in [0, 1] at the original GT size (numpy or torch,
                CPU or CUDA); a uint8 map is read as a saved 8-bit PNG (value / 255).
            gt: [h, w] mask: bool (used by every convention as it is) or the raw uint8 mask
                pixels, from which each convention takes its own GT (> 128, or == 255 for
                ``official_*``).
            saved_map: the prediction as the PraNet toolbox reads it (uint8 [h, w], see
                :func:`ssformer.data.recipes.toolbox_map`): when given, the toolbox and
                PySODMetrics metrics (``mDice``, ``mIoU``, ``MAE``, ``S_alpha``, ``E_phi_*``,
                ``Fw_beta``, ``Fm_*``) are computed from it, the others from ``prob``.
        """
        p = as_map(prob, "prob")[None]
        g = as_map(gt, "gt")[None]
        saved = None if saved_map is None else as_map(saved_map, "saved_map")[None]
        return self._update(p, g, saved)[0]

    @torch.no_grad()
    def update_batch(
        self,
        probs: ArrayLike | Sequence[ArrayLike],
        gts: ArrayLike | Sequence[ArrayLike],
        saved_maps: ArrayLike | Sequence[ArrayLike] | None = None,
    ) -> list[dict[str, float]]:
        """Add a batch of images of one size: ``probs`` [B, h, w] (or [B, 1, h, w], or a list of
        [h, w] maps), ``gts`` and ``saved_maps`` likewise; the same numbers as :meth:`update`
        image by image. Returns each image's values.

        Fewer operations per image, which pays for small maps and on CUDA; on the CPU with
        Kvasir-sized maps (0.3-2 Mpixel) per-image :meth:`update` is faster (measured about 2x:
        a batch's float64 scratch maps no longer fit in the cache)."""
        p = as_batch(probs, "probs")
        g = as_batch(gts, "gts")
        saved = None if saved_maps is None else as_batch(saved_maps, "saved_maps")
        return self._update(p, g, saved)

    def _update(
        self, prob: torch.Tensor, gt: torch.Tensor, saved: torch.Tensor | None
    ) -> list[dict[str, float]]:
        with intra_op_threads(self._threads, prob.device):
            return self._update_values(prob, gt, saved)

    def _update_values(
        self, prob: torch.Tensor, gt: torch.Tensor, saved: torch.Tensor | None
    ) -> list[dict[str, float]]:
        wanted = self._wanted
        official = bool(wanted & _OFFICIAL_METRICS)
        p, lo, hi, gt_pranet, gt_official, saved = _check_inputs(prob, gt, saved, official)
        values: dict[str, np.ndarray] = {}
        if wanted & _MAP_METRICS:
            values.update(self._map_metrics(p, lo, hi, gt_pranet, saved))
        if wanted & (_OFFICIAL_METRICS | _HALF_METRICS):
            values.update(_binary_values(p, gt_pranet, gt_official, wanted))
        for key, array in values.items():
            self._sums[key] += float(array.sum())
        self.num_images += p.shape[0]
        keys = [k for k in _IMAGE_MEANS if k in values]
        return [{k: float(values[k][i]) for k in keys} for i in range(p.shape[0])]

    def _map_metrics(
        self,
        p: torch.Tensor,
        lo: torch.Tensor,
        hi: torch.Tensor,
        gt: torch.Tensor,
        saved: torch.Tensor | None,
    ) -> dict[str, np.ndarray]:
        wanted = self._wanted
        if saved is not None:  # im2double, then mapminmax, as the toolbox and PySODMetrics
            p, lo, hi = prepare_prob(saved)
        # the GT-only part of Fw_beta (distance transform, ...) starts in a worker thread
        geometry = gt_geometry_async(gt) if "Fw_beta" in wanted else None
        offset, divisor = minmax_affine(lo, hi)
        norm = None
        ws = self._workspace
        if saved is not None or wanted & (_ADAPTIVE_METRICS | {"S_alpha", "Fw_beta", "MAE"}):
            norm = normalize_batch(
                p, offset, divisor, ws.get("norm", p.shape, torch.float64, p.device)
            )
        weighted_f: Callable[[], torch.Tensor] | None = None
        try:
            values: dict[str, np.ndarray] = {}
            if norm is not None:
                shared = _shared_maps(norm, gt, ws)
                if geometry is not None:  # the rest of Fw_beta follows it there (on the CPU)
                    sums = (shared.pg_rows.sum(1), shared.n_gt)
                    weighted_f = weighted_fmeasure_async(norm, gt, shared.pg, sums, geometry, ws)
                values.update(_map_values(norm, gt, shared, wanted, ws))
            values.update(self._curve_metrics(p, offset, divisor, gt, saved, norm))
            if weighted_f is not None:
                values["Fw_beta"] = weighted_f().cpu().numpy()
        except BaseException:
            for pending in (geometry, weighted_f):  # the worker's buffers must be free again
                if pending is not None:
                    with contextlib.suppress(Exception):
                        pending()
            raise
        return values

    def _curve_metrics(
        self,
        p: torch.Tensor,
        offset: torch.Tensor,
        divisor: torch.Tensor,
        gt: torch.Tensor,
        saved: torch.Tensor | None,
        norm: torch.Tensor | None,
    ) -> dict[str, np.ndarray]:
        """The threshold metrics' values [B]; their curves are added to the dataset sums."""
        wanted, ws = self._wanted, self._workspace
        values: dict[str, np.ndarray] = {}
        if not wanted & (_DICE_METRICS | _EM_CURVE_METRICS | _FM_CURVE_METRICS):
            return values
        if saved is not None:
            em_hist, thr_hist = saved_histograms(saved, norm, gt)
        elif norm is not None and not wanted & _DICE_METRICS:  # no PraNet thresholds
            em_hist = thr_hist = em_histograms(norm, gt, ws)
        else:
            em_hist, thr_hist = histograms(p, gt, offset, divisor)
        n_pixels = p.shape[1] * p.shape[2]
        curve_values, curves = _curve_values(em_hist, thr_hist, n_pixels, wanted)
        values.update(curve_values)
        for name, curve in curves.items():
            total = self._curve_sums.get(name, 0.0)
            self._curve_sums[name] = total + curve.sum(0)
        return values

    @torch.no_grad()
    def update_pooled(
        self,
        pred_labels: ArrayLike,
        gt_labels: ArrayLike,
        ignore_index: int | None = None,
    ) -> np.ndarray:
        """Add one image (or a batch) to the pooled 2-class confusion matrix; returns the
        2x2 counts it added (rows GT, columns prediction: one image's share of the pool).

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
        added = counts.cpu().numpy().astype(np.int64)
        self._confusion += added
        self.num_pooled += 1
        return added

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

    def curves(self) -> dict[str, np.ndarray]:
        """Dataset-mean curves [256] of the threshold metrics computed so far, thresholds
        descending (index i is ``(255 - i) / 255``): ``dice``/``iou`` (PraNet toolbox, with
        ``mDice``/``mIoU``), ``E_phi`` (with ``E_phi_*``), ``Fm``, ``precision``, ``recall``
        (PySODMetrics ``Fmeasure``, with ``Fm_*``)."""
        n = max(self.num_images, 1)
        return {
            name: self._curve_sums[name] / n for name in CURVE_NAMES if name in self._curve_sums
        }

    def _per_image_value(self, key: str) -> float:
        n = self.num_images
        if key == "E_phi_max":
            return float((self._curve_sums["E_phi"] / n).max())
        if key == "Fm_max":
            return float((self._curve_sums["Fm"] / n).max())
        return self._sums[key] / n

    def _pooled_value(self, key: str) -> float:
        """The class mean x100; NaN (undefined, not perfect) when the ground truth holds no
        polyp pixel: the background alone would score 100 next to a Dice of 0."""
        hist = self._confusion.astype(np.float64)
        if hist[1].sum() == 0:
            warnings.warn(
                f"{key} is undefined (NaN): the ground truth of the {self.num_pooled} pooled "
                "images holds no polyp pixel, so only the background class could be scored",
                stacklevel=3,
            )
            return float("nan")
        diag = np.diag(hist)
        with np.errstate(divide="ignore", invalid="ignore"):
            if key == "mIoU_2cls":
                per_class = diag / (hist.sum(0) + hist.sum(1) - diag)
            else:
                per_class = 2.0 * diag / (hist.sum(0) + hist.sum(1))
        valid = per_class[~np.isnan(per_class)]
        return float(valid.mean() * 100.0) if valid.size else float("nan")


def evaluate_pairs(
    pairs: Iterable[tuple[ArrayLike, ArrayLike]],
    metrics: Sequence[str] | None = None,
) -> dict[str, float]:
    """Convenience: run :class:`SegmentationEvaluator` over (prob, gt) pairs."""
    evaluator = SegmentationEvaluator(metrics)
    for prob, gt in pairs:
        evaluator.update(prob, gt)
    return evaluator.compute()
