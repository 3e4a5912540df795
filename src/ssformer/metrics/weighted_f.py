"""Weighted F-measure (Margolin, Zelnik-Manor & Tal, "How to Evaluate Foreground Maps?", CVPR
2014), vectorised over a batch of maps of one size.

Follows PySODMetrics' ``WeightedFmeasure`` (beta^2 = 1; itself a port of the authors' MATLAB
``WFb.m``) on the min-max-normalised map p (float64) and the boolean GT G:

- ``E = |p - G|``; ``Et = E`` on G and, off G, the error of the nearest GT pixel
  (``scipy.ndimage.distance_transform_edt(G == 0, return_indices=True)``);
- ``EA = Et * K``, K the 7x7 ``fspecial('gaussian', 7, 5)`` kernel, zero padding;
- ``MIN = EA`` where ``G & EA < E``, else ``E``;
- ``B = 2 - exp(log(0.5) / 5 * D)`` off G (D = Euclidean distance to G), 1 on G; ``Ew = MIN * B``;
- ``TPw = |G| - sum(Ew on G)``, ``FPw = sum(Ew off G)``, ``R = 1 - mean(Ew on G)``,
  ``P = TPw / (TPw + FPw + eps)``, ``Q = 2 R P / (R + P + eps)``; an empty GT scores 0.

How it is computed here:

- D^2 (an integer) comes from OpenCV's exact Euclidean distance transform
  (``cv2.distanceTransform(..., DIST_L2, DIST_MASK_PRECISE)``, float32, on the CPU: it depends on
  the GT only), squared and rounded back to the integer, which is exact for ``D^2 < 2^22``; a map
  with one side of 2048 pixels or more is transformed transposed, one with both that large by
  scipy. B is then looked up in a table of PySODMetrics' own float64 values ``2 - exp(log(0.5) / 5 * sqrt(n))``; from
  ``n = 70226`` (D > 265) on that value is exactly 2.0, so larger distances need no precision.
- ``Et`` is needed only within the kernel's reach of G (Chebyshev distance <= 3, so D^2 <= 18).
  There the nearest GT pixel is found among the offsets ``(dy, dx)`` with ``dy^2 + dx^2 = D^2``
  in the order of scipy's feature transform: smallest column first, then smallest row (scipy's
  Maurer transform keeps the first of equidistant features along each axis), which reproduces
  its indices exactly.
- The Gaussian is separable (its 2-D table is the outer product of the 1-D one), so ``EA`` is
  a separable float64 filter over the bounding box of G: OpenCV's ``sepFilter2D`` on the CPU,
  two 1-D torch convolutions elsewhere; then ``sum(min(EA, E) on G)``.
- The GT-only part (distances, the nearest-GT indices, the box: :func:`gt_geometry`) runs in
  numpy and OpenCV on a worker thread (:func:`gt_geometry_async`) while the caller computes
  the other metrics; on the CPU the rest follows it there (:func:`weighted_fmeasure_async`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ssformer.metrics.conventions import EPS
from ssformer.metrics.inputs import Workspace

__all__ = [
    "GTGeometry",
    "gt_geometry",
    "gt_geometry_async",
    "squared_distances",
    "weighted_fmeasure",
    "weighted_fmeasure_async",
]

_SIGMA = 5.0
_RADIUS = 3  # the 7x7 kernel
_BAND = 2 * _RADIUS * _RADIUS  # D^2 of the farthest pixel a 7x7 window around G reaches
_PAD = _RADIUS + 1  # reach of the offsets with dy^2 + dx^2 <= 18
_CV2_MAX_SIDE = 2048  # below it OpenCV's float32 transform is exact (see squared_distances)
_FAR_DISTANCE = 1e4  # cap of the distances (B saturates at 266)
_FAR = int(_FAR_DISTANCE**2)
_tables: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
_executor: ThreadPoolExecutor | None = None


@functools.cache
def _gaussian_1d() -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', 7, 5)``: ``outer(k, k)`` is the 2-D kernel
    (no entry falls below ``eps * max``, so MATLAB's clipping step removes nothing)."""
    x = np.arange(-_RADIUS, _RADIUS + 1, dtype=np.float64)
    k = np.exp(-(x * x) / (2 * _SIGMA * _SIGMA))
    return k / k.sum()


@functools.cache
def _weight_table() -> np.ndarray:
    """``B(n) = 2 - exp(log(0.5) / 5 * sqrt(n))`` for n = 0 .. the first n where it is 2.0."""
    c = np.log(0.5) / 5
    probe = np.arange(260 * 260, 280 * 280, dtype=np.float64)
    saturated = probe[2 - np.exp(c * np.sqrt(probe)) == 2.0]
    last = int(saturated[0])
    return 2 - np.exp(c * np.sqrt(np.arange(last + 1, dtype=np.float64)))


@functools.cache
def _band_offsets() -> np.ndarray:
    """For each n = D^2 <= 18: the offsets (dy, dx) with dy^2 + dx^2 = n, ordered as scipy's
    feature transform breaks ties (dx, then dy, ascending), padded to 8 slots with (0, 0)."""
    offsets = np.zeros((_BAND + 1, 8, 2), dtype=np.int64)
    for n in range(1, _BAND + 1):
        found = sorted(
            (dx, dy)
            for dy in range(-_PAD, _PAD + 1)
            for dx in range(-_PAD, _PAD + 1)
            if dy * dy + dx * dx == n
        )
        for slot, (dx, dy) in enumerate(found):
            offsets[n, slot] = (dy, dx)
    return offsets


def _device_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = ("wfm", device)
    if key not in _tables:
        _tables[key] = (
            torch.from_numpy(_gaussian_1d()).to(device),
            torch.from_numpy(_weight_table()).to(device),
        )
    return _tables[key]


def _transform(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (float32 [h, w]; float64 from scipy) to the nearest True pixel of a
    non-empty bool ``mask``."""
    h, w = mask.shape
    background = np.ascontiguousarray(~mask).view(np.uint8)
    if max(h, w) < _CV2_MAX_SIDE:
        return cv2.distanceTransform(background, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    if min(h, w) < _CV2_MAX_SIDE:  # the transform is symmetric: run it on the transpose
        transposed = np.ascontiguousarray(background.T)
        return cv2.distanceTransform(transposed, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).T
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(background)


def _distances(masks: np.ndarray) -> np.ndarray:
    """Squared distances (int32 [B, h, w]) to the nearest True pixel of ``masks`` (numpy bool),
    exact below 2^22 and capped at ``_FAR``."""
    out = np.empty(masks.shape, dtype=np.int32)
    for b in range(masks.shape[0]):
        if not masks[b].any():
            out[b] = _FAR  # no GT pixel: its weighted F-measure is 0 by definition
            continue
        d = np.minimum(_transform(masks[b]), _FAR_DISTANCE, dtype=np.float64)
        np.multiply(d, d, out=d)
        out[b] = np.rint(d, out=d)
    return out


def squared_distances(gt: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance (int32 [B, h, w], on ``gt``'s device) from each pixel to the
    nearest True pixel of ``gt`` [B, h, w]; 0 on ``gt``. Distances are capped at 1e4 pixels, and
    an image without True pixels gets the cap everywhere (its weighted F-measure is 0 by
    definition).

    OpenCV's ``DIST_MASK_PRECISE`` transform (Felzenszwalb's exact algorithm in float32) is exact
    here: squared distances are integers held exactly in float32, the envelope crossings are
    compared with enough precision for sides below 2048, and its float32 square root, squared in
    float64 and rounded, gives back the integer for ``D^2 < 2^22`` (within one unit above; the
    weighted F-measure reads only ``D^2 <= 70226``). Maps with both sides of 2048 pixels or more
    use scipy's transform (float64, exact).
    """
    return torch.from_numpy(_distances(gt.detach().cpu().numpy())).to(gt.device)


@dataclass
class GTGeometry:
    """What the weighted F-measure takes from the GTs [B, h, w] alone.

    ``weight_index``: int32 [B, h, w], the squared distance to the GT capped where B reaches 2.0
    (the index into the table of B); ``band``/``nearest``: int64 [K], flat indices into the
    [B, h + 8, w + 8] zero-bordered layout of the pixels off the GT within the 7x7 kernel's
    reach of it and of their nearest GT pixel (scipy's choice among equidistant ones); ``box``:
    the GTs' bounding rows and columns (over the batch), None without GT pixels.
    """

    weight_index: np.ndarray
    band: np.ndarray
    nearest: np.ndarray
    box: tuple[int, int, int, int] | None


def gt_geometry(masks: np.ndarray) -> GTGeometry:
    """:class:`GTGeometry` of boolean GTs ``masks`` (numpy [B, h, w]), in numpy and OpenCV (both
    release the GIL, so it runs well in a worker thread).

    The squared distances are float32 here: ``fl(fl(sqrt(n))^2)`` is within ``2e-7 n`` of the
    integer n, so rounding recovers every n up to the table's end (70226) exactly.
    """
    batch, h, w = masks.shape
    last = _weight_table().size - 1
    n = np.empty((batch, h, w), dtype=np.int32)
    near = np.empty((h, w), dtype=np.uint8)
    hp, wp = h + 2 * _PAD, w + 2 * _PAD
    bands = []
    for b in range(batch):
        if not masks[b].any():
            n[b] = last  # no GT pixel: its weighted F-measure is 0 by definition
            continue
        d2 = _transform(masks[b]).astype(np.float32, copy=False)
        np.multiply(d2, d2, out=d2)
        cv2.inRange(d2, 0.5, _BAND + 0.5, dst=near)  # 0 < D^2 <= 18
        points = cv2.findNonZero(near)  # (x, y), row by row: [N, 1, 2] in OpenCV 4, [N, 2] in 5
        if points is not None:
            points = points.reshape(-1, 2)
            x, y = points[:, 0].astype(np.int64), points[:, 1].astype(np.int64)
            # position in the bordered layout: the image's block, then (y + 4) * wp + x + 4
            bands.append(b * (hp * wp) + (y + _PAD) * wp + (x + _PAD))
        np.minimum(d2, last, out=d2)
        n[b] = np.rint(d2, out=d2)
    band = np.concatenate(bands) if bands else np.zeros(0, dtype=np.int64)
    image, rest = np.divmod(band, hp * wp)
    y, x = np.divmod(rest, wp)
    n_band = np.take(n.reshape(-1), image * (h * w) + (y - _PAD) * w + (x - _PAD))
    offsets = _band_offsets()
    steps = offsets[:, :, 0] * wp + offsets[:, :, 1]  # [19, 8] flat steps for this width
    candidates = band[:, None] + np.take(steps, n_band, axis=0)
    bordered = np.pad(masks, ((0, 0), (_PAD, _PAD), (_PAD, _PAD))).reshape(-1)
    first = np.take(bordered, candidates).argmax(1)  # the first candidate on the GT
    nearest = np.take_along_axis(candidates, first[:, None], 1)[:, 0]
    rows, cols = np.flatnonzero(masks.any((0, 2))), np.flatnonzero(masks.any((0, 1)))
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1) if rows.size else None
    return GTGeometry(weight_index=n, band=band, nearest=nearest, box=box)


def _worker() -> ThreadPoolExecutor:
    """The one worker thread, with one torch intra-op thread there (the caller keeps the rest).

    ``torch.set_num_threads`` in the worker also sets the count that threads started later begin
    with, so the caller's count is set again once the worker has started."""
    global _executor
    if _executor is None:
        callers = torch.get_num_threads()
        _executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="ssformer-wfm",
            initializer=torch.set_num_threads,
            initargs=(1,),
        )
        _executor.submit(int).result()  # the initializer has run
        torch.set_num_threads(callers)
    return _executor


def gt_geometry_async(gt: torch.Tensor) -> Callable[[], GTGeometry]:
    """Start :func:`gt_geometry` of ``gt`` [B, h, w] in a worker thread, overlapping with torch
    work on the caller's thread; returns the function that waits for it."""
    return _worker().submit(gt_geometry, gt.detach().cpu().numpy()).result


def _box_views(box: tuple[int, int, int, int]) -> tuple[slice, slice, slice, slice]:
    """(rows, cols) of ``box`` in the bordered layout with the kernel's reach, then without."""
    r, (r0, r1, c0, c1) = _RADIUS, box
    return (
        slice(_PAD + r0 - r, _PAD + r1 + r),
        slice(_PAD + c0 - r, _PAD + c1 + r),
        slice(_PAD + r0, _PAD + r1),
        slice(_PAD + c0, _PAD + c1),
    )


def _blurred_min_sum_cpu(
    bordered: torch.Tensor, gt: torch.Tensor, box: tuple[int, int, int, int]
) -> torch.Tensor:
    """``sum over the GT of min(EA, Et)`` [B] on the CPU: the separable filter is OpenCV's
    ``sepFilter2D`` in float64 (cache-blocked, SIMD, and it releases the GIL), zero padding
    outside the reach-extended box (the bordered layout's zeros)."""
    rows, cols, inner_rows, inner_cols = _box_views(box)
    kernel = _gaussian_1d()
    maps, masks = bordered.numpy(), gt.numpy()
    r, (r0, r1, c0, c1) = _RADIUS, box
    total = np.zeros(bordered.shape[0], dtype=np.float64)
    for b in range(bordered.shape[0]):
        blurred = cv2.sepFilter2D(
            maps[b, rows, cols], cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_CONSTANT
        )[r:-r, r:-r]
        np.minimum(blurred, maps[b, inner_rows, inner_cols], out=blurred)
        total[b] = np.multiply(blurred, masks[b, r0:r1, c0:c1], out=blurred).sum()
    return torch.from_numpy(total)


def _blurred_min_sum_torch(
    bordered: torch.Tensor, gt: torch.Tensor, box: tuple[int, int, int, int]
) -> torch.Tensor:
    """:func:`_blurred_min_sum_cpu` on any device: two 1-D float64 convolutions."""
    rows, cols, inner_rows, inner_cols = _box_views(box)
    kernel, _ = _device_tables(bordered.device)
    taps = 2 * _RADIUS + 1
    region = bordered[:, rows, cols][:, None]
    blurred = F.conv2d(F.conv2d(region, kernel.view(1, 1, 1, taps)), kernel.view(1, 1, taps, 1))
    blurred = torch.minimum(blurred[:, 0], bordered[:, inner_rows, inner_cols])
    r0, r1, c0, c1 = box
    return (blurred * gt[:, r0:r1, c0:c1]).sum((1, 2))


def _blurred_min_sum(
    bordered: torch.Tensor, gt: torch.Tensor, box: tuple[int, int, int, int]
) -> torch.Tensor:
    """``sum over the GT of min(EA, Et)`` [B]: ``EA`` is the map inside ``bordered`` ([B, h + 8,
    w + 8], zero border of 4) filtered with ``outer(k, k)`` (scipy ``convolve``,
    ``mode='constant'``; the kernel is symmetric, so correlation and convolution agree) over the
    GTs' bounding ``box``, ``Et`` the map itself, ``gt`` the GTs (bool [B, h, w])."""
    if bordered.device.type == "cpu":
        return _blurred_min_sum_cpu(bordered, gt, box)
    return _blurred_min_sum_torch(bordered, gt, box)


def _bordered_error(gt: torch.Tensor, pg: torch.Tensor, workspace: Workspace) -> torch.Tensor:
    """``E = |p - G|`` on the GT (``1 - p = G - p G``, ``pg`` = ``p G``), 0 off it, inside a
    zero border of 4: [B, h + 8, w + 8] (the nearest-GT errors are written into it later)."""
    batch, h, w = gt.shape
    shape = (batch, h + 2 * _PAD, w + 2 * _PAD)
    bordered = workspace.get("bordered", shape, pg.dtype, pg.device)
    for border in (
        bordered[:, :_PAD],
        bordered[:, -_PAD:],
        bordered[:, :, :_PAD],
        bordered[:, :, -_PAD:],
    ):
        border.zero_()
    torch.sub(gt.view(torch.uint8), pg, out=bordered[:, _PAD:-_PAD, _PAD:-_PAD])
    return bordered


def _weighted_f_of_error(
    norm: torch.Tensor,
    gt: torch.Tensor,
    bordered: torch.Tensor,
    sums: tuple[torch.Tensor, torch.Tensor],
    geometry: GTGeometry | Callable[[], GTGeometry],
    beta2: float,
    workspace: Workspace,
) -> torch.Tensor:
    """The weighted F-measure [B] from :func:`_bordered_error`'s map and ``sums`` = (sum of
    ``p G``, GT size), float64 [B]."""
    _, weights = _device_tables(norm.device)
    sum_pg, n_fg = sums
    device = norm.device
    geo = geometry() if callable(geometry) else geometry
    # FPw: sum of p * B off the GT (B = 1 on the GT, where the distance is 0).
    index = torch.from_numpy(geo.weight_index).to(device).view(-1)
    b_map = workspace.get("weights", (index.numel(),), norm.dtype, device)
    torch.index_select(weights, 0, index, out=b_map)
    fp_w = torch.einsum("bhw,bhw->b", norm, b_map.view(norm.shape)) - sum_pg
    if geo.band.size:  # off the GT, near it: the error of the nearest GT pixel
        flat = bordered.view(-1)
        nearest = flat.index_select(0, torch.from_numpy(geo.nearest).to(device))
        flat.index_copy_(0, torch.from_numpy(geo.band).to(device), nearest)
    sum_ew_fg = torch.zeros_like(n_fg)
    if geo.box is not None:
        sum_ew_fg = _blurred_min_sum(bordered, gt, geo.box)
    tp_w = n_fg - sum_ew_fg
    recall = 1.0 - sum_ew_fg / n_fg.clamp(min=1.0)
    precision = tp_w / (tp_w + fp_w + EPS)
    q = (1.0 + beta2) * recall * precision / (recall + beta2 * precision + EPS)
    return torch.where(n_fg == 0, 0.0, q)


def weighted_fmeasure(
    norm: torch.Tensor,
    gt: torch.Tensor,
    beta2: float = 1.0,
    *,
    geometry: GTGeometry | Callable[[], GTGeometry] | None = None,
    workspace: Workspace | None = None,
) -> torch.Tensor:
    """Weighted F-measure [B] (float64) of normalised maps ``norm`` [B, h, w] (float64, in
    [0, 1]) against boolean GTs ``gt`` [B, h, w]; see the module docstring.

    ``geometry`` (:func:`gt_geometry` of ``gt``, or the waiting function of
    :func:`gt_geometry_async`) may be passed when already computed or started; ``workspace``
    holds the scratch maps (see :class:`~ssformer.metrics.inputs.Workspace`).
    """
    ws = Workspace() if workspace is None else workspace
    gt = gt if gt.dtype == torch.bool else gt != 0  # a 0/1 mask of another dtype
    if geometry is None:
        geometry = gt_geometry(gt.detach().cpu().numpy())
    pg = norm * gt
    bordered = _bordered_error(gt, pg, ws)
    sums = (pg.sum((1, 2)), gt.view(torch.uint8).sum((1, 2), dtype=torch.float64))
    return _weighted_f_of_error(norm, gt, bordered, sums, geometry, beta2, ws)


def weighted_fmeasure_async(
    norm: torch.Tensor,
    gt: torch.Tensor,
    pg: torch.Tensor,
    sums: tuple[torch.Tensor, torch.Tensor],
    geometry: Callable[[], GTGeometry],
    workspace: Workspace,
) -> Callable[[], torch.Tensor]:
    """Start :func:`weighted_fmeasure` of ``norm`` and ``gt`` given ``pg`` = ``norm * gt``,
    ``sums`` = (sum of ``norm * gt``, GT size) [B] and the started
    ``geometry`` (:func:`gt_geometry_async`); returns the function that waits for the result.

    On the CPU the rest runs in the worker thread after the geometry (numpy, OpenCV and torch
    release the GIL) while the caller computes the other metrics; the caller must leave the
    inputs and the workspace's ``bordered``/``weights`` buffers alone until it has waited.
    Elsewhere it runs when the returned function is called."""
    bordered = _bordered_error(gt, pg, workspace)
    args = (norm, gt, bordered, sums, geometry, 1.0, workspace)
    if norm.device.type == "cpu":
        return _worker().submit(_weighted_f_of_error, *args).result
    return lambda: _weighted_f_of_error(*args)
