"""Measurement code (``ssformer.benchmark``) and the ``info`` / ``bench`` commands."""

from __future__ import annotations

import pytest
import torch
from helpers_models import official_pld_forward
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ssformer.benchmark import count_flops, count_parameters, state_dict_megabytes
from ssformer.cli import main
from ssformer.models import build_model


class _Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_flops_count_a_multiply_add_as_two() -> None:
    assert count_flops(_Conv(), size=16) == 2 * 3 * 8 * 9 * 16 * 16
    assert count_flops(_Conv(), size=16, batch=3) == 3 * 2 * 3 * 8 * 9 * 16 * 16


def test_pld_saves_the_flops_of_the_fusions_it_moves_before_the_resizes() -> None:
    """Official order: three 1x1 fusions of 2w -> w channels on the c1 grid (N pixels),
    12 w^2 N FLOPs. Fused (`model.fuse()`): 2 w^2 N (1/64 + 1/16 + 1 + 1/4 + 2), the rest
    is identical."""
    torch.manual_seed(0)
    head = build_model("SSFormer", "MiT-B0").fuse().decode_head.eval()
    features = [
        torch.randn(1, c, 64 // s, 64 // s)
        for c, s in zip((32, 64, 160, 256), (4, 8, 16, 32), strict=True)
    ]
    counts = []
    for forward in (
        lambda: official_pld_forward(head, features, 64),
        lambda: head(features, (64, 64)),
    ):
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            forward()
        counts.append(counter.get_total_flops())
    official, ours = counts
    width, pixels = 256, 16 * 16
    assert official - ours == 2 * width**2 * pixels * (6 - (1 / 64 + 1 / 16 + 1 + 1 / 4 + 2))


def test_info_prints_parameters_flops_and_size(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "SSFormer", "--backbone", "MiT-B0", "--size", "64"]) == 0
    out = capsys.readouterr().out
    model = build_model("SSFormer", "MiT-B0").fuse()  # ssformer info counts the fused form
    assert f"parameters  {count_parameters(model):,} " in out
    assert f"FLOPs       {count_flops(model, size=64) / 1e9:.2f} G at 64x64" in out
    assert f"weights     {state_dict_megabytes(model):.2f} MB" in out


def test_bench_prints_a_row_per_mode_and_memory_format(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "SegFormer", "--backbone", "MiT-B0", "--size", "32", "--device", "cpu"]
    args += ["--warmup", "0", "--repeats", "1", "--no-amp"]
    assert main(args) == 0
    captured = capsys.readouterr()
    rows = [line.split() for line in captured.out.splitlines()]
    rows = [row for row in rows if row and row[0] in ("inference", "train")]
    # progress on stderr: the plan first, then the count after each row with the time left
    assert captured.err.startswith("4 measurement(s) of 1 call(s) each")
    assert "[1/4 in " in captured.err and "[4/4 in " in captured.err and "0 s left]" in captured.err
    assert [tuple(row[:5]) for row in rows] == [
        ("inference", "1", "fp32", "off", "no"),
        ("inference", "1", "fp32", "on", "no"),
        ("train", "2", "fp32", "off", "no"),
        ("train", "2", "fp32", "on", "no"),
    ]
    assert all(float(row[5]) > 0 and float(row[6]) > 0 for row in rows)


def test_gpu_check_exits_clearly_without_a_cuda_device(tmp_path) -> None:
    """On a machine without a GPU the one-call GPU check says so and measures nothing."""
    import shutil
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    if shutil.which("nvidia-smi"):
        pytest.skip("a GPU machine: run benchmarks/gpu_check.sh itself")
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no CUDA device" in result.stderr and "nothing measured" in result.stderr
    assert not (script.parents[1] / ".venv-gpu").exists()  # nothing installed
