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
from typing import TYPE_CHECKING

from ssformer.commands.predict import add_runtime_argument
from ssformer.commands.train import add_config_arguments

if TYPE_CHECKING:
    from ssformer.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "val",
        help="evaluate weights on a dataset split (every metric, with its convention)",
        description=(
            "Evaluate a checkpoint on DATASET.ROOT's test (default) or val split at the size the "
            "weights were evaluated at (recorded in our checkpoints; --set EVAL.IMAGE_SIZE=[H,W] "
            "for another) and print a table naming each metric's convention. The JSON goes to "
            "the weights' run folder when they lie in one (eval_<split>.json; "
            "eval_<split>_<set>.json per PraNet test set; _msf with MSF; _subset with --metrics; "
            "<weights>_<runtime>_eval_<split>.json for an export), else to "
            "SAVE_DIR/eval/<weights>_<split>.json, or to --out DIR/eval_<split>.json."
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
    weights = Path(args.weights or config.eval.model_path or config.best_checkpoint_path)
    config = replace(config, eval=replace(config.eval, image_size=_val_size(config, weights, args)))

    from ssformer.engine.evaluate import run_evaluation

    msf = config.eval.msf if args.msf is None else replace(config.eval.msf, enable=args.msf)
    run_evaluation(
        config,
        weights=weights,
        split=args.split,
        metrics=args.metrics,
        msf=msf,
        out_dir=args.out,
        compile=args.compile,
        runtime=args.runtime,
        save_maps=args.save_maps,
    )
    return 0


def _val_size(config: Config, weights: Path, args: argparse.Namespace) -> tuple[int, int]:
    """The evaluation size: ``--set EVAL.IMAGE_SIZE``, else the weights' own (recorded in our
    checkpoints, an export's nominal size), else the config's; printed with its source."""
    from ssformer.deploy.runtimes import exported_info
    from ssformer.models.sizes import RecordedSizes, choose_size, overridden, recorded_sizes

    info = exported_info(weights) if weights.is_file() else None
    if info is not None:
        recorded: RecordedSizes | None = RecordedSizes(None, tuple(info.image_size))  # type: ignore[arg-type]
    else:
        recorded = recorded_sizes(weights)
    if recorded is not None and recorded.recipe and recorded.recipe != config.eval.recipe:
        print(
            f"note: the weights were validated with EVAL.RECIPE={recorded.recipe} during "
            f"training; scoring with {config.eval.recipe} (EVAL.RECIPE of {config.source})"
        )
    return choose_size(
        recorded,
        told=overridden(args.overrides, "EVAL.IMAGE_SIZE"),
        told_by="--set EVAL.IMAGE_SIZE",
        configured=tuple(config.eval.image_size),  # type: ignore[arg-type]
        configured_by=f"EVAL.IMAGE_SIZE of {config.source}",
    )
