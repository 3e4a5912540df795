"""S-measure (structure measure; Fan, Cheng, Liu, Li & Borji, "Structure-measure: A New Way to
Evaluate Foreground Maps", ICCV 2017), vectorised over a batch of maps of one size.

Follows PySODMetrics' ``Smeasure`` (alpha = 0.5) operation by operation, on the min-max
normalised map p (float64) and the boolean GT G of ``N = h * w`` pixels:

- ``mean(G) = 0``: ``S = 1 - mean(p)``; ``mean(G) = 1``: ``S = mean(p)``;
- otherwise ``S = max(0, alpha * S_object + (1 - alpha) * S_region)``.
- ``S_object = mean(G) * O(p on G) + (1 - mean(G)) * O(1 - p off G)`` with
  ``O(x) = 2 mean(x) / (mean(x)^2 + 1 + std(x) + eps)``, ``std`` with ``ddof = 1`` (0 for one
  pixel).
- ``S_region``: the GT centroid ``(round(mean row), round(mean column))`` (numpy's round, half to
  even) plus one (the MATLAB 1-based convention) splits the image into four quadrants
  ``[0:cy, 0:cx]``, ``[0:cy, cx:w]``, ``[cy:h, 0:cx]``, ``[cy:h, cx:w]`` weighted by their area
  fractions (the last weight is ``1 - w1 - w2 - w3``); each scores the SSIM
  ``alpha' / (beta' + eps)`` with ``alpha' = 4 x y s_xy``, ``beta' = (x^2 + y^2)(s_x + s_y)``,
  the (co)variances divided by ``n - 1 + eps``; 1 when ``alpha' = beta' = 0``, 0 when only
  ``alpha' = 0``.

Edge cases kept from PySODMetrics: when the centroid falls in the last row or column
(``cy = h`` or ``cx = w``, e.g. a single foreground pixel in the bottom row) a quadrant is empty
and PySODMetrics' mean of an empty array makes S NaN; S is NaN here too. In a quadrant whose GT
is constant, ``alpha' = 0`` exactly, and the score is 1 when the prediction there is constant
(``s_x = 0``) and 0 otherwise. PySODMetrics decides ``s_x = 0`` by comparing each value with its
float mean, which for a constant non-dyadic value (0.7, say) may be off by an ulp; that
comparison is reproduced exactly by computing the same numpy mean for such a quadrant.

The sums come from one pass over p, p^2 and p * G per quadrant, so the (co)variances use the one-pass
formula: in float64 that agrees with PySODMetrics' two-pass values to about 1e-12 of S or better;
a foreground or background variance below 1e-8 (a near-constant prediction there, where the
square root in ``std`` would magnify the rounding residue) is recomputed two-pass.
"""

from __future__ import annotations

import numpy as np
import torch

from ssformer.metrics.conventions import EPS
from ssformer.metrics.inputs import Workspace

__all__ = ["s_measure"]

_SMALL_VARIANCE = 1e-8


def _centroid(gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cy, cx, n_fg [B] int64, row sums [B, h] float64) of boolean GTs: PySODMetrics' rounded
    centroid plus one, the GT size and the foreground pixels per row."""
    _, h, w = gt.shape
    counts = gt.view(torch.uint8)
    rows = counts.sum(2, dtype=torch.float64)  # [B, h] integers, exact in float64
    cols = counts.sum(1, dtype=torch.float64)  # [B, w]
    n_fg = rows.sum(1)
    row_index = torch.arange(h, device=gt.device, dtype=torch.float64)
    col_index = torch.arange(w, device=gt.device, dtype=torch.float64)
    # Integer sums are exact; their float64 quotient is numpy's mean of argwhere (exact sums).
    count = n_fg.clamp(min=1.0)
    cy = torch.round((rows * row_index).sum(1) / count).to(torch.int64) + 1
    cx = torch.round((cols * col_index).sum(1) / count).to(torch.int64) + 1
    return cy, cx, n_fg.to(torch.int64), rows


def _left_rows(
    q: torch.Tensor, totals: torch.Tensor, x0: int, square: bool, workspace: Workspace
) -> torch.Tensor:
    """Row sums [h] (float64) of ``q[:, :x0]`` (of its squares if ``square``) of one image
    [h, w] whose row totals are ``totals``: from the narrower side of ``x0``."""
    left = x0 <= q.shape[1] // 2
    side = q[:, :x0] if left else q[:, x0:]
    if square:
        side = torch.mul(side, side, out=workspace.get("side", side.shape, q.dtype, q.device))
    sums = side.sum(1, dtype=torch.float64)
    return sums if left else totals - sums


def _quadrant_sums(
    quantities: list[tuple[torch.Tensor, torch.Tensor | None, bool]],
    cy: torch.Tensor,
    cx: list[int],
    workspace: Workspace,
) -> list[torch.Tensor]:
    """Sums (float64) over the four quadrants of each image, [B, 2, 2] (top/bottom x
    left/right), of each [B, h, w] quantity ``(q, its float64 row sums [B, h] or None,
    square)``, where ``square`` means the quantity is ``q * q`` (never stored whole). Per
    quantity and image: the rows' totals and the rows' sums on the narrower side of ``cx``."""
    h = quantities[0][0].shape[1]
    top = (torch.arange(h, device=cy.device)[None, :] < cy[:, None]).to(torch.float64)
    sums = []
    for q, totals, square in quantities:
        if totals is None:
            totals = torch.einsum("bhw,bhw->bh", q, q) if square else q.sum(2, dtype=torch.float64)
        left = torch.stack(
            [_left_rows(q[b], totals[b], x0, square, workspace) for b, x0 in enumerate(cx)]
        )
        right = totals - left
        parts = [(left * top).sum(1), (right * top).sum(1)]
        parts += [left.sum(1) - parts[0], right.sum(1) - parts[1]]
        sums.append(torch.stack(parts, dim=1).view(-1, 2, 2))
    return sums


def _numpy_mean_is_exact(value: float, shape: tuple[int, int], box: tuple[slice, slice]) -> bool:
    """Whether numpy's mean of a [h, w] map holding ``value`` everywhere, over ``box``, is exactly
    ``value`` (PySODMetrics' SSIM variance of a constant quadrant is 0 only then)."""
    mean = np.full(shape, value, dtype=np.float64)[box].mean()
    return bool((value - mean) ** 2 == 0.0)


def _constant_gt_scores(
    norm: torch.Tensor, cy: list[int], cx: list[int], flagged: torch.Tensor
) -> dict[tuple[int, int, int], float]:
    """SSIM of the quadrants whose GT is constant (``flagged`` [B, 2, 2]): 1 where the prediction
    is constant there as PySODMetrics sees it, else 0."""
    _, h, w = norm.shape
    scores: dict[tuple[int, int, int], float] = {}
    for b, i, j in flagged.nonzero().tolist():
        y0, x0 = cy[b], cx[b]
        box = (slice(0, y0) if i == 0 else slice(y0, h), slice(0, x0) if j == 0 else slice(x0, w))
        lo, hi = torch.aminmax(norm[b][box])
        value = float(lo)
        constant = value == float(hi) and (value == 0.0 or _numpy_mean_is_exact(value, (h, w), box))
        scores[(b, i, j)] = 1.0 if constant else 0.0
    return scores


def _region(
    norm: torch.Tensor,
    gt: torch.Tensor,
    pg: torch.Tensor,
    cy: torch.Tensor,
    cx: torch.Tensor,
    mixed: torch.Tensor,
    workspace: Workspace,
    g_rows: torch.Tensor,
    row_sums: tuple[torch.Tensor | None, torch.Tensor | None],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(S_region [B], sums of p, p^2 and p * G [B]) of a batch."""
    _, h, w = norm.shape
    cy_list, cx_list = cy.tolist(), cx.tolist()
    s_p, s_p2, s_pg, s_g = _quadrant_sums(
        [
            (norm, row_sums[0], False),
            (norm, None, True),
            (pg, row_sums[1], False),
            (gt.view(torch.uint8), g_rows, False),
        ],
        cy,
        cx_list,
        workspace,
    )
    heights = torch.stack([cy, h - cy], dim=1).to(torch.float64)
    widths = torch.stack([cx, w - cx], dim=1).to(torch.float64)
    n = heights[:, :, None] * widths[:, None, :]  # [B, 2, 2] pixels per quadrant
    denom = n - 1.0 + EPS
    x, y = s_p / n, s_g / n
    sigma_x = (s_p2 - s_p * s_p / n) / denom
    gt_constant = (s_g == 0) | (s_g == n)
    sigma_y = torch.where(gt_constant, 0.0, (s_g - s_g * s_g / n) / denom)
    sigma_xy = torch.where(gt_constant, 0.0, (s_pg - s_p * s_g / n) / denom)
    alpha = 4.0 * x * y * sigma_xy
    beta = (x * x + y * y) * (sigma_x + sigma_y)
    score = torch.where(alpha != 0, alpha / (beta + EPS), (beta == 0).to(torch.float64))
    flagged = gt_constant & (n > 0) & mixed.view(-1, 1, 1)
    if bool(flagged.any()):
        for (b, i, j), value in _constant_gt_scores(norm, cy_list, cx_list, flagged).items():
            score[b, i, j] = value
    area = float(h * w)  # int64 counts, exact in float64 (torch's int / float gives float32)
    cy_f, cx_f = cy.to(torch.float64), cx.to(torch.float64)
    w_lt = cx_f * cy_f / area
    w_rt = cy_f * (w - cx_f) / area
    w_lb = (h - cy_f) * cx_f / area
    w_rb = 1 - w_lt - w_rt - w_lb
    region = (
        score[:, 0, 0] * w_lt
        + score[:, 0, 1] * w_rt
        + score[:, 1, 0] * w_lb
        + score[:, 1, 1] * w_rb
    )
    return region, s_p.sum((1, 2)), s_p2.sum((1, 2)), s_pg.sum((1, 2))


def _refine_small_variances(
    norm: torch.Tensor,
    gt: torch.Tensor,
    fg_var: torch.Tensor,
    bg_var: torch.Tensor,
    n_fg: torch.Tensor,
    n_bg: torch.Tensor,
) -> None:
    """Recompute, two-pass, the variances (in place) that the one-pass formula leaves below 1e-8:
    there its rounding residue (about 1e-16 relative to mean^2) would show in the square root,
    ``std``; above, the one-pass std is within ~5e-13. Near-constant regions are rare (constant or
    binary maps), so this costs nothing in general."""
    small = ((fg_var < _SMALL_VARIANCE) & (n_fg > 1)) | ((bg_var < _SMALL_VARIANCE) & (n_bg > 1))
    for b in small.nonzero()[:, 0].tolist():
        fg, bg = norm[b][gt[b]], norm[b][~gt[b]]
        if fg.numel() > 1:
            fg_var[b] = torch.var(fg)
        if bg.numel() > 1:
            bg_var[b] = torch.var(bg)


def _object_score(mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    std = torch.where(count > 1, var.clamp(min=0.0).sqrt(), 0.0)
    return 2.0 * mean / (mean * mean + 1.0 + std + EPS)


def s_measure(
    norm: torch.Tensor,
    gt: torch.Tensor,
    alpha: float = 0.5,
    *,
    pg: torch.Tensor | None = None,
    workspace: Workspace | None = None,
    row_sums: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """S-measure [B] (float64) of normalised maps ``norm`` [B, h, w] (float64, in [0, 1]) against
    boolean GTs ``gt`` [B, h, w]; see the module docstring for the conventions.

    ``pg`` (``norm * gt``) may be passed when already computed, and ``row_sums`` =
    (``norm.sum(2)``, ``pg.sum(2)``); ``workspace`` holds the scratch maps
    (see :class:`~ssformer.metrics.inputs.Workspace`).
    """
    _, h, w = norm.shape
    n_pixels = float(h * w)
    gt = gt if gt.dtype == torch.bool else gt != 0  # a 0/1 mask of another dtype
    pg = norm * gt if pg is None else pg
    cy, cx, n_fg, g_rows = _centroid(gt)
    mixed = (n_fg > 0) & (n_fg < h * w)
    ws = Workspace() if workspace is None else workspace
    known = (None, None) if row_sums is None else row_sums
    region, sum_p, sum_p2, sum_pg = _region(norm, gt, pg, cy, cx, mixed, ws, g_rows, known)
    sum_p2g = torch.einsum("bhw,bhw->b", norm, pg)
    n_fg_f = n_fg.to(torch.float64)
    n_bg_f = n_pixels - n_fg_f
    fg_count = n_fg_f.clamp(min=1.0)
    bg_count = n_bg_f.clamp(min=1.0)
    fg_mean = sum_pg / fg_count
    fg_var = (sum_p2g - sum_pg * sum_pg / fg_count) / (fg_count - 1.0).clamp(min=1.0)
    bg_sum = sum_p - sum_pg
    bg_var = ((sum_p2 - sum_p2g) - bg_sum * bg_sum / bg_count) / (bg_count - 1.0).clamp(min=1.0)
    bg_mean = 1.0 - bg_sum / bg_count  # mean of 1 - p off the GT
    _refine_small_variances(norm, gt, fg_var, bg_var, n_fg_f, n_bg_f)
    gt_mean = n_fg_f / n_pixels
    objects = _object_score(fg_mean, fg_var, n_fg_f) * gt_mean + _object_score(
        bg_mean, bg_var, n_bg_f
    ) * (1.0 - gt_mean)
    combined = (objects * alpha + region * (1.0 - alpha)).clamp(min=0.0)
    mean_p = sum_p / n_pixels
    return torch.where(n_fg == 0, 1.0 - mean_p, torch.where(n_fg_f == n_pixels, mean_p, combined))
