"""``ssformer sweep``: train a grid of models (see :mod:`ssformer.sweep`)."""

from __future__ import annotations

import argparse
import sys

from ssformer.commands.train import add_overrides_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="train every model/backbone/dataset/seed combination of one or more configs",
        description=(
            "Train each combination of the configs' MODEL.NAME x MODEL.BACKBONE lists (the study's "
            "*-auto.yaml files), for each --cfg (dataset) and each --seeds value, in its own run "
            "folder. Finished runs are skipped (one whose settings changed since, e.g. "
            "TRAIN.EPOCHS, OPTIMIZER.LR or DATASET.ROOT, is trained again and the changes are "
            "named), an interrupted run is resumed, a failed run is reported at the end without "
            "stopping the others. --dry-run says what will happen to each entry. State: "
            "SAVE_DIR/sweep/*.json."
        ),
    )
    parser.add_argument(
        "--cfg", required=True, nargs="+", metavar="FILE", help="config file(s), one per dataset"
    )
    add_overrides_argument(parser)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[], metavar="S", help="repeat the grid per seed"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the plan, each entry's state and what the sweep will do with it; train nothing",
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="with --dry-run: estimate each entry's training time (a reference step timed here, scaled by FLOPs) and name the data and weights it lacks",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssformer.sweep import describe_plan, estimate_costs, plan_sweep, run_sweep

    plan = plan_sweep(args.cfg, args.overrides, args.seeds)
    if args.dry_run:
        estimates = estimate_costs(plan) if args.estimate else None
        print(describe_plan(plan, estimates))
        return 0
    summary = run_sweep(plan, progress=args.progress, echo=sys.stdout)
    print(
        f"sweep: {len(summary.finished)} trained, {len(summary.skipped)} already finished, "
        f"{len(summary.failed)} failed"
    )
    for key, message in summary.failed.items():
        print(f"  failed: {key}: {message}")
    return 0 if summary.ok else 1
