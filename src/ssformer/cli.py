"""The ``ssformer`` command line: one sub-command per module in :mod:`ssformer.commands`.

Each command module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to
a callable taking the parsed arguments and returning an exit code. Heavy imports (torch) happen
inside those callables so that ``ssformer --help`` and config errors answer at once.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from ssformer import __version__
from ssformer.commands import (
    bench,
    check_data,
    compare,
    demo,
    download,
    export,
    info,
    predict,
    report,
    split,
    sweep,
    synth,
    train,
    val,
)
from ssformer.errors import SSFormerError

COMMAND_MODULES = (
    demo,
    info,
    bench,
    download,
    split,
    synth,
    check_data,
    report,
    compare,
    train,
    val,
    predict,
    export,
    sweep,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssformer",
        description="SSFormer polyp segmentation: data, training, evaluation and reports.",
    )
    parser.add_argument("--version", action="version", version=f"ssformer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def _file_error(error: OSError) -> str:
    """One line for an ``OSError`` no command turned into its own message: the file and the
    reason, and for a failed write the free space."""
    from ssformer.io.atomic import storage_error

    path = error.filename
    if path is None:
        return f"{error.strerror or error}; check the files and folders the command uses"
    if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR) and not os.path.exists(path):
        return f"{path}: {error.strerror}; check the path (a file where a folder is expected?)"
    return str(storage_error(path, error))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SSFormerError as error:
        print(f"ssformer {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file that could not be read or written, outside our checks
        print(f"ssformer {args.command}: error: {_file_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ssformer {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
