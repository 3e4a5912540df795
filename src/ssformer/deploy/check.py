"""The check of an export against the model it came from: max |logits difference| on inputs
drawn from a seeded generator, at the export size (batch 2) and, when the export allows any
size, at a second, non-square one (batch 1). fp32 must stay within :data:`FP32_LIMIT`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ssformer.errors import ExportError

__all__ = [
    "FP32_LIMIT",
    "check_inputs",
    "check_record",
    "max_logit_difference",
    "require_fp32_parity",
]

FP32_LIMIT = 1e-4


def check_inputs(image_size: Sequence[int], dynamic_size: bool) -> list[torch.Tensor]:
    """The check's inputs (normalised-image-like: standard normal values)."""
    generator = torch.Generator().manual_seed(20220303)
    height, width = int(image_size[0]), int(image_size[1])
    inputs = [torch.randn(2, 3, height, width, generator=generator)]
    if dynamic_size:
        inputs.append(torch.randn(1, 3, height + 32, width + 64, generator=generator))
    return inputs


@torch.inference_mode()
def max_logit_difference(
    reference: Callable[[torch.Tensor], torch.Tensor],
    candidate: Callable[[torch.Tensor], torch.Tensor],
    inputs: Sequence[torch.Tensor],
) -> float:
    """Max |reference(x) - candidate(x)| over ``inputs`` (shapes must agree)."""
    worst = 0.0
    for x in inputs:
        expected, got = reference(x).float(), candidate(x).float()
        if expected.shape != got.shape:
            raise ExportError(
                f"the export gives logits of shape {tuple(got.shape)} for input "
                f"{tuple(x.shape)}; torch gives {tuple(expected.shape)}"
            )
        worst = max(worst, float((expected - got).abs().max()))
    return worst


def require_fp32_parity(difference: float, what: str) -> None:
    """Refuse an fp32 export whose logits differ from torch's by more than the limit."""
    if not difference <= FP32_LIMIT:  # also catches NaN
        raise ExportError(
            f"{what}: max |logits difference| against torch is {difference:.2e}, above the "
            f"fp32 limit {FP32_LIMIT:g}; the export is not kept (report this with the model "
            "name and versions)"
        )


def check_record(
    difference: float, against: str, inputs: Sequence[torch.Tensor], precision: str
) -> dict[str, Any]:
    """The sidecar's ``check`` entry."""
    return {
        "against": against,
        "max_abs_logit_diff": difference,
        "limit": FP32_LIMIT if precision == "fp32" else None,
        "inputs": [list(x.shape) for x in inputs],
    }
