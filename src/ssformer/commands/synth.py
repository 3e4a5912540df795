"""``ssformer synth``: write a synthetic polyp dataset in the Kvasir-SEG layout."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ssformer.image_size import PAPER_SIDE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic colonoscopy-like images and polyp masks (Kvasir-SEG layout)",
        description=(
            "Write OUT/images/*.jpg and OUT/masks/*.jpg (0/255 JPEG masks, as in Kvasir-SEG): "
            "textured mucosa, vessels, highlights, lighting fall-off and polyps of varied size, "
            "shape and contrast. Deterministic for a given --seed. For tests, demos and "
            "smoke runs when the real data are not at hand."
        ),
    )
    parser.add_argument("out", type=Path, help="output folder (files are never overwritten)")
    parser.add_argument("--n", type=int, default=200, help="number of pairs (default 200)")
    parser.add_argument(
        "--size", type=int, default=PAPER_SIDE, help=f"image side in pixels (default {PAPER_SIDE})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size-jitter",
        type=float,
        default=0.0,
        help="draw each height and width within size*(1±J), e.g. 0.3 for varied, non-square "
        "images (default 0: all size x size)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssformer.data.synthetic import generate_synthetic_dataset

    start = time.perf_counter()
    out = generate_synthetic_dataset(
        args.out, n=args.n, size=args.size, seed=args.seed, size_jitter=args.size_jitter
    )
    print(f"{out}: wrote {args.n} image/mask pairs in {time.perf_counter() - start:.1f} s")
    return 0
