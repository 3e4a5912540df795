"""``ssformer compare``: is the difference between two runs real, or within noise?

``ssformer compare RUN_A RUN_B [--metric M] [--out F.json]``, or with several runs (seeds) per
side ``ssformer compare --a RUN... --b RUN...``. A RUN is a run folder (its ``eval_test*.json``)
or an ``eval_*.json`` written by ``ssformer val``. Prints, per test set, B − A on the shared
images with its 95 % paired bootstrap interval and the Wilcoxon signed-rank p-value, and says in
words whether the difference is distinguishable from noise (:mod:`ssformer.report.compare`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="paired comparison of two runs (or two sets of seeds) on their shared test images",
        description=(
            "Compare run B with run A on the test images both scored (matched by name): the "
            "mean paired difference B - A, its 95 % paired bootstrap interval over the images "
            "and the two-sided Wilcoxon signed-rank p-value (scipy.stats.wilcoxon, defaults). "
            "Several runs per side (seeds): --a RUN... --b RUN..., compared on the per-image "
            "means across seeds. A pooled metric (mIoU_2cls, mDice_2cls) is compared by the "
            "paired bootstrap alone."
        ),
    )
    parser.add_argument(
        "runs", nargs="*", type=Path, metavar="RUN", help="RUN_A RUN_B: run folders or eval JSONs"
    )
    parser.add_argument("--a", nargs="+", type=Path, default=None, metavar="RUN", help="side A")
    parser.add_argument("--b", nargs="+", type=Path, default=None, metavar="RUN", help="side B")
    parser.add_argument(
        "--metric",
        default=None,
        help="a per-image metric (mDice, Dice@0.5, official_dice, ...) or a pooled one "
        "(mDice_2cls, mIoU_2cls); default: mDice, else Dice@0.5",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the result as JSON")
    parser.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the resampling (default: %(default)s)"
    )
    parser.set_defaults(func=run)


def _sides(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    from ssformer.errors import ConfigError

    if args.runs and (args.a or args.b):
        raise ConfigError("give either RUN_A RUN_B or --a RUN... --b RUN..., not both")
    if args.runs:
        if len(args.runs) != 2:
            raise ConfigError(
                f"give two runs (RUN_A RUN_B), got {len(args.runs)}; for several runs per "
                "side use --a RUN... --b RUN..."
            )
        return [args.runs[0]], [args.runs[1]]
    if not args.a or not args.b:
        raise ConfigError("give RUN_A RUN_B, or both --a RUN... and --b RUN...")
    return list(args.a), list(args.b)


def run(args: argparse.Namespace) -> int:
    from ssformer.errors import ConfigError
    from ssformer.io.atomic import write_text_atomic
    from ssformer.report.compare import compare_sides

    side_a, side_b = _sides(args)
    if args.resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {args.resamples}")
    if args.out is not None and args.out.exists():
        raise ConfigError(f"{args.out} exists; choose another --out (results are not overwritten)")
    outcomes = compare_sides(side_a, side_b, args.metric, args.resamples, args.seed)
    print(f"A: {', '.join(map(str, side_a))}\nB: {', '.join(map(str, side_b))}")
    for outcome in outcomes:
        print(outcome.verdict())
        for label, names in (
            ("scored by A only", outcome.only_in_a),
            ("scored by B only", outcome.only_in_b),
            ("not scored by every run", outcome.not_in_every_run),
        ):
            if names:
                shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
                print(f"  left out, {label} ({len(names)}): {shown}")
    if args.out is not None:
        payload = {
            "a": [str(p) for p in side_a],
            "b": [str(p) for p in side_b],
            "resamples": args.resamples,
            "seed": args.seed,
            "comparisons": [outcome.as_dict() for outcome in outcomes],
        }
        if len(outcomes) == 1:  # one test set: its numbers at the top level too
            payload.update(outcomes[0].as_dict())
        write_text_atomic(args.out, json.dumps(payload, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0
