"""How fast SSFormer-S can run in fp32 on this CPU: OpenVINO's time per operation, the rate
(GFLOP/s) each matrix operation reaches, and the time floor those rates imply.

Exports SSFormer-S (random weights) with ``ssformer export``'s exporter, compiles it for
OpenVINO's CPU plugin exactly as ``--runtime openvino`` does (``INFERENCE_PRECISION_HINT=f32``,
``PERFORMANCE_HINT=LATENCY``, ``--threads``) plus ``PERF_COUNT``, and runs batch 1 at 352x352.
From the compiled (runtime) graph it reads each node's measured time and shapes, so that every
convolution, fully-connected layer and matmul gets its FLOPs (2 per multiply-add) and its rate.

Printed: the model's FLOPs (torch's ``FlopCounterMode`` and the runtime graph's own count), the
time per kind of operation, the busiest nodes with their rates, and

    floor = FLOPs of the matrix operations / the best rate any of them reached

a lower bound for fp32 with the kernels this machine has (the other operations add to it).
With ``--official-repo DIR`` (a checkout of https://github.com/Qiming-Huang/ssformer, imported
as bench_vs_official.py does) the official model is timed eager at batch 1 in the same process,
its median T, and ``T / floor`` is printed: the highest ratio to the official that an fp32
runtime with these kernels could reach here (``--official-ms T`` gives T instead).

    PYTHONPATH=src python benchmarks/bench_openvino_floor.py [--threads 2] [--runs 10] \\
        [--official-repo DIR]
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MATRIX_OPS = ("Convolution", "GroupConvolution", "FullyConnected", "MatMul")


def _shape(partial_shape: object) -> list[int]:
    return [int(str(d)) for d in partial_shape]  # static shapes only (the model is reshaped)


def node_flops(op: object, layer: str) -> int:
    """FLOPs (2 per multiply-add) of one runtime node, 0 for operations other than
    :data:`MATRIX_OPS`."""
    if layer not in MATRIX_OPS:
        return 0
    out = _shape(op.get_output_partial_shape(0))
    inputs = [_shape(op.input(i).get_partial_shape()) for i in range(op.get_input_size())]
    if layer == "Convolution":  # weights [O, C, kh, kw]
        return 2 * math.prod(out) * math.prod(inputs[1][1:])
    if layer == "GroupConvolution":  # weights [G, O/G, C/G, kh, kw]
        return 2 * math.prod(out) * math.prod(inputs[1][2:])
    return 2 * math.prod(out) * inputs[0][-1]  # FullyConnected / MatMul: [.., K] x [K, N]


def profile(onnx: Path, size: int, threads: int, runs: int) -> tuple[float, list[dict]]:
    """(median wall seconds of a call, per node: layer, name, mean µs, FLOPs)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(onnx))
    model.reshape({model.inputs[0]: [1, 3, size, size]})
    config = {
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads,
        "PERF_COUNT": True,
    }
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)
    for _ in range(3):
        request.infer({0: x})
    walls, micros = [], collections.Counter()
    for _ in range(runs):
        start = time.perf_counter()
        request.infer({0: x})
        walls.append(time.perf_counter() - start)
        for info in request.profiling_info:
            micros[info.node_name] += info.real_time.total_seconds() * 1e6 / runs
    nodes = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        layer = rt["layerType"].astype(str)
        name = op.get_friendly_name()
        nodes.append(
            {
                "layer": layer,
                "name": name,
                "us": micros.get(name, 0.0),
                "flops": node_flops(op, layer),
            }
        )
    return float(np.median(walls)), nodes


def report(wall: float, nodes: list[dict], reference_flops: int, official_ms: float | None) -> None:
    matrix = [n for n in nodes if n["flops"]]
    total_flops = sum(n["flops"] for n in matrix)
    print(
        f"FLOPs: {reference_flops / 1e9:.2f} G (torch FlopCounterMode, as `ssformer info`), "
        f"{total_flops / 1e9:.2f} G in the runtime graph's matrix operations"
    )
    print(f"OpenVINO fp32 batch 1: {wall * 1e3:.1f} ms per call (median)")
    by_layer: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for node in nodes:
        by_layer[node["layer"]][0] += node["us"]
        by_layer[node["layer"]][1] += node["flops"]
    print("time per kind of operation:")
    for layer, (us, flops) in sorted(by_layer.items(), key=lambda item: -item[1][0])[:10]:
        rate = f"{flops / us / 1e3:6.1f} GFLOP/s" if flops and us else ""
        print(f"  {layer:<18} {us / 1e3:7.2f} ms  {flops / 1e9:6.2f} GFLOP  {rate}")
    timed = [n for n in matrix if n["us"] >= 500]  # rates of nodes of 0.5 ms and more
    best = max(timed, key=lambda n: n["flops"] / n["us"])
    print("busiest matrix operations:")
    for node in sorted(matrix, key=lambda n: -n["us"])[:8]:
        rate = node["flops"] / node["us"] / 1e3
        print(
            f"  {node['layer']:<16} {node['us'] / 1e3:6.2f} ms  {rate:6.1f} GFLOP/s  {node['name']}"
        )
    best_rate = best["flops"] / best["us"] * 1e6  # FLOP/s
    floor = total_flops / best_rate
    print(
        f"best rate of any matrix operation of 0.5 ms or more: {best_rate / 1e9:.1f} GFLOP/s "
        f"({best['layer']} {best['name']})"
    )
    print(
        f"floor: {total_flops / 1e9:.2f} GFLOP / {best_rate / 1e9:.1f} GFLOP/s = {floor * 1e3:.1f} ms"
    )
    if official_ms is not None:
        print(
            f"official eager {official_ms:.1f} ms / floor = x{official_ms / 1e3 / floor:.2f}: the "
            "highest ratio to the official an fp32 runtime with these kernels could reach here"
        )


def official_ms(repo: Path, size: int, runs: int) -> float:
    """Median milliseconds of the official SSFormer-S (eager, random weights) at batch 1."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_vs_official import _official_fn

    run = _official_fn(repo)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    times = []
    for index in range(runs + 2):
        start = time.perf_counter()
        run(x)
        if index >= 2:  # two warm-up calls
            times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--official-ms", type=float, default=None, help="official eager, batch 1")
    parser.add_argument("--official-repo", type=Path, default=None, help="official checkout")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.official_repo is not None:
        args.official_ms = official_ms(args.official_repo, args.size, args.runs)

    import ssformer
    from ssformer.benchmark import count_flops
    from ssformer.deploy.convert import export_onnx

    model = ssformer.build_model("SSFormer-S", num_classes=1).eval()
    flops = count_flops(model, args.size)  # the attention's matmuls included, as `ssformer info`
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / "ssformer-s.onnx"
        export_onnx(model, onnx, (args.size, args.size), static=True)
        wall, nodes = profile(onnx, args.size, args.threads, args.runs)
    print(f"SSFormer-S {args.size}x{args.size}, {args.threads} threads, {args.runs} runs")
    report(wall, nodes, flops, args.official_ms)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
