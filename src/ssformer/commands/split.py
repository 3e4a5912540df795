"""``ssformer split``: 80/10/10 train/val/test split identical to ``splitfolders.ratio``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssformer.registry import STUDY_SPLIT_RATIO, STUDY_SPLIT_SEED


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "split",
        help="split an images/+masks/ dataset into train/val/test (as split-folders does)",
        description=(
            "Split ROOT (images/ + masks/) into OUTPUT/{train,val,test}/{images,masks} with "
            "exactly the file lists of splitfolders.ratio(ROOT, OUTPUT, seed, ratio). The "
            "originals stay (hard links or copies); OUTPUT/split.json records the parameters, "
            "file lists, SHA-256 of every file and what data set the files are. Default OUTPUT: "
            "ROOT itself (the split folders go beside images/ and masks/)."
        ),
    )
    parser.add_argument("root", type=Path, help="dataset folder with images/ and masks/")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="default: ROOT itself (ROOT/{train,val,test} beside images/ and masks/, originals kept)",
    )
    parser.add_argument(
        "--ratio", type=float, nargs=3, default=STUDY_SPLIT_RATIO, metavar=("TRAIN", "VAL", "TEST")
    )
    parser.add_argument("--seed", type=int, default=STUDY_SPLIT_SEED)
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify an existing split against its manifest and the source instead of splitting",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssformer.data.split import (
        check_split,
        default_output,
        ignored_warnings,
        split_dataset,
    )

    output = args.output if args.output is not None else default_output(args.root)
    if args.check:
        problems = check_split(output, args.root)
        for problem in problems:
            print(f"MISMATCH {problem}", file=sys.stderr)
        if problems:
            print(f"{output}: {len(problems)} mismatch(es)", file=sys.stderr)
            return 1
        print(f"{output}: split matches its manifest and the source")
        return 0
    result = split_dataset(args.root, output, tuple(args.ratio), args.seed)
    for line in ignored_warnings(args.root):
        print(f"warning: {line}")
    counts = "/".join(str(len(result.files[s])) for s in ("train", "val", "test"))
    for path in result.updated:
        print(f"updated: {path} changed since the split; placed again, manifest updated")
    if result.updated:
        print(f"{result.output}: {len(result.updated)} file(s) updated ({counts} pairs)")
    elif not result.created:
        print(
            f"{result.output}: split already exists with these parameters ({counts}) and matches "
            "its source; nothing to do"
        )
    else:
        print(
            f"{result.output}: wrote train/val/test = {counts} pairs "
            f"({result.linked} files hard-linked, {result.copied} copied)"
        )
    return 0
