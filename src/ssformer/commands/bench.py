"""``ssformer bench``: inference latency and train-step throughput of a model."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ssformer.deploy.formats import RUNTIMES
from ssformer.image_size import PAPER_SIDE

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ssformer.benchmark import BenchResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time inference and a training step (fp32/AMP, channels-last on/off)",
        description=(
            "Time NAME on BACKBONE with random input: inference latency (eval, inference_mode) "
            "and one AdamW training step, in fp32 and AMP (bf16 on CPU, fp16 on CUDA), with "
            "channels-last off and on. Warm-up runs first; medians of the repeats are shown."
        ),
    )
    parser.add_argument("name", nargs="?", default="SSFormer-S", help="model (SSFormer-S)")
    parser.add_argument("--backbone", default=None, help="MiT-B0..B5 or PVTv2-B0..B5")
    parser.add_argument("--classes", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1, help="inference batch size (1)")
    parser.add_argument("--train-batch", type=int, default=2, help="training batch size (2)")
    parser.add_argument("--size", type=int, default=PAPER_SIDE, help=f"input size ({PAPER_SIDE})")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch default)")
    parser.add_argument(
        "--modes", nargs="+", choices=("inference", "train"), default=["inference", "train"]
    )
    parser.add_argument("--no-amp", action="store_true", help="fp32 only")
    parser.add_argument(
        "--amp-dtypes",
        nargs="+",
        choices=("float16", "bfloat16"),
        default=None,
        help="AMP precisions to time (default: float16 on CUDA, bfloat16 on the CPU)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time inference compiled with torch.compile (channels-last; ~1 min to compile)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="time these weights: a checkpoint, or an export (.onnx / .xml with its sidecar)",
    )
    parser.add_argument(
        "--runtime",
        nargs="+",
        choices=RUNTIMES,
        default=None,
        help="runtimes to time (default: torch, or the export's own); onnxruntime and "
        "openvino time inference of the ONNX export (made in a temporary folder from a "
        "checkpoint or the random model)",
    )
    parser.set_defaults(func=run)


def _row(result: BenchResult, mode: str, channels_last: str, compiled: str) -> str:
    peak = result.peak_memory_mib
    return (
        f"{mode:<10} {result.batch:>5} {result.precision:>9} {channels_last:>9} {compiled:>8} "
        f"{result.timing.median * 1e3:>10.1f} {result.images_per_second:>8.2f} "
        f"{'-' if peak is None else f'{peak:.0f}':>9}  {result.runtime}"
    )


def _precisions(args: argparse.Namespace, device: torch.device) -> list[tuple[bool, str | None]]:
    """fp32 and the AMP precisions that differ from it on ``device`` (fp16 AMP runs in fp32 on
    a CPU, so it is not timed twice)."""
    from ssformer.engine.execution import autocast_dtype

    precisions: list[tuple[bool, str | None]] = [(False, None)]
    seen = set()
    for dtype in [] if args.no_amp else args.amp_dtypes or [None]:
        resolved = autocast_dtype(device, True, dtype)
        if resolved is not None and resolved not in seen:
            seen.add(resolved)
            precisions.append((True, dtype))
    return precisions


def _torch_rows(
    args: argparse.Namespace, device: torch.device, build: Callable[[], nn.Module]
) -> Iterator[str]:
    """Rows of the torch runtime: every mode, precision, memory format (and compiled)."""
    from ssformer.benchmark import measure

    precisions = _precisions(args, device)
    for mode in args.modes:
        batch = args.batch if mode == "inference" else args.train_batch
        variants = [(p, cl, False) for p in precisions for cl in (False, True)]
        if args.compile and mode == "inference":
            variants += [(p, True, True) for p in precisions]
        for (amp, amp_dtype), channels_last, compiled in variants:
            model = build()
            result = measure(
                model,
                mode=mode,
                batch=batch,
                size=args.size,
                device=device,
                amp=amp,
                channels_last=channels_last,
                warmup=max(args.warmup, 1) if compiled else args.warmup,
                repeats=args.repeats,
                compile=compiled,
                amp_dtype=amp_dtype,
            )
            yield _row(result, mode, "on" if channels_last else "off", "yes" if compiled else "no")
            del model


def _exported_rows(
    args: argparse.Namespace, runtimes: list[str], build: Callable[[], nn.Module] | None
) -> Iterator[str]:
    """Inference rows of ONNX Runtime / OpenVINO: the export given as --weights, else the
    model exported once to ONNX (in a temporary folder) and run by each runtime."""
    from ssformer.benchmark import measure_exported
    from ssformer.deploy.runtimes import export_for_runtime, open_export

    exported: dict[str, nn.Module] = {}
    for runtime in runtimes:
        if args.weights is not None and args.weights.suffix.lower() in (".onnx", ".xml"):
            exported[runtime] = open_export(args.weights, runtime, args.threads)
        elif not exported:
            assert build is not None
            exported[runtime] = export_for_runtime(
                build(),
                runtime,
                (args.size, args.size),
                source=str(args.weights or f"a random {args.name}"),
                threads=args.threads,
            )
        else:
            first = next(iter(exported.values()))
            exported[runtime] = open_export(first.path, runtime, args.threads)
    for model in exported.values():
        result = measure_exported(
            model, batch=args.batch, size=args.size, warmup=args.warmup, repeats=args.repeats
        )
        yield _row(result, "inference", "-", "-")


def run(args: argparse.Namespace) -> int:
    import torch

    from ssformer.deploy.runtimes import exported_info, resolve_runtime
    from ssformer.engine.execution import resolve_device
    from ssformer.errors import ConfigError
    from ssformer.models import build_model, load_model

    for option in ("batch", "train_batch", "size", "repeats"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    source = args.weights or Path("random.pth")  # a random model runs like a checkpoint
    runtimes = [resolve_runtime(source, r) for r in args.runtime or [None]]
    info = exported_info(args.weights) if args.weights is not None else None
    if args.weights is None:
        build = lambda: build_model(args.name, args.backbone, num_classes=args.classes).fuse()  # noqa: E731
    elif info is None:
        build = lambda: load_model(args.weights)  # noqa: E731
    else:
        build = None
    probe = build() if build is not None else None
    name = f"{probe.name} on {probe.backbone_name}" if probe else f"{info.model} on {info.backbone}"
    del probe
    print(
        f"{name}, {args.size}x{args.size}, device {device}, {torch.get_num_threads()} CPU "
        f"threads, torch {torch.__version__}; runtimes {', '.join(dict.fromkeys(runtimes))}"
    )
    print(
        f"{'mode':<10} {'batch':>5} {'precision':>9} {'chan-last':>9} {'compiled':>8} "
        f"{'median ms':>10} {'img/s':>8} {'peak MiB':>9}  runtime"
    )
    others = [r for r in dict.fromkeys(runtimes) if r != "torch"]
    rows: list[Iterator[str]] = []
    planned = len(others)
    if "torch" in runtimes:
        rows.append(_torch_rows(args, device, build))
        precisions = len(_precisions(args, device))
        planned += len(args.modes) * precisions * 2
        planned += precisions if args.compile and "inference" in args.modes else 0
    if others:
        rows.append(_exported_rows(args, others, build))
    progress = _Progress(planned, args.warmup + args.repeats)
    for line in itertools.chain(*rows):
        print(line, flush=True)
        progress.row_done()
    return 0


class _Progress:
    """Says on stderr how many measurements a ``bench`` call makes and, after each one, how
    long the rest should take (the mean time per row so far: train rows take longer)."""

    def __init__(self, planned: int, calls: int) -> None:
        self.planned, self.done, self.start = planned, 0, time.monotonic()
        print(
            f"{planned} measurement(s) of {calls} call(s) each; a quick look: --modes inference "
            "--repeats 2 --no-amp",
            file=sys.stderr,
            flush=True,
        )

    def row_done(self) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        left = max(self.planned - self.done, 0) * elapsed / self.done
        print(
            f"  [{self.done}/{self.planned} in {elapsed:.0f} s; about {left:.0f} s left]",
            file=sys.stderr,
            flush=True,
        )
