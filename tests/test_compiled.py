"""Compiled inference (``--compile``): same masks as eager; a compiler failure falls back."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from ssformer.engine.compiled import compile_for_inference
from ssformer.engine.predict import Predictor
from ssformer.models import build_model

CPU = torch.device("cpu")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("SSFormer", "MiT-B0")


def test_compiler_failure_falls_back_to_eager(caplog: pytest.LogCaptureFixture) -> None:
    def failing_backend(graph: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> None:
        raise RuntimeError("no C++ compiler on this machine")

    eager = _model().eval()
    compiled = compile_for_inference(_model(), CPU, backend=failing_backend)
    x = torch.randn(1, 3, 64, 64)
    with caplog.at_level(logging.WARNING), torch.no_grad():
        got = compiled(x.contiguous(memory_format=torch.channels_last))
        expected = eager(x)
    assert not compiled.compiled
    assert "no C++ compiler on this machine" in caplog.text
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="torch.compile (Inductor) needs a C++ compiler",
)
def test_compiled_predictor_gives_the_eager_probabilities() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    eager = Predictor(_model(), (64, 64), CPU)
    compiled = Predictor(_model(), (64, 64), CPU, compile=True)
    expected = eager.probability(rgb)
    got = compiled.probability(rgb)
    assert compiled.model.compiled  # really compiled, not the fallback
    assert got.shape == (50, 70)
    np.testing.assert_allclose(got, expected, atol=1e-5)
