"""``ssformer info``: parameters, FLOPs and weight size of a model."""

from __future__ import annotations

import argparse

from ssformer.image_size import PAPER_SIDE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="print parameters, FLOPs and size of a model",
        description=(
            "Build NAME (SSFormer, PLDSegFormer, SegFormer or a preset SSFormer-S/SSFormer-L) "
            "on BACKBONE and print its parameter count, the FLOPs its forward executes at SIZE x SIZE "
            "(torch.utils.flop_counter, a multiply-add = 2 FLOPs) and fp32 weight size."
        ),
    )
    parser.add_argument("name", help="SSFormer, PLDSegFormer, SegFormer, SSFormer-S, SSFormer-L")
    parser.add_argument("--backbone", default=None, help="MiT-B0..B5 or PVTv2-B0..B5")
    parser.add_argument("--classes", type=int, default=1, help="output classes (default 1)")
    parser.add_argument(
        "--size", type=int, default=PAPER_SIDE, help=f"input size for FLOPs ({PAPER_SIDE})"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssformer.benchmark import count_flops, count_parameters, state_dict_megabytes
    from ssformer.errors import ConfigError
    from ssformer.models import build_model

    if args.size < 32:
        raise ConfigError(f"--size must be at least 32, got {args.size}")
    model = build_model(args.name, args.backbone, num_classes=args.classes).fuse()
    params = count_parameters(model)
    backbone_params = count_parameters(model.backbone)
    flops = count_flops(model, size=args.size)
    print(f"model       {model.name} on {model.backbone_name}, {model.num_classes} class(es)")
    print(f"parameters  {params:,} ({params / 1e6:.2f} M; backbone {backbone_params / 1e6:.2f} M)")
    print(f"FLOPs       {flops / 1e9:.2f} G at {args.size}x{args.size} (batch 1, as executed here)")
    print(
        "            (the decoder's fusions run their 1x1 convs before the resizes: same "
        "function, fewer FLOPs than the published code's order)"
    )
    print(f"weights     {state_dict_megabytes(model):.2f} MB (fp32 parameters and buffers)")
    return 0
