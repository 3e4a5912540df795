"""The reproduction study's weights path, ``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>.pth``,
where its ``EVAL.MODEL_PATH`` looks for a model's weights.

That one path is shared by every run of a model on a data set, so a run's best weights reach it
only through :func:`publish_best`:

- under an exclusive lock on ``SAVE_DIR/.<file name>.lock`` (``fcntl.flock``; two runs in one
  ``SAVE_DIR`` at the same time take turns), so checking, renaming and replacing are one step;
- the copy is written to a temporary file first; only when it is complete is a file of another
  run (or of no run of ours) at the path renamed to ``<stem>.<its modification time>.pth``
  (never overwritten, never deleted) and the copy renamed onto the path. A failed copy leaves
  the path as it was;
- a run republishes its ``best.pth`` when it is resumed (so a run resumed after another run took
  the path puts its own best weights back, even when it finds no better epoch).

The path thus holds the best weights of the run that published last; every other run's best
weights are in its run folder (``best.pth``) and, if they were at the path before, in a renamed
copy beside it (each rename is logged).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ssformer.io.atomic import atomic_target
from ssformer.io.checkpoint_file import read_checkpoint

__all__ = ["publish_best", "study_path_owner", "where_weights_are"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock shared by every process that publishes to ``path`` (none where the
    platform has no ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def study_path_owner(path: Path) -> str | None:
    """The run folder recorded in the checkpoint at ``path`` (``None``: missing, unreadable or
    not written by a run of ours)."""
    if not path.is_file():
        return None
    try:
        payload = read_checkpoint(path)
    except Exception:  # unreadable, truncated or foreign: no run of ours
        return None
    meta = payload.get("meta") if isinstance(payload, dict) else None
    owner = meta.get("run_dir") if isinstance(meta, dict) else None
    return owner if isinstance(owner, str) else None


def _set_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    target = path.with_name(f"{path.stem}.{stamp}.pth")
    number = 2
    while target.exists():
        target = path.with_name(f"{path.stem}.{stamp}-{number}.pth")
        number += 1
    os.replace(path, target)
    return target


def publish_best(
    best_file: Path, study_path: Path, run_dir: Path, log: Callable[[str], None]
) -> None:
    """Copy ``best_file`` (``run_dir``'s ``best.pth``) to ``study_path`` as the module
    docstring says."""
    with _locked(study_path), atomic_target(study_path) as tmp:
        shutil.copyfile(best_file, tmp)
        if study_path.exists():
            owner = study_path_owner(study_path)
            if owner != str(run_dir):
                kept = _set_aside(study_path)
                log(f"{study_path} held the weights of {owner or 'another run'}; kept as {kept}")


def where_weights_are(best_file: Path, study_path: Path, run_dir: Path) -> str:
    """The run's closing words on its weights: only files that exist, and whose they are."""
    if not best_file.is_file():
        return "no best weights (no epoch was scored)"
    owner = study_path_owner(study_path)
    if owner == str(run_dir):
        return f"weights {best_file} and {study_path}"
    holder = f"the weights of {owner}" if owner else "another file"
    if not study_path.exists():
        holder = "nothing"
    return f"weights {best_file} ({study_path} holds {holder})"
