"""Our SSFormer equals the official implementation (fp32, eval) on official-layout weights.

Runs only when ``SSFORMER_OFFICIAL_REPO`` points to a checkout of the official repository
(https://github.com/Qiming-Huang/ssformer); the official code is imported from there at test
time by ``benchmarks/bench_vs_official.py`` (with stand-ins for mmcv/einops where missing).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO = os.environ.get("SSFORMER_OFFICIAL_REPO")
pytestmark = pytest.mark.skipif(
    not REPO, reason="set SSFORMER_OFFICIAL_REPO to a checkout of the official SSFormer repo"
)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_vs_official.py"
    spec = importlib.util.spec_from_file_location("bench_vs_official", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ssformer_s_logits_match_official(bench: ModuleType, tmp_path: Path) -> None:
    diff = bench.check_model_equivalence(Path(str(REPO)), "SSFormer-S", tmp_path)
    assert diff <= bench.TOLERANCE


@pytest.mark.slow
def test_ssformer_l_logits_match_official(bench: ModuleType, tmp_path: Path) -> None:
    diff = bench.check_model_equivalence(Path(str(REPO)), "SSFormer-L", tmp_path)
    assert diff <= bench.TOLERANCE


def test_mit_b2_imagenet_file_features_match_official(bench: ModuleType, tmp_path: Path) -> None:
    diff = bench.check_backbone_equivalence(Path(str(REPO)), tmp_path)
    assert diff <= bench.TOLERANCE
