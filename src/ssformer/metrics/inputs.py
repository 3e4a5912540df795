"""Checking and preparing the evaluator's inputs: probability maps, masks, min-max normalisation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from ssformer.errors import DataError

__all__ = [
    "Workspace",
    "as_batch",
    "as_map",
    "intra_op_threads",
    "minmax_affine",
    "normalize_batch",
    "normalize_minmax",
    "prepare_gt",
    "prepare_prob",
    "resize_probability",
]

ArrayLike = np.ndarray | torch.Tensor


def _to_tensor(x: ArrayLike) -> torch.Tensor:
    return x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def as_map(x: ArrayLike, name: str) -> torch.Tensor:
    """One [h, w] map (leading size-1 dims dropped)."""
    tensor = _to_tensor(x)
    while tensor.ndim > 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 2:
        raise DataError(
            f"{name} must be a 2-D [h, w] map (leading size-1 dims allowed), got shape "
            f"{tuple(tensor.shape)}; pass one image at a time."
        )
    return tensor


def as_batch(x: ArrayLike | Sequence[ArrayLike], name: str) -> torch.Tensor:
    """A [B, h, w] stack of maps of one size: a [B, h, w] or [B, 1, h, w] array/tensor, or a
    sequence of [h, w] maps."""
    if isinstance(x, (list, tuple)):
        maps = [as_map(item, f"{name}[{i}]") for i, item in enumerate(x)]
        shapes = {tuple(m.shape) for m in maps}
        if len(shapes) > 1:
            raise DataError(
                f"{name} holds maps of different sizes {sorted(shapes)}; update_batch takes "
                "images of one size (call update() per image otherwise)."
            )
        if not maps:
            raise DataError(f"{name} is empty; pass at least one map.")
        return torch.stack(maps)
    tensor = _to_tensor(x)
    if tensor.ndim == 4 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    if tensor.ndim != 3:
        raise DataError(
            f"{name} must be a [B, h, w] (or [B, 1, h, w]) stack, got shape {tuple(tensor.shape)}."
        )
    return tensor


def prepare_prob(prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check probabilities [B, h, w]; returns (map as float, per-image min, per-image max),
    the extremes as float64 [B]. A uint8 map is a saved 8-bit PNG: value / 255 in float64."""
    p = prob
    if p.dtype == torch.uint8:
        p = p.to(torch.float64) / 255.0
    if not torch.is_floating_point(p):
        raise DataError(
            f"prob has dtype {p.dtype}; pass float probabilities in [0, 1] (after sigmoid) or a "
            "uint8 map in 0..255."
        )
    if p.numel() == 0:
        raise DataError("prob is empty (0 pixels); check the image and mask sizes.")
    flat = p.reshape(p.shape[0], -1)
    lo, hi = flat.amin(1).to(torch.float64), flat.amax(1).to(torch.float64)
    lo_f, hi_f = float(lo.min()), float(hi.max())
    if not (math.isfinite(lo_f) and math.isfinite(hi_f)) or lo_f < 0.0 or hi_f > 1.0:
        raise DataError(
            f"prob values span [{lo_f}, {hi_f}]; expected finite probabilities in [0, 1]. Apply "
            "sigmoid to the logits before evaluation."
        )
    return p, lo, hi


def prepare_gt(
    gt: torch.Tensor, device: torch.device, official: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return (GT > 128 mask, GT == 255 mask or None unless ``official``) on ``device``; a bool
    mask is used as both."""
    g = gt.to(device)
    if g.dtype == torch.bool:
        return g, g
    if torch.is_floating_point(g) or torch.is_complex(g):
        raise DataError(
            f"gt has dtype {g.dtype}; pass a bool mask or the raw uint8 mask pixels (0..255)."
        )
    return g > 128, (g == 255) if official else None


def minmax_affine(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(offset, divisor) [B] of ``mapminmax``: ``(p - lo) / (hi - lo)``; (0, 1), the identity,
    for a constant map."""
    constant = hi <= lo
    offset = torch.where(constant, torch.zeros_like(lo), lo)
    divisor = torch.where(constant, torch.ones_like(hi), hi - lo)
    return offset, divisor


def normalize_batch(
    p: torch.Tensor, offset: torch.Tensor, divisor: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``(p - offset) / divisor`` per image in float64 (into ``out`` if given): the same IEEE
    operations as PySODMetrics' ``(pred - pred.min()) / (pred.max() - pred.min())``, so the
    values are bit-identical."""
    view = (-1,) + (1,) * (p.ndim - 1)
    out = p.to(torch.float64, copy=True) if out is None else out.copy_(p)  # exact
    return out.sub_(offset.view(view)).div_(divisor.view(view))


def normalize_minmax(prob: torch.Tensor) -> torch.Tensor:
    """Min-max normalise one map to [0, 1] in float64 like MATLAB ``mapminmax`` / PySODMetrics.

    A constant map is returned unchanged (as ``mapminmax`` and PySODMetrics do).
    """
    p = prob.to(torch.float64)
    lo, hi = torch.aminmax(p)
    if bool(hi > lo):
        p = (p - lo) / (hi - lo)
    return p


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


class Workspace:
    """Scratch tensors kept across updates, grown as needed: large temporaries (float64 maps of
    a few MB per image) then reuse memory instead of fresh pages, which the OS has to fault in
    and zero on every first touch, a cost comparable to the arithmetic itself.

    ``get(name, shape, dtype, device)`` returns a view of the named buffer; its contents are
    undefined, and it stays valid until the next ``get`` of the same name.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    def get(
        self, name: str, shape: Sequence[int], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        size = math.prod(shape)
        key = (name, dtype, torch.device(device))
        buffer = self._buffers.get(key)
        if buffer is None or buffer.numel() < size:
            buffer = torch.empty(size, dtype=dtype, device=device)
            self._buffers[key] = buffer
        return buffer[:size].view(*shape)


@contextmanager
def intra_op_threads(threads: int | None, device: torch.device) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads for CPU work (restored after);
    ``None``, or a non-CPU device, leaves torch's setting alone."""
    before = torch.get_num_threads()
    if threads is None or device.type != "cpu" or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
