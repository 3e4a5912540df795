"""The set-up steps of a training run (:func:`ssformer.engine.train.run_training`): its data
(checked, cached, loaded), its model on the device, loss, optimiser, schedule and AMP scaler, and
the wrappers it trains through (DDP, ``torch.compile``); :class:`TrainingRun`, what a run sets
up once and every epoch uses; and putting ``last.pth`` back into the training state on resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ssformer import run_files
from ssformer.data.check import check_dataset
from ssformer.data.datasets import innermost
from ssformer.data.protocols import ProtocolData, build_datasets
from ssformer.data.study_augment import STUDY_AUGMENT_VERSION
from ssformer.engine.distributed import DistContext, broadcast_object
from ssformer.engine.execution import resolve_workers, seed_everything, seed_worker
from ssformer.engine.optim import (
    build_optimizer,
    build_scheduler_from_config,
    current_lr,
    fused_adamw_available,
)
from ssformer.engine.resume_rules import config_changes
from ssformer.engine.runlog import NullLogger, RunLogger
from ssformer.engine.study_weights import publish_best
from ssformer.engine.training_state import TrainingState
from ssformer.errors import DataError
from ssformer.io.atomic import remove_stale_temporaries
from ssformer.losses import build_loss
from ssformer.models import model_from_config

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = [
    "TrainingRun",
    "augmentation_version",
    "fill_training_cache",
    "follow_new_epochs",
    "load_data",
    "model_on_device",
    "new_training_state",
    "resume_run",
    "training_loader",
    "training_loss",
    "wrapped_for_training",
]


def load_data(config: Config, ctx: DistContext, log: Callable[[str], None]) -> ProtocolData:
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


def fill_training_cache(
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


def training_loader(
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


def model_on_device(config: Config, ctx: DistContext) -> nn.Module:
    model = model_from_config(config).fuse().to(ctx.device)  # trained in the fused form
    if ctx.enabled and config.train.sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def training_loss(config: Config) -> nn.Module:
    weights = config.loss.cls_weights
    return build_loss(
        config.loss.name,
        int(config.model.num_classes or 1),
        ignore_label=config.dataset.ignore_label,
        cls_weights=list(weights) if isinstance(weights, tuple) else None,
        double_sigmoid=config.train.official_double_sigmoid,
    )


def new_training_state(
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


def wrapped_for_training(model: nn.Module, config: Config, ctx: DistContext) -> nn.Module:
    """DDP and ``torch.compile`` wrappers (the plain model is what gets saved)."""
    if ctx.enabled:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if config.train.compile:
        model = torch.compile(model)
    return model


def augmentation_version(config: Config) -> str:
    """The version of the training augmentation recorded in ``last.pth``."""
    return STUDY_AUGMENT_VERSION if config.train.augment == "study" else ""


@dataclass
class TrainingRun:
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


def resume_run(state: TrainingState, saved: dict[str, Any], run: TrainingRun) -> None:
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
    follow_new_epochs(state, saved, run)
    changed = config_changes(saved.get("config") or {}, config.to_dict())
    if changed:
        run.log(f"note: the config differs from the checkpoint's in {', '.join(changed)}")
    for stale in remove_stale_temporaries(run.run_dir):
        run.log(f"removed {stale.name}, left by a write that was killed")
    best_file = run.run_dir / run_files.BEST
    if ctx.is_main and best_file.is_file():
        publish_best(best_file, run.compat_path, run.run_dir, run.log)
    run.log(f"resumed from {run.run_dir / run_files.LAST}: {state.progress.epoch} epoch(s) done")


def follow_new_epochs(state: TrainingState, saved: dict[str, Any], run: TrainingRun) -> None:
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
