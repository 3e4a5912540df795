"""The decoders' paper form against their fused form (``model.fuse()``), side by side.

Usage::

    PYTHONPATH=src python benchmarks/bench_fuse.py [--size 352] [--rounds 5] [--threads N]

For SSFormer-S (the official PLD on MiT-B2), the study's PLD variant and SegFormer (on MiT-B2,
width 768) in eval mode, fp32, batch 1: the max |logits difference| between the two forms, and
inference time of each, alternating the two forms round by round on the same input and
threads; prints min / median of the rounds and the ratio paper / fused of the medians, with the
CPU it ran on (ratios move with the CPU). Random weights: speed and parity do not depend on
training.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from ssformer.models import build_model

MODELS = (("SSFormer", "MiT-B2"), ("PLDSegFormer", "MiT-B2"), ("SegFormer", "MiT-B2"))


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform says."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or "unknown CPU"


def seconds_of(model: torch.nn.Module, image: torch.Tensor, repeats: int) -> float:
    """The fastest of ``repeats`` forward passes."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model(image)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    image = torch.randn(1, 3, args.size, args.size)
    for name, backbone in MODELS:
        torch.manual_seed(0)
        paper = build_model(name, backbone, num_classes=1).eval()
        for module in paper.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        fused = build_model(name, backbone, num_classes=1).eval()
        fused.load_state_dict(paper.state_dict())
        fused.fuse()
        times: dict[str, list[float]] = {"paper": [], "fused": []}
        with torch.no_grad():
            reference = paper(image)
            difference = float((reference - fused(image)).abs().max())
            scale = float(reference.abs().max())
            for _ in range(args.rounds):
                times["paper"].append(seconds_of(paper, image, args.repeats))
                times["fused"].append(seconds_of(fused, image, args.repeats))
        medians = {form: statistics.median(values) for form, values in times.items()}
        print(
            f"{name} on {backbone} at {args.size} px: max |logits diff| {difference:.2e} "
            f"(logits up to {scale:.3g}); "
            + "; ".join(
                f"{form} min {min(times[form]) * 1e3:.1f} ms, median {medians[form] * 1e3:.1f} ms"
                for form in times
            )
            + f"; paper / fused x{medians['paper'] / medians['fused']:.3f}"
        )


if __name__ == "__main__":
    main()
