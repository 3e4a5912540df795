"""``ssformer check-data``: find broken, unpaired or mismatched files in a dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-data",
        help="check a dataset: unpaired files, undecodable images, size mismatches, empty masks",
        description=(
            "Decode every image and mask under ROOT (an images/+masks/ folder, a split folder or "
            "the PraNet layout) and name each problem. Exit status 1 when there is an error; "
            "warnings (e.g. empty masks) alone exit 0."
        ),
    )
    parser.add_argument("root", type=Path)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssformer.data.check import check_dataset

    report = check_dataset(args.root)
    for problem in report.problems:
        print(problem, file=sys.stderr if problem.severity == "error" else sys.stdout)
    for line in report.note_lines():
        print(line)
    summary = (
        f"{args.root}: {report.pairs} readable pairs, {len(report.errors)} error(s), "
        f"{len(report.warnings)} warning(s)"
    )
    print(summary, file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1
