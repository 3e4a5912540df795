"""Training: :func:`run_training` is one run, read top to bottom as its list of steps.

The layout follows MAE (``main_*`` sets up, ``engine_*`` holds ``train_one_epoch`` /
``evaluate``: here :mod:`ssformer.engine.epoch` and :mod:`ssformer.engine.evaluate`) and nanoGPT
(a train step readable top to bottom; checkpoints with model, optimiser, step, config and best
metric: :mod:`ssformer.engine.training_state`).

Run folder: every run writes into a new folder
``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>/<YYYYmmdd-HHMMSS>[-N]`` (never another run's):
``config.yaml`` (merged), ``train.log``, ``metrics.jsonl`` / ``metrics.csv`` (one row per epoch:
``epoch``, ``lr``, ``train_loss``, ``val/<metric>``, times), ``tensorboard/`` (if installed),
``last.pth`` (resumable state, every epoch), ``best.pth`` (best weights, in the model checkpoint
format that :func:`ssformer.load_weights` reads) and ``eval_test*.json`` (the best weights scored
on the test split(s) at the end). Also:

- ``<LOG_DIR or SAVE_DIR/logs_txt>/<DATASET.NAME>.log``: one line per event of every run on that
  dataset (the reproduction study's ``output/logs_txt/...log``), each naming its run folder;
- ``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>.pth``: a copy of ``best.pth`` where the study's
  ``EVAL.MODEL_PATH`` expects it, published under a lock (:mod:`ssformer.engine.study_weights`):
  a file of another run there is renamed to ``<stem>.<its modification time>.pth`` (logged),
  never overwritten; a resumed run publishes its ``best.pth`` again.

A start that fails before the first epoch (bad data, a config the model cannot be built from)
leaves no run folder behind: the folder it created is removed with the files it wrote there
(the error is in the console and the data set's shared log). ``--resume`` first checks the new
config against the stored one (:mod:`ssformer.engine.resume_rules`) and refuses, before any file
is written, a change the training state cannot follow. Files are written atomically; a failed
write ends the run with :class:`~ssformer.errors.StorageError` (path, reason, free space), in
``train.log`` too, with ``last.pth`` and ``best.pth`` as they were; temporary files of writers
killed mid-write are removed when the run is resumed.

Model selection: every ``TRAIN.EVAL_INTERVAL`` epochs (and after the last) the model is scored on
the validation split (``split`` protocol) or on the held-out part of the PraNet TrainDataset
(``pranet``); the best epoch maximises :func:`selection_metric`: ``mIoU_2cls`` for 2-class
softmax models (the reproduction study's criterion) and ``Dice@0.5`` for 1-class sigmoid models. ``TRAIN.SELECT_ON: test`` (only with
``TRAIN.SELECT_BEST_ON_TEST_LEAKS: true``) selects on the test split(s) instead, as the official
repository did; that leaks test data into model selection.

Reproducibility: the run seeds Python, NumPy and torch with ``SEED + rank``, gives the training
DataLoader its own seeded generator and seeds worker processes from it; on CPU it asks for
deterministic algorithms. ``--resume`` restores model, optimiser, scheduler, AMP scaler and all
random states from ``last.pth`` and replays the interrupted epoch from its start, so the final
weights equal those of an uninterrupted run (see :mod:`ssformer.engine.training_state`).

A non-finite loss, or weights that became non-finite in an epoch's last step, stop the run (on
every rank) with :class:`~ssformer.engine.epoch.NonFiniteLossError`, naming the loss and the
learning rate and, if there is one, the ``last.pth`` that holds the last good epoch.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ssformer import run_files
from ssformer.config import save_config
from ssformer.data.check import check_dataset
from ssformer.data.datasets import innermost
from ssformer.data.protocols import ProtocolData, build_datasets
from ssformer.data.study_augment import STUDY_AUGMENT_VERSION
from ssformer.engine.distributed import (
    DistContext,
    all_gather_objects,
    barrier,
    broadcast_object,
    cleanup_distributed,
    setup_distributed,
)
from ssformer.engine.epoch import EpochStats, NonFiniteLossError, StepCallback, train_one_epoch
from ssformer.engine.evaluate import (
    EvalOutput,
    NonFiniteOutputError,
    evaluate,
    write_eval_json,
)
from ssformer.engine.optim import (
    build_optimizer,
    build_scheduler_from_config,
    current_lr,
    fused_adamw_available,
)
from ssformer.engine.resume_rules import check_resumable, config_changes
from ssformer.engine.runlog import NullLogger, RunLogger
from ssformer.engine.runtime import (
    config_autocast_dtype,
    resolve_device,
    resolve_workers,
    seed_everything,
    seed_worker,
)
from ssformer.engine.study_weights import publish_best, where_weights_are
from ssformer.engine.training_state import (
    TrainingState,
    capture_rng_state,
    find_resume_run,
    load_training_state,
)
from ssformer.errors import ConfigError, DataError, SSFormerError, StorageError
from ssformer.io.atomic import remove_stale_temporaries, storage_error
from ssformer.losses import build_loss
from ssformer.models import load_weights, model_from_config, save_checkpoint_file
from ssformer.models.sizes import sizes_from_config

if TYPE_CHECKING:
    from ssformer.config import Config, MSFConfig

__all__ = ["RunResult", "experiment_dir", "make_run_dir", "run_training", "selection_metric"]


@dataclass
class RunResult:
    """Outcome of :func:`run_training` (on rank 0; other ranks get the same fields)."""

    run_dir: Path
    best_metric: float | None
    best_metric_name: str
    best_epoch: int | None
    epochs_done: int
    global_step: int
    best_path: Path | None
    last_path: Path
    compat_path: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    test_results: dict[str, dict[str, float]] = field(default_factory=dict)
    stop_reason: str | None = None
    seconds: float = 0.0


# ----------------------------------------------------------------------------- the run


def run_training(
    config: Config,
    *,
    resume: str | Path | None = None,
    progress: bool | None = None,
    echo: TextIO | str | None = "stdout",
    on_step: StepCallback | None = None,
) -> RunResult:
    """Train ``config`` in a new run folder (or continue the run given by ``resume``).

    ``resume``: a run folder, its ``last.pth``, or ``"last"`` (the newest run of this
    model/backbone/dataset under ``SAVE_DIR``). Under torchrun with ``TRAIN.DDP: true`` every
    process calls this; rank 0 writes. ``on_step(epoch, step)`` is called after every
    optimiser step. Returns a :class:`RunResult`.
    """
    ctx = setup_distributed(config.train.ddp, resolve_device(config.device))
    try:
        seed_everything(config.seed + ctx.rank, deterministic=ctx.device.type == "cpu")
        run_dir, saved = _open_run_folder(config, ctx, resume)
        logger = _logger(run_dir, config, ctx, echo, new_run=saved is None)
        phase = _Phase()
        try:
            show_progress = _default_progress(ctx) if progress is None else progress
            return _train(config, ctx, run_dir, saved, logger, show_progress, phase, on_step)
        except BaseException as error:
            if isinstance(error, SSFormerError):
                # into the logs only: the caller (the CLI) prints the error once, on stderr
                logger.log(f"error: {error}", echo=False)
            if saved is None and not phase.training and ctx.is_main:
                logger.log(
                    "the run stopped before its first step: its folder is removed", echo=False
                )
                logger.close()
                _remove_unstarted_run(run_dir)
            raise
        finally:
            logger.close()
    finally:
        cleanup_distributed(ctx)


@dataclass
class _Phase:
    """How far a run got: ``training`` once its first epoch starts; ``started``: its clock."""

    started: float = field(default_factory=time.monotonic)
    training: bool = False


def _logger(
    run_dir: Path, config: Config, ctx: DistContext, echo: TextIO | str | None, new_run: bool
) -> RunLogger | NullLogger:
    """The run's logger (rank 0); a new run folder that cannot be written is removed again."""
    if not ctx.is_main:
        return NullLogger()
    try:
        return RunLogger(run_dir, _shared_log_path(config), echo=echo)
    except OSError as error:
        if new_run:
            _remove_unstarted_run(run_dir)
        raise storage_error(error.filename or run_dir, error) from error


def _remove_unstarted_run(run_dir: Path) -> None:
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


@dataclass
class _Run:
    """What a run sets up once and every epoch uses."""

    config: Config
    ctx: DistContext
    run_dir: Path
    logger: RunLogger | NullLogger
    data: ProtocolData
    select: dict[str, Any]  # the set(s) the best epoch is selected on
    workers: int
    amp_dtype: torch.dtype | None
    metric_name: str
    compat_path: Path  # the study's SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>.pth

    def log(self, message: str) -> None:
        self.logger.log(message)


def _train(
    config: Config,
    ctx: DistContext,
    run_dir: Path,
    saved: dict[str, Any] | None,
    logger: RunLogger | NullLogger,
    progress: bool,
    phase: _Phase,
    on_step: StepCallback | None,
) -> RunResult:
    """The steps of one run, in order."""
    device = ctx.device
    _announce(config, ctx, run_dir, saved, logger.log)

    # data: rank 0 checks the files (every image decoded once), everyone builds the loaders
    data = _load_data(config, ctx, logger.log)
    _fill_training_cache(data.train, ctx, logger.log)
    select = data.test if config.train.select_on == "test" else data.val
    loader, sampler, generator = _training_loader(data.train, config, ctx)
    workers = resolve_workers(config, device, ctx.world_size)
    logger.log(_data_line(data, select, len(loader), workers))

    # model, loss, optimiser, schedule, AMP: the training state
    model = _model_on_device(config, ctx)
    loss_fn = _loss(config).to(device)
    amp_dtype = config_autocast_dtype(config, device)
    state = _training_state(model, generator, config, device, len(loader), amp_dtype)
    run = _Run(
        config=config,
        ctx=ctx,
        run_dir=run_dir,
        logger=logger,
        data=data,
        select=select,
        workers=workers,
        amp_dtype=amp_dtype,
        metric_name=selection_metric(config),
        compat_path=config.best_checkpoint_path,
    )
    run.log(_model_line(config, model, amp_dtype, select, run.metric_name))
    if config.train.amp and amp_dtype is None:
        run.log(f"TRAIN.AMP ignored on {device.type}: fp32 (set TRAIN.AMP_DTYPE=bfloat16 to force)")
    if saved is not None:
        _resume(state, saved, run)
    train_model = _wrapped_for_training(model, config, ctx)  # after loading plain weights

    # the epochs: train, select on the validation set, save last.pth (and best.pth)
    limit = config.train.time_limit_min
    deadline = phase.started + limit * 60 if limit else None
    stop_reason = None
    phase.training = True
    for epoch in range(state.progress.epoch + 1, config.train.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        _start_epoch(loader.dataset)
        stop_reason = _train_epoch(
            run, state, train_model, loader, loss_fn, epoch, progress, deadline, on_step
        )
        if stop_reason is not None:
            run.log(f"stopping after epoch {epoch}: {stop_reason}")
            break

    # the best weights on the test split(s)
    test_results = _score_test(run, model, state.progress.best_epoch)
    return _result(run, state, test_results, stop_reason, time.monotonic() - phase.started)


def _train_epoch(
    run: _Run,
    state: TrainingState,
    train_model: nn.Module,
    loader: DataLoader,
    loss_fn: nn.Module,
    epoch: int,
    progress: bool,
    deadline: float | None,
    on_step: StepCallback | None,
) -> str | None:
    """One epoch: train, validate when due, save ``last.pth`` (and ``best.pth``), log; returns
    why the run stops early, if it does."""
    config, ctx, done = run.config, run.ctx, state.progress
    lr = current_lr(state.optimizer)
    max_steps = config.train.max_steps
    with _divergence_explained(run, state, epoch):
        stats = train_one_epoch(
            train_model,
            loader,
            loss_fn,
            state.optimizer,
            state.scheduler,
            state.scaler,
            ctx,
            epoch=epoch,
            epochs=config.train.epochs,
            amp_dtype=run.amp_dtype,
            channels_last=config.train.channels_last,
            log=run.log,
            progress=progress,
            max_steps=max_steps - done.global_step if max_steps else None,
            deadline=deadline,
            on_step=on_step if ctx.is_main else None,
            run_eta=_run_eta(done.history, config.train.epochs - epoch + 1, deadline),
        )
        _check_weights_finite(state.model, epoch, stats)
    done.global_step += stats.steps
    if getattr(state.scheduler, "interval", "epoch") == "epoch":
        state.scheduler.step()
    row = _epoch_row(epoch, lr, stats, done.global_step)
    is_best = False
    due = epoch % config.train.eval_interval == 0 or epoch == config.train.epochs
    if due or stats.stop_reason is not None:
        with _divergence_explained(run, state, epoch):
            is_best = _validate(run, state, row, epoch)
    row["best_epoch"] = done.best_epoch
    done.history.append(row)
    done.epoch = epoch
    _save_epoch(run, state, is_best)
    if ctx.is_main:
        run.logger.log_metrics(row)
        line = _epoch_line(
            epoch, config.train.epochs, stats, lr, row, state, run.metric_name, is_best
        )
        eta = _run_eta(done.history, config.train.epochs - epoch, deadline)
        run.log(line + (f"; run ETA {eta}" if eta and stats.stop_reason is None else ""))
    barrier(ctx)
    return stats.stop_reason


def _check_weights_finite(model: nn.Module, epoch: int, stats: EpochStats) -> None:
    """:class:`NonFiniteLossError` when the epoch's last optimiser step left non-finite weights
    (its loss was finite, so the per-step check could not see it)."""
    if all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return
    raise NonFiniteLossError(
        f"the weights became NaN or infinite in the last optimiser step of epoch {epoch} (mean "
        f"loss {stats.loss:.4g}, learning rate {stats.last_lr:.3g}): the training diverged"
    )


@contextlib.contextmanager
def _divergence_explained(run: _Run, state: TrainingState, epoch: int) -> Iterator[None]:
    """A :class:`NonFiniteLossError` completed with what is kept and what to do."""
    try:
        yield
    except (NonFiniteLossError, NonFiniteOutputError) as error:
        last = run.run_dir / run_files.LAST
        kept = (
            f"{last} keeps epoch {state.progress.epoch}, the last good one"
            if last.is_file() and state.progress.epoch > 0
            else "no epoch finished, so there is no last.pth to resume from"
        )
        lower = f"{run.config.optimizer.lr / 10:g}"
        source = run.config.source
        raise NonFiniteLossError(
            f"{error}. {kept}. Start again with a lower learning rate (`ssformer train --cfg "
            f"{source} --set OPTIMIZER.LR={lower}`), TRAIN.AMP off, or a check of the data "
            f"(`ssformer check-data {run.config.dataset.root}`)"
        ) from error


def _start_epoch(dataset: Any) -> None:
    """Reset the per-epoch state of the training transform (the study's enhancement order)."""
    start = getattr(getattr(innermost(dataset)[0], "transform", None), "start_epoch", None)
    if start is not None:
        start()


def _result(
    run: _Run,
    state: TrainingState,
    test_results: dict[str, dict[str, float]],
    stop_reason: str | None,
    seconds: float,
) -> RunResult:
    """The run's closing log line and its :class:`RunResult`."""
    done = state.progress
    best_path = run.run_dir / run_files.BEST
    best = "n/a" if done.best_metric is None else f"{done.best_metric:.4f}"
    weights = where_weights_are(best_path, run.compat_path, run.run_dir)
    run.log(
        f"run finished in {seconds:.1f} s: best {run.metric_name} {best} at epoch "
        f"{done.best_epoch}; {weights}"
    )
    return RunResult(
        run_dir=run.run_dir,
        best_metric=done.best_metric,
        best_metric_name=run.metric_name,
        best_epoch=done.best_epoch,
        epochs_done=done.epoch,
        global_step=done.global_step,
        best_path=best_path if best_path.is_file() else None,
        last_path=run.run_dir / run_files.LAST,
        compat_path=run.compat_path if run.compat_path.is_file() else None,
        history=done.history,
        test_results=test_results,
        stop_reason=stop_reason,
        seconds=seconds,
    )


# ----------------------------------------------------------------------------- set-up steps


def selection_metric(config: Config) -> str:
    """The validation metric that picks the best epoch (see the module docstring)."""
    return "Dice@0.5" if config.model.num_classes == 1 else "mIoU_2cls"


def experiment_dir(config: Config) -> Path:
    """``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>``: the folder holding this model's runs."""
    return Path(config.save_dir) / config.run_name


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


def _shared_log_path(config: Config) -> Path:
    return config.resolved_log_dir / f"{config.dataset.name}.log"


def _default_progress(ctx: DistContext) -> bool:
    return ctx.is_main and sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ


def _open_run_folder(
    config: Config, ctx: DistContext, resume: str | Path | None
) -> tuple[Path, dict[str, Any] | None]:
    """The run folder (rank 0 decides, everyone learns it) and, on resume, its ``last.pth``."""
    run_dir: Path | None = None
    if ctx.is_main:
        if resume is not None:
            run_dir = find_resume_run(str(resume), experiment_dir(config))
        else:
            run_dir = make_run_dir(experiment_dir(config))
    run_dir = Path(broadcast_object(ctx, str(run_dir.resolve()) if run_dir else None))
    saved = None
    if resume is not None:
        saved = load_training_state(run_dir / run_files.LAST)
        check_resumable(saved.get("config") or {}, config, run_dir)
    return run_dir, saved


def _announce(
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


def _load_data(config: Config, ctx: DistContext, log: Callable[[str], None]) -> ProtocolData:
    """Rank 0 checks the dataset's files (its error reaches every rank; the decoding rules that
    some files needed are logged), then the datasets."""
    problem = None
    root = Path(config.dataset.root)
    if ctx.is_main and root.is_dir():
        try:
            report = check_dataset(root)
            report.raise_if_broken()
            for line in report.note_lines():
                log(line)
            if report.warnings:
                log(
                    f"warning: the data check found {len(report.warnings)} thing(s) to look at "
                    f"(e.g. {report.warnings[0]}); `ssformer check-data {root}` lists them all"
                )
        except DataError as error:
            problem = str(error)
    problem = broadcast_object(ctx, problem)
    if problem is not None:
        raise DataError(problem)
    return build_datasets(config)


def _fill_training_cache(
    dataset: Dataset | None, ctx: DistContext, log: Callable[[str], None]
) -> None:
    """Decode the training pairs into their pair cache on disk before epoch 1, one thread per
    CPU (with 0 loader workers epoch 1 would decode them one at a time); single-process runs
    only, and not a cache in memory (loader workers started by spawn would each get a copy)."""
    inner = innermost(dataset)[0] if dataset is not None else None
    cache = getattr(inner, "cache", None)
    if ctx.enabled or cache is None or cache.folder is None:
        return
    started = time.perf_counter()
    decoded = cache.fill(inner.pairs)
    if decoded:
        seconds = time.perf_counter() - started
        log(f"data cache: decoded {decoded} training pairs in {seconds:.1f} s")


def _training_loader(
    dataset: Dataset | None, config: Config, ctx: DistContext
) -> tuple[DataLoader, DistributedSampler | None, torch.Generator]:
    """The shuffled training loader with its own seeded generator (and sampler under DDP)."""
    assert dataset is not None  # build_datasets(config) always has a training set
    generator = torch.Generator()
    sampler = None
    if ctx.enabled:
        sampler = DistributedSampler(
            dataset, ctx.world_size, ctx.rank, shuffle=True, seed=config.seed, drop_last=True
        )
        generator.manual_seed(config.seed + ctx.rank)
    else:
        generator.manual_seed(config.seed)
    per_rank = len(dataset) // ctx.world_size
    loader = DataLoader(
        dataset,
        batch_size=config.train.batch_size,
        shuffle=None if ctx.enabled else True,
        sampler=sampler,
        num_workers=resolve_workers(config, ctx.device, ctx.world_size),
        pin_memory=ctx.device.type == "cuda",
        drop_last=per_rank >= config.train.batch_size,
        generator=generator,
        worker_init_fn=seed_worker,
        persistent_workers=False,
    )
    return loader, sampler, generator


def _data_line(data: ProtocolData, select: dict[str, Any], steps: int, workers: int) -> str:
    def sets(named: dict[str, Any]) -> str:
        return ", ".join(f"{k} ({len(v)})" for k, v in named.items())

    missing = data.missing_note()
    return (
        f"data: {len(data.train)} training images, model selection on {sets(select)}, test on "
        f"{sets(data.test)}; {steps} steps/epoch, {workers} workers"
        + (f"\n{missing}" if missing else "")
    )


def _model_on_device(config: Config, ctx: DistContext) -> nn.Module:
    model = model_from_config(config).to(ctx.device)
    if ctx.enabled and config.train.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _loss(config: Config) -> nn.Module:
    weights = config.loss.cls_weights
    return build_loss(
        config.loss.name,
        int(config.model.num_classes or 1),
        ignore_label=config.dataset.ignore_label,
        cls_weights=list(weights) if isinstance(weights, tuple) else None,
        double_sigmoid=config.train.official_double_sigmoid,
    )


def _training_state(
    model: nn.Module,
    generator: torch.Generator,
    config: Config,
    device: torch.device,
    steps_per_epoch: int,
    amp_dtype: torch.dtype | None,
) -> TrainingState:
    """Optimiser (torch's fused AdamW where it has one), schedule and AMP scaler of ``model``."""
    optimizer = build_optimizer(
        model,
        config.optimizer.name,
        config.optimizer.lr,
        config.optimizer.weight_decay,
        fused=fused_adamw_available(device) or None,
    )
    scheduler = build_scheduler_from_config(
        config.scheduler,
        optimizer,
        epochs=config.train.epochs,
        iters_per_epoch=max(1, steps_per_epoch),
    )
    fp16 = device.type == "cuda" and amp_dtype == torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)
    return TrainingState(model, optimizer, scheduler, scaler, generator)


def _model_line(
    config: Config,
    model: nn.Module,
    amp_dtype: torch.dtype | None,
    select: dict[str, Any],
    metric_name: str,
) -> str:
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return (
        f"model {config.model.name} on {config.model.backbone}, "
        f"{int(config.model.num_classes or 1)} output channel(s), {params:.2f} M parameters, "
        f"pretrained: {config.model.pretrained or 'no'}; loss {config.loss.name}; AMP "
        f"{amp_dtype or 'off'}; best epoch by {'/'.join(select)} {metric_name}"
    )


def _resume(state: TrainingState, saved: dict[str, Any], run: _Run) -> None:
    """Put ``last.pth`` back into the training state; say what could not be restored."""
    ctx, config = run.ctx, run.config
    if not state.restore(saved, ctx.rank, ctx.world_size):
        held = len(saved.get("rng_states") or [])
        run.log(
            f"warning: {run_files.LAST} holds random states of {held} process(es), "
            f"this run has {ctx.world_size}; reseeding (the resumed run will differ)"
        )
        deterministic = ctx.device.type == "cpu"
        seed_everything(config.seed + ctx.rank + state.progress.epoch + 1, deterministic)
    if config.train.augment == "study" and saved.get("augmentation") != STUDY_AUGMENT_VERSION:
        run.log(
            f"warning: this run's TRAIN.AUGMENT={config.train.augment} is now the study's exact "
            "augmentation; the epochs before the resume used an approximation of it"
        )
    run.logger.restore_rows(state.progress.history)
    _follow_new_epochs(state, saved, run)
    changed = config_changes(saved.get("config") or {}, config.to_dict())
    if changed:
        run.log(f"note: the config differs from the checkpoint's in {', '.join(changed)}")
    for stale in remove_stale_temporaries(run.run_dir):
        run.log(f"removed {stale.name}, left by a write that was killed")
    best_file = run.run_dir / run_files.BEST
    if ctx.is_main and best_file.is_file():
        publish_best(best_file, run.compat_path, run.run_dir, run.log)
    run.log(f"resumed from {run.run_dir / run_files.LAST}: {state.progress.epoch} epoch(s) done")


def _follow_new_epochs(state: TrainingState, saved: dict[str, Any], run: _Run) -> None:
    """Say so when ``TRAIN.EPOCHS`` changed on resume: the schedule (built from the new config;
    its settings are not in ``last.pth``) goes on as in a run of the new length."""
    before = (saved.get("config") or {}).get("TRAIN", {}).get("EPOCHS")
    epochs = run.config.train.epochs
    if before is not None and before != epochs:
        run.log(
            f"warning: TRAIN.EPOCHS changed from {before} to {epochs} on resume: the "
            f"{run.config.scheduler.name} schedule goes on as in a run of {epochs} epochs; lr "
            f"for the next step {current_lr(state.optimizer):.3g}"
        )


def _augmentation_version(config: Config) -> str:
    """The version of the training augmentation recorded in ``last.pth``."""
    return STUDY_AUGMENT_VERSION if config.train.augment == "study" else ""


def _wrapped_for_training(model: nn.Module, config: Config, ctx: DistContext) -> nn.Module:
    """DDP and ``torch.compile`` wrappers (the plain model is what gets saved)."""
    if ctx.enabled:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if config.train.compile:
        model = torch.compile(model)
    return model


# ----------------------------------------------------------------------------- epoch steps


def _run_eta(history: list[dict[str, Any]], epochs_left: int, deadline: float | None = None) -> str:
    """The time the run still needs: the latest epoch's time (training and validation; a
    resumed run's or a first epoch's cache fill does not weigh on later estimates) times the
    epochs left, capped at ``TRAIN.TIME_LIMIT_MIN``'s deadline (a ``time.monotonic()`` value),
    where the run stops; empty before the first epoch."""
    if not history or epochs_left <= 0:
        return ""
    latest = history[-1]
    seconds = (latest.get("train_time_s", 0.0) + latest.get("eval_time_s", 0.0)) * epochs_left
    limit = ""
    if deadline is not None and deadline - time.monotonic() < seconds:
        seconds, limit = max(deadline - time.monotonic(), 0.0), " (TRAIN.TIME_LIMIT_MIN stops it)"
    hours, rest = divmod(int(seconds), 3600)
    text = f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
    return text + limit


def _epoch_row(epoch: int, lr: float, stats: EpochStats, global_step: int) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": stats.loss,
        "steps": global_step,
        "train_time_s": round(stats.seconds, 3),
        "train_img_per_s": round(stats.images / max(stats.seconds, 1e-9), 2),
    }


def _validate(run: _Run, state: TrainingState, row: dict[str, Any], epoch: int) -> bool:
    """Score the model selection set(s) on rank 0 (into ``row``); whether ``epoch`` is the best
    so far (every rank learns it)."""
    done, ctx = state.progress, run.ctx
    is_best = False
    if ctx.is_main:
        eval_start = time.monotonic()
        wanted = tuple(dict.fromkeys((*run.config.eval.metrics, run.metric_name)))
        outputs = _evaluate_sets(run, state.model, run.select, metrics=wanted, msf=None)
        scores = _mean_over_sets(outputs)
        prefix = "val" if "val" in run.select else "test"
        row.update({f"{prefix}/{k}": v for k, v in scores.items()})
        row["eval_time_s"] = round(time.monotonic() - eval_start, 3)
        value = scores.get(run.metric_name)
        if value is None:
            raise ConfigError(
                f"the selection metric {run.metric_name!r} was not computed; choose "
                f"one of {', '.join(scores)}"
            )
        if math.isfinite(value) and (done.best_metric is None or value > done.best_metric):
            done.best_metric, done.best_epoch, is_best = float(value), epoch, True
    is_best = bool(broadcast_object(ctx, is_best))
    done.best_metric = broadcast_object(ctx, done.best_metric)
    done.best_epoch = broadcast_object(ctx, done.best_epoch)
    return is_best


def _require_run_folder(run: _Run) -> None:
    """Refuse to write into a run folder that was deleted or moved during training: writing
    would recreate it without ``config.yaml``, a folder that ``--resume`` cannot continue."""
    problem = None
    if run.ctx.is_main and not (run.run_dir / run_files.CONFIG).is_file():
        problem = (
            f"the run folder {run.run_dir} was deleted or moved during training (its "
            "config.yaml is gone): stopped without writing last.pth or best.pth into it, so no "
            "partial folder is left; start the run again (the same command without --resume), "
            "or put the folder back and resume it with --resume"
        )
    problem = broadcast_object(run.ctx, problem)
    if problem is not None:
        raise StorageError(problem)


def _save_epoch(run: _Run, state: TrainingState, is_best: bool) -> None:
    """``best.pth`` (serialised once, copied to the study's path) and ``last.pth``."""
    _require_run_folder(run)
    rng_states = all_gather_objects(run.ctx, capture_rng_state(state.generator))
    if not run.ctx.is_main:
        return
    if is_best:
        best_file = save_checkpoint_file(
            run.run_dir / run_files.BEST,
            state.model,
            config=run.config.to_dict(),
            epoch=state.progress.epoch,
            run_dir=str(run.run_dir),
            selection_metric=run.metric_name,
            selection_value=state.progress.best_metric,
            selection_split="/".join(run.select),
            **sizes_from_config(run.config.to_dict()).as_meta(),
        )
        publish_best(best_file, run.compat_path, run.run_dir, run.log)
    state.save(
        run.run_dir / run_files.LAST,
        rng_states=rng_states,
        config=run.config.to_dict(),
        selection_metric=run.metric_name,
        augmentation=_augmentation_version(run.config),
    )


def _epoch_line(
    epoch: int,
    epochs: int,
    stats: EpochStats,
    lr: float,
    row: dict[str, Any],
    state: TrainingState,
    metric_name: str,
    is_best: bool,
) -> str:
    shown = next(
        (
            f" {split} {metric_name} {row[f'{split}/{metric_name}']:.4f}"
            for split in ("val", "test")
            if f"{split}/{metric_name}" in row
        ),
        "",
    )
    best = state.progress.best_metric
    rates = (
        f"{lr:.3g}" if f"{lr:.3g}" == f"{stats.last_lr:.3g}" else f"{lr:.3g}->{stats.last_lr:.3g}"
    )
    return (
        f"epoch {epoch}/{epochs} done: loss {stats.loss:.4f}, lr {rates},{shown} (best "
        f"{'n/a' if best is None else f'{best:.4f}'} at epoch {state.progress.best_epoch}), "
        f"{stats.seconds:.1f} s" + (" [best]" if is_best else "")
    )


def _score_test(run: _Run, model: nn.Module, best_epoch: int | None) -> dict[str, dict[str, float]]:
    """The best weights on the test set(s), on rank 0: ``eval_test*.json`` and a log line each."""
    best_path = run.run_dir / run_files.BEST
    results: dict[str, dict[str, float]] = {}
    if run.ctx.is_main and best_path.is_file():
        load_weights(model, best_path)
        msf = run.config.eval.msf
        for name, output in _evaluate_sets(
            run, model, run.data.test, metrics=None, msf=msf
        ).items():
            results[name] = output.metrics
            write_eval_json(
                run.run_dir / run_files.eval_file_name("test", name),
                split="test",
                dataset=run.config.dataset.name if name == "test" else name,
                weights=best_path,
                output=output,
                msf=msf,
                image_size=run.config.eval.image_size,
                recipe=run.config.eval.recipe,
                epoch=best_epoch,
            )
            shown = ("mDice", "mIoU", "Dice@0.5", "mIoU_2cls", "mDice_2cls")
            summary = ", ".join(f"{k} {v:.4f}" for k, v in output.metrics.items() if k in shown)
            run.log(f"test {name} with best weights (epoch {best_epoch}): {summary}")
    barrier(run.ctx)
    return results


# ----------------------------------------------------------------------------- helpers


def _evaluate_sets(
    run: _Run,
    model: nn.Module,
    datasets: dict[str, Any],
    *,
    metrics: tuple[str, ...] | None,
    msf: MSFConfig | None,
) -> dict[str, EvalOutput]:
    return {
        name: evaluate(
            model,
            dataset,
            run.ctx.device,
            metrics=metrics,
            msf=msf,
            amp_dtype=run.amp_dtype,
            channels_last=run.config.train.channels_last,
            description=name,
            batch_size=run.config.train.batch_size,
            workers=run.workers,
        )
        for name, dataset in datasets.items()
    }


def _mean_over_sets(outputs: dict[str, EvalOutput]) -> dict[str, float]:
    if len(outputs) == 1:
        return dict(next(iter(outputs.values())).metrics)
    keys = next(iter(outputs.values())).metrics.keys()
    return {k: float(np.mean([o.metrics[k] for o in outputs.values()])) for k in keys}
