"""Test-only entry point: the ``ssformer`` command line with a training step that stalls.

``python tests/stalling_cli.py EPOCH:STEP MARKER ARGS...`` runs ``ssformer ARGS...`` with a
step callback (:func:`ssformer.engine.train.run_training`'s ``on_step``): after optimiser step
STEP of epoch EPOCH (both 1-based) it writes the file MARKER and sleeps, so that a test can kill
the process in the middle of an epoch, as a machine that goes away would.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

from ssformer.cli import main
from ssformer.engine import train


def stall_at(epoch: int, step: int, marker: Path):  # -> StepCallback
    def callback(at_epoch: int, at_step: int) -> None:
        if (at_epoch, at_step) == (epoch, step):
            marker.write_text(f"{epoch}:{step}\n")
            time.sleep(3600)

    return callback


if __name__ == "__main__":
    point, marker, *args = sys.argv[1:]
    epoch, step = (int(part) for part in point.split(":"))
    # commands (train, sweep) look run_training up when they run: they get the stalling one
    train.run_training = functools.partial(
        train.run_training, on_step=stall_at(epoch, step, Path(marker))
    )
    sys.exit(main(args))
