"""``ssformer val``: score weights on the validation or test split under every metric convention.

``ssformer val --cfg F [--weights PATH] [--split test|val] [--msf] [--runtime R] [--set ...]``.
Weights may be ours, the official SSFormer's or the reproduction study's (converted by
``load_weights``), or an export (``.onnx`` / ``.xml`` with its sidecar, ``ssformer export``). Under
``DATASET.PROTOCOL: pranet`` the test split is all five PraNet test sets.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ssformer.commands.predict import add_runtime_argument
from ssformer.commands.train import add_config_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "val",
        help="evaluate weights on a dataset split (every metric, with its convention)",
        description=(
            "Evaluate a checkpoint on DATASET.ROOT's test (default) or val split; print a table "
            "naming each metric's convention and write eval_<split>.json (into the weights' run "
            "folder when they lie in one, else SAVE_DIR/eval/)."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--weights", type=Path, default=None, help="default: EVAL.MODEL_PATH")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument(
        "--msf",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="multi-scale + flip TTA (default: EVAL.MSF.ENABLE)",
    )
    parser.add_argument(
        "--metrics", nargs="+", default=None, metavar="NAME", help="subset of metrics"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON file(s)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model first (~1 min; pays for many images of one size)",
    )
    parser.add_argument(
        "--save-maps",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write each test image's 8-bit map as DIR/<test set>/<image stem>.png (grey "
        "PNG at the image's size, as the PraNet toolbox and PySODMetrics scripts read them)",
    )
    add_runtime_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssformer.config import load_config

    config = load_config(args.cfg, args.overrides)

    from ssformer.engine.evaluate import run_evaluation

    msf = config.eval.msf if args.msf is None else replace(config.eval.msf, enable=args.msf)
    run_evaluation(
        config,
        weights=args.weights,
        split=args.split,
        metrics=args.metrics,
        msf=msf,
        out_dir=args.out,
        compile=args.compile,
        runtime=args.runtime,
        save_maps=args.save_maps,
    )
    return 0
