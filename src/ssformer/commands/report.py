"""``ssformer report``: results table, model sizes, training curves and predictions grids."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="tables and figures of trained runs beside the published numbers",
        description=(
            "Read run folders (each with config.yaml, metrics.jsonl, eval_test*.json from "
            "`ssformer val`, best.pth) and write into OUT: results.md/.csv/.png (our test numbers "
            "beside the published number of the same protocol and metric convention, with the "
            "difference), model-sizes.md/.png, curves-<run>.png and predictions-<run>.png."
        ),
    )
    parser.add_argument(
        "runs",
        nargs="+",
        type=Path,
        metavar="RUNS",
        help="run folders, or folders searched recursively for run folders",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("output/report"), help="default: %(default)s"
    )
    parser.add_argument(
        "--png",
        type=Path,
        default=None,
        help="also write the results table image here (README's results.png)",
    )
    parser.add_argument(
        "--no-predictions", action="store_true", help="skip the predictions grids (no model is run)"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=2,
        help="best and worst images per grid (default: %(default)s each)",
    )
    parser.add_argument(
        "--device", default="cpu", help="device for the predictions grids (default: cpu)"
    )
    parser.add_argument(
        "--withdrawn",
        action="store_true",
        help="also compare with published tables their authors withdrew (labelled withdrawn)",
    )
    parser.add_argument(
        "--skip-model-sizes",
        action="store_true",
        help="do not build models to count parameters; show the published sizes only",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssformer.errors import ConfigError
    from ssformer.report import build_report

    if args.samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {args.samples}")
    output = build_report(
        args.runs,
        args.out,
        png=args.png,
        predictions=not args.no_predictions,
        compute_model_sizes=not args.skip_model_sizes,
        samples=args.samples,
        device=args.device,
        include_withdrawn=args.withdrawn,
    )
    flagged = [run for run in output.runs if run.problems]
    print(f"{len(output.runs)} run folder(s) -> {output.out_dir}")
    for path in output.files:
        print(f"  wrote {path}")
    for run in flagged:
        print(f"  flagged {run.name}: {'; '.join(run.problems)}")
    for note in output.notes:
        print(f"  note: {note}")
    return 0
