"""Training: :func:`run_training` is one run, read top to bottom as its list of steps.

The layout follows MAE (``main_*`` sets up, ``engine_*`` holds ``train_one_epoch`` /
``evaluate``: here :mod:`ssformer.engine.epoch` and :mod:`ssformer.engine.evaluate`) and nanoGPT
(a train step readable top to bottom; checkpoints with model, optimiser, step, config and best
metric: :mod:`ssformer.engine.training_state`).

The run folder and its files: :mod:`ssformer.engine.run_folder` (and :mod:`ssformer.run_files`);
the set-up steps: :mod:`ssformer.engine.train_setup`; the log lines: :mod:`ssformer.engine.train_log`.
``--resume`` first checks the new config against the stored one
(:mod:`ssformer.engine.resume_rules`) and refuses, before any file is written, a change the
training state cannot follow.

Model selection (which metric, on which set, when): :mod:`ssformer.engine.selection`.

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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from torch import nn
from torch.utils.data import DataLoader

from ssformer import run_files
from ssformer.data.datasets import innermost
from ssformer.engine.distributed import (
    DistContext,
    all_gather_objects,
    barrier,
    cleanup_distributed,
    setup_distributed,
)
from ssformer.engine.epoch import (
    NonFiniteLossError,
    StepCallback,
    check_weights_finite,
    train_one_epoch,
)
from ssformer.engine.evaluate import (
    NonFiniteOutputError,
    write_eval_json,
)
from ssformer.engine.execution import (
    config_autocast_dtype,
    resolve_device,
    resolve_workers,
    seed_everything,
)
from ssformer.engine.optim import (
    current_lr,
)
from ssformer.engine.run_folder import (
    announce_run,
    open_logger,
    open_run_folder,
    remove_unstarted_run,
    require_run_folder,
)
from ssformer.engine.runlog import NullLogger, RunLogger
from ssformer.engine.selection import evaluate_with_run_settings, selection_metric, validate
from ssformer.engine.study_weights import publish_best, where_weights_are
from ssformer.engine.train_log import (
    data_line,
    default_progress,
    epoch_line,
    epoch_row,
    model_line,
    run_eta,
)
from ssformer.engine.train_setup import (
    TrainingRun,
    augmentation_version,
    fill_training_cache,
    load_data,
    model_on_device,
    new_training_state,
    resume_run,
    training_loader,
    training_loss,
    wrapped_for_training,
)
from ssformer.engine.training_state import (
    TrainingState,
    capture_rng_state,
)
from ssformer.errors import SSFormerError
from ssformer.models import load_weights, save_checkpoint_file
from ssformer.models.sizes import sizes_from_config

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = ["RunResult", "run_training"]


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
        run_dir, saved = open_run_folder(config, ctx, resume)
        logger = open_logger(run_dir, config, ctx, echo, new_run=saved is None)
        phase = _Phase()
        try:
            show_progress = default_progress(ctx) if progress is None else progress
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
                remove_unstarted_run(run_dir)
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
    announce_run(config, ctx, run_dir, saved, logger.log)

    # data: rank 0 checks the files (every image decoded once), everyone builds the loaders
    data = load_data(config, ctx, logger.log)
    fill_training_cache(data.train, ctx, logger.log)
    select = data.test if config.train.select_on == "test" else data.val
    loader, sampler, generator = training_loader(data.train, config, ctx)
    workers = resolve_workers(config, device, ctx.world_size)
    logger.log(data_line(data, select, len(loader), workers))

    # model, loss, optimiser, schedule, AMP: the training state
    model = model_on_device(config, ctx)
    loss_fn = training_loss(config).to(device)
    amp_dtype = config_autocast_dtype(config, device)
    state = new_training_state(model, generator, config, device, len(loader), amp_dtype)
    run = TrainingRun(
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
    run.log(model_line(config, model, amp_dtype, select, run.metric_name))
    if config.train.amp and amp_dtype is None:
        run.log(f"TRAIN.AMP ignored on {device.type}: fp32 (set TRAIN.AMP_DTYPE=bfloat16 to force)")
    if saved is not None:
        resume_run(state, saved, run)
    train_model = wrapped_for_training(model, config, ctx)  # after loading plain weights

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
    run: TrainingRun,
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
            run_eta=run_eta(done.history, config.train.epochs - epoch + 1, deadline),
        )
        check_weights_finite(state.model, epoch, stats)
    done.global_step += stats.steps
    if getattr(state.scheduler, "interval", "epoch") == "epoch":
        state.scheduler.step()
    row = epoch_row(epoch, lr, stats, done.global_step)
    is_best = False
    due = epoch % config.train.eval_interval == 0 or epoch == config.train.epochs
    if due or stats.stop_reason is not None:
        with _divergence_explained(run, state, epoch):
            is_best = validate(run, state, row, epoch)
    row["best_epoch"] = done.best_epoch
    done.history.append(row)
    done.epoch = epoch
    _save_epoch(run, state, is_best)
    if ctx.is_main:
        run.logger.log_metrics(row)
        line = epoch_line(
            epoch, config.train.epochs, stats, lr, row, state, run.metric_name, is_best
        )
        eta = run_eta(done.history, config.train.epochs - epoch, deadline)
        run.log(line + (f"; run ETA {eta}" if eta and stats.stop_reason is None else ""))
    barrier(ctx)
    return stats.stop_reason


@contextlib.contextmanager
def _divergence_explained(run: TrainingRun, state: TrainingState, epoch: int) -> Iterator[None]:
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
    run: TrainingRun,
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


# ----------------------------------------------------------------------------- epoch steps


def _save_epoch(run: TrainingRun, state: TrainingState, is_best: bool) -> None:
    """``best.pth`` (serialised once, copied to the study's path) and ``last.pth``."""
    require_run_folder(run.run_dir, run.ctx)
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
        augmentation=augmentation_version(run.config),
    )


def _score_test(
    run: TrainingRun, model: nn.Module, best_epoch: int | None
) -> dict[str, dict[str, float]]:
    """The best weights on the test set(s), on rank 0: ``eval_test*.json`` and a log line each."""
    best_path = run.run_dir / run_files.BEST
    results: dict[str, dict[str, float]] = {}
    if run.ctx.is_main and best_path.is_file():
        load_weights(model, best_path)
        msf = run.config.eval.msf
        for name, output in evaluate_with_run_settings(
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
