"""``ssformer bench``: inference latency and train-step throughput of a model."""

from __future__ import annotations

import argparse


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
    parser.add_argument("--size", type=int, default=352, help="input size (352)")
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ssformer.benchmark import measure
    from ssformer.engine.runtime import autocast_dtype, resolve_device
    from ssformer.errors import ConfigError
    from ssformer.models import build_model

    for option in ("batch", "train_batch", "size", "repeats"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    probe = build_model(args.name, args.backbone, num_classes=args.classes)
    # AMP precisions that differ from fp32 on this device (fp16 AMP runs in fp32 on a CPU)
    precisions: list[tuple[bool, str | None]] = [(False, None)]
    seen: set[torch.dtype] = set()
    for dtype in [] if args.no_amp else args.amp_dtypes or [None]:
        resolved = autocast_dtype(device, True, dtype)
        if resolved is not None and resolved not in seen:
            seen.add(resolved)
            precisions.append((True, dtype))
    print(
        f"{probe.name} on {probe.backbone_name}, {args.size}x{args.size}, device {device}, "
        f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}"
    )
    print(
        f"{'mode':<10} {'batch':>5} {'precision':>9} {'chan-last':>9} {'compiled':>8} "
        f"{'median ms':>10} {'img/s':>8} {'peak MiB':>9}"
    )
    for mode in args.modes:
        batch = args.batch if mode == "inference" else args.train_batch
        variants = [(p, cl, False) for p in precisions for cl in (False, True)]
        if args.compile and mode == "inference":
            variants += [(p, True, True) for p in precisions]
        for (amp, amp_dtype), channels_last, compiled in variants:
            model = build_model(args.name, args.backbone, num_classes=args.classes)
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
            peak = result.peak_memory_mib
            print(
                f"{mode:<10} {batch:>5} {result.precision:>9} "
                f"{'on' if channels_last else 'off':>9} {'yes' if compiled else 'no':>8} "
                f"{result.timing.median * 1e3:>10.1f} {result.images_per_second:>8.2f} "
                f"{'-' if peak is None else f'{peak:.0f}':>9}"
            )
            del model
    return 0
