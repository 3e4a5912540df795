"""Inference without Python in the hot path: channels-last weights and ``torch.compile``.

:func:`compile_for_inference` turns a model into a compiled inference module (``ssformer val
--compile``, ``ssformer predict --compile``, ``ssformer bench --compile``). On a CPU it uses
Inductor's *freezing* (weights become constants: BatchNorm folded, weights pre-packed for
oneDNN, element-wise ops fused into C++ loops), which is what makes it pay there. Compiling
takes about a minute and happens again for every new input shape, so it pays for many images
of one size, not for a handful or for multi-scale testing.

Weights must not change after compiling (frozen); training never uses this module. If the
compiler fails (e.g. no C++ compiler on the machine), a warning names the error and the model
runs eagerly, with the same results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["CompiledInference", "compile_for_inference"]

LOG = logging.getLogger(__name__)


class CompiledInference(nn.Module):
    """``model`` compiled for inference; falls back to ``model`` itself if compiling fails.
    Inputs are made channels-last when the weights are.

    The first call compiles (and checks); a failure there is logged once and every later call
    runs ``model`` eagerly. Errors of later calls propagate.
    """

    def __init__(
        self, model: nn.Module, compiled: Callable[..., Any], channels_last: bool = True
    ) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self._compiled: Callable[..., Any] | None = compiled
        self._checked = False

    @property
    def compiled(self) -> bool:
        """Whether calls run the compiled graph (``False`` after a fallback)."""
        return self._compiled is not None

    def forward(self, x: torch.Tensor) -> Any:
        if self.channels_last:  # the weights are channels-last: so is every input
            x = x.contiguous(memory_format=torch.channels_last)
        if self._compiled is None:
            return self.model(x)
        if self._checked:
            return self._compiled(x)
        try:
            result = self._compiled(x)
        except Exception as error:  # any compiler failure: run eagerly instead
            LOG.warning(
                "torch.compile failed (%s: %s); running the model without compiling",
                type(error).__name__,
                " ".join(str(error).strip().splitlines()[:2]),
            )
            self._compiled = None
            return self.model(x)
        self._checked = True
        return result


def compile_for_inference(
    model: nn.Module,
    device: torch.device,
    *,
    channels_last: bool = True,
    backend: str | Callable[..., Any] = "inductor",
) -> CompiledInference:
    """``model`` in eval mode on ``device`` (channels-last by default), compiled for inference.

    Call the result under ``torch.no_grad()`` or ``torch.inference_mode()``. ``backend`` is
    torch.compile's (tests pass a failing one to check the fallback).
    """
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    options = {"freezing": True} if device.type == "cpu" and backend == "inductor" else None
    compiled = torch.compile(model, backend=backend, options=options, dynamic=False)
    return CompiledInference(model, compiled, channels_last=channels_last)
