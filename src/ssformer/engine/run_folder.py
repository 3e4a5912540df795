"""A training run's folder: creating it (or reopening it to resume), its logger, its first line
and ``config.yaml``, removing it when the run stopped before training, and refusing to write
into it once it is gone. The names of the files inside are :mod:`ssformer.run_files`'.

Every run writes into a new folder ``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>/<YYYYmmdd-HHMMSS>[-N]``
(never another run's): ``config.yaml`` (merged), ``train.log``, ``metrics.jsonl`` /
``metrics.csv`` (one row per epoch: ``epoch``, ``lr``, ``train_loss``, ``val/<metric>``, times),
``tensorboard/`` (if installed), ``last.pth`` (resumable state, every epoch), ``best.pth`` (best
weights, in the model checkpoint format that :func:`ssformer.load_weights` reads) and
``eval_test*.json`` (the best weights scored on the test split(s) at the end). Also:

- ``<LOG_DIR or SAVE_DIR/logs_txt>/<DATASET.NAME>.log``: one line per event of every run on that
  dataset (the reproduction study's ``output/logs_txt/...log``), each naming its run folder;
- ``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>.pth``: a copy of ``best.pth`` where the study's
  ``EVAL.MODEL_PATH`` expects it, published under a lock (:mod:`ssformer.engine.study_weights`):
  a file of another run there is renamed to ``<stem>.<its modification time>.pth`` (logged),
  never overwritten; a resumed run publishes its ``best.pth`` again.

A start that fails before the first epoch (bad data, a config the model cannot be built from)
leaves no run folder behind: the folder it created is removed with the files it wrote there
(the error is in the console and the data set's shared log). Files are written atomically; a
failed write ends the run with :class:`~ssformer.errors.StorageError` (path, reason, free
space), in ``train.log`` too, with ``last.pth`` and ``best.pth`` as they were; temporary files
of writers killed mid-write are removed when the run is resumed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ssformer import run_files
from ssformer.config import save_config
from ssformer.engine.distributed import DistContext, broadcast_object
from ssformer.engine.resume_rules import check_resumable
from ssformer.engine.runlog import NullLogger, RunLogger
from ssformer.engine.training_state import find_resume_run, load_training_state
from ssformer.errors import SSFormerError, StorageError
from ssformer.io.atomic import storage_error

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = [
    "announce_run",
    "make_run_dir",
    "open_logger",
    "open_run_folder",
    "remove_unstarted_run",
    "require_run_folder",
]


def make_run_dir(parent: Path) -> Path:
    """Create and return a new, empty run folder ``parent/<YYYYmmdd-HHMMSS>[-N]``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for number in range(1, 1000):
        candidate = parent / (stamp if number == 1 else f"{stamp}-{number}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        except OSError as error:
            raise storage_error(candidate, error) from error
        return candidate
    raise SSFormerError(f"could not create a new run folder under {parent}")


def shared_log_path(config: Config) -> Path:
    return config.resolved_log_dir / f"{config.dataset.name}.log"


def open_logger(
    run_dir: Path, config: Config, ctx: DistContext, echo: TextIO | str | None, new_run: bool
) -> RunLogger | NullLogger:
    """The run's logger (rank 0); a new run folder that cannot be written is removed again."""
    if not ctx.is_main:
        return NullLogger()
    try:
        return RunLogger(run_dir, shared_log_path(config), echo=echo)
    except OSError as error:
        if new_run:
            remove_unstarted_run(run_dir)
        raise storage_error(error.filename or run_dir, error) from error


def remove_unstarted_run(run_dir: Path) -> None:
    """Remove a run folder this process created and that stopped before training: only the
    files a run writes at its start; a folder holding anything else stays."""
    for name in run_files.UNSTARTED:
        (run_dir / name).unlink(missing_ok=True)
    board = run_dir / "tensorboard"
    if board.is_dir() and all(p.name.startswith("events.out.") for p in board.iterdir()):
        for event_file in board.iterdir():
            event_file.unlink()
        board.rmdir()
    for folder in (run_dir, run_dir.parent):  # the model's folder too, if this run made it empty
        try:
            folder.rmdir()
        except OSError:  # not empty (another run, a file of the user): left as it is
            return


def open_run_folder(
    config: Config, ctx: DistContext, resume: str | Path | None
) -> tuple[Path, dict[str, Any] | None]:
    """The run folder (rank 0 decides, everyone learns it) and, on resume, its ``last.pth``."""
    run_dir: Path | None = None
    if ctx.is_main:
        if resume is not None:
            run_dir = find_resume_run(str(resume), config.experiment_dir)
        else:
            run_dir = make_run_dir(config.experiment_dir)
    run_dir = Path(broadcast_object(ctx, str(run_dir.resolve()) if run_dir else None))
    saved = None
    if resume is not None:
        saved = load_training_state(run_dir / run_files.LAST)
        check_resumable(saved.get("config") or {}, config, run_dir)
    return run_dir, saved


def announce_run(
    config: Config,
    ctx: DistContext,
    run_dir: Path,
    saved: dict[str, Any] | None,
    log: Callable[[str], None],
) -> None:
    """``config.yaml`` of a new run, and the run's first log line."""
    if ctx.is_main:
        if saved is None:
            save_config(config, run_dir / run_files.CONFIG)
        log(
            f"{'resuming' if saved else 'starting'} run {run_dir}: {config.run_name}, "
            f"config {config.source}, device {ctx.device}, world size {ctx.world_size}, "
            f"seed {config.seed}"
        )
    if config.train.ddp and not ctx.enabled:
        log("TRAIN.DDP is set but torchrun did not start this process: training in one process")


def require_run_folder(run_dir: Path, ctx: DistContext) -> None:
    """Refuse to write into a run folder that was deleted or moved during training: writing
    would recreate it without ``config.yaml``, a folder that ``--resume`` cannot continue."""
    problem = None
    if ctx.is_main and not run_files.is_run_folder(run_dir):
        problem = (
            f"the run folder {run_dir} was deleted or moved during training (its "
            "config.yaml is gone): stopped without writing last.pth or best.pth into it, so no "
            "partial folder is left; start the run again (the same command without --resume), "
            "or put the folder back and resume it with --resume"
        )
    problem = broadcast_object(ctx, problem)
    if problem is not None:
        raise StorageError(problem)
