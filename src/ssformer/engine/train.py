"""Training: :func:`run_training` sets a run up, :func:`train_one_epoch` is one pass over the data.

The layout follows MAE (``main_*`` sets up, ``engine_*`` holds ``train_one_epoch`` /
``evaluate``) and nanoGPT (a train step readable top to bottom; checkpoints with model,
optimiser, step, config and best metric).

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
  ``EVAL.MODEL_PATH`` expects it. If that file exists and belongs to another run (or to no run
  of ours), it is first renamed to ``<stem>.<its modification time>.pth`` (logged), never
  overwritten; the newest run's best weights then sit at the study's path.

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
weights equal those of an uninterrupted run (see :mod:`ssformer.engine.checkpointing`).

A non-finite loss stops the run (on every rank) with :class:`NonFiniteLossError`; ``last.pth``
then still holds the last good epoch.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ssformer.config import resolve_device, resolve_workers, save_config
from ssformer.engine.checkpointing import (
    LAST_NAME,
    capture_rng_state,
    find_resume_run,
    load_training_state,
    restore_rng_state,
    save_training_state,
)
from ssformer.engine.distributed import (
    DistContext,
    all_gather_objects,
    barrier,
    broadcast_object,
    cleanup_distributed,
    reduce_sum,
    setup_distributed,
)
from ssformer.engine.evaluate import (
    TRAINING_METRICS,
    EvalOutput,
    MSFSettings,
    evaluate,
    write_eval_json,
)
from ssformer.engine.optim import (
    build_optimizer,
    build_scheduler_from_config,
    current_lr,
    fused_adamw_available,
)
from ssformer.engine.runlog import NullLogger, RunLogger
from ssformer.errors import CheckpointError, ConfigError, DataError, SSFormerError
from ssformer.fileio import copy_file_atomic
from ssformer.losses import build_loss
from ssformer.models.checkpoints import load_weights, read_checkpoint, save_checkpoint_file

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = [
    "STALL_ENV",
    "EpochStats",
    "NonFiniteLossError",
    "RunResult",
    "autocast_dtype",
    "experiment_dir",
    "make_run_dir",
    "run_training",
    "seed_everything",
    "selection_metric",
    "train_one_epoch",
]

STALL_ENV = "SSFORMER_TEST_STALL_AT"
"""Test hook: ``EPOCH:STEP`` makes rank 0 write ``RUN/stalled`` after that optimiser step of
that epoch (both 1-based) and sleep, so that a test can kill the process mid-epoch."""


class NonFiniteLossError(SSFormerError):
    """The training loss became NaN or infinite; the run stopped."""


@dataclass
class EpochStats:
    """What one :func:`train_one_epoch` call did."""

    loss: float
    steps: int
    images: int
    seconds: float
    stop_reason: str | None = None


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


# ----------------------------------------------------------------------------- small helpers


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); ask for deterministic kernels if told."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _seed_worker(worker_id: int) -> None:
    """DataLoader worker init: NumPy and Python seeded from the worker's torch seed."""
    del worker_id
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def autocast_dtype(config: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``TRAIN.AMP``: ``TRAIN.AMP_DTYPE`` on CUDA. On the CPU only when
    ``TRAIN.AMP_DTYPE: bfloat16`` is asked for explicitly: CPUs without native bfloat16 run it
    many times slower than fp32 (measured here: 0.5 against 9 images/s), so the seed configs'
    ``AMP: true`` (meant for a GPU) trains in fp32 when run on a CPU."""
    if not config.train.amp:
        return None
    if device.type == "cuda":
        return torch.float16 if config.train.amp_dtype == "float16" else torch.bfloat16
    if device.type == "cpu" and config.train.amp_dtype == "bfloat16":
        return torch.bfloat16
    return None


def selection_metric(config: Config) -> str:
    """The validation metric that picks the best epoch (see the module docstring)."""
    return "Dice@0.5" if config.model.num_classes == 1 else "mIoU_2cls"


def experiment_dir(config: Config) -> Path:
    """``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>``: the folder holding this model's runs."""
    return Path(config.save_dir) / config.run_name


def make_run_dir(parent: Path) -> Path:
    """Create and return a new, empty run folder ``parent/<YYYYmmdd-HHMMSS>[-N]``."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for number in range(1, 1000):
        candidate = parent / (stamp if number == 1 else f"{stamp}-{number}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise SSFormerError(f"could not create a new run folder under {parent}")


def _shared_log_path(config: Config) -> Path:
    return config.resolved_log_dir / f"{config.dataset.name}.log"


def _default_progress(ctx: DistContext) -> bool:
    return ctx.is_main and sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ


# ----------------------------------------------------------------------------- data


@dataclass
class _Data:
    train: Any
    select: dict[str, Any]  # name -> dataset used for model selection
    test: dict[str, Any]  # name -> dataset scored at the end with the best weights


def _check_data(root: Path) -> None:
    from ssformer.data.check import check_dataset

    check_dataset(root).raise_if_broken()


def _build_data(config: Config) -> _Data:
    from ssformer.data.datasets import PolypDataset, holdout_indices, pranet_test_sets
    from ssformer.data.transforms import build_eval_transform, build_train_transform

    root = Path(config.dataset.root)
    if not root.is_dir():
        raise DataError(
            f"DATASET.ROOT={root} does not exist; download the data (`ssformer download ...`) "
            "and split it (`ssformer split ...`), or generate synthetic data (`ssformer demo`)"
        )
    train_size = tuple(config.train.image_size)
    eval_size = tuple(config.eval.image_size)
    train_tf = build_train_transform(train_size, config.train.augment)
    eval_tf = build_eval_transform(eval_size)
    if config.dataset.protocol == "split":
        missing = [s for s in ("train", "val", "test") if not (root / s).is_dir()]
        if missing:
            raise DataError(
                f"DATASET.ROOT={root} has no {', '.join(missing)} folder(s); the split protocol "
                f"needs ROOT/{{train,val,test}}/{{images,masks}}: run `ssformer split {root}` "
                "and point DATASET.ROOT at its output"
            )
        train = PolypDataset(root / "train", train_size, transform=train_tf)
        val = PolypDataset(root / "val", eval_size, transform=eval_tf)
        test = PolypDataset(root / "test", eval_size, transform=eval_tf)
        tests = {"test": test}
        select = tests if config.train.select_on == "test" else {"val": val}
        return _Data(train=train, select=select, test=tests)
    # PraNet benchmark: hold out DATASET.VAL_FRACTION of TrainDataset for model selection.
    train_root = root / "TrainDataset"
    full_train = PolypDataset(train_root, train_size, transform=train_tf)
    full_eval = PolypDataset(train_root, eval_size, transform=eval_tf)
    val_idx, train_idx = holdout_indices(
        len(full_train), config.dataset.val_fraction, config.dataset.split.seed
    )
    tests = pranet_test_sets(root, eval_size, transform=eval_tf)
    select = tests if config.train.select_on == "test" else {"val": Subset(full_eval, val_idx)}
    return _Data(train=Subset(full_train, train_idx), select=select, test=tests)


# ----------------------------------------------------------------------------- model


def _build_model(config: Config) -> nn.Module:
    from ssformer.models import build_model

    pretrained = config.model.pretrained
    if pretrained:
        path = Path(pretrained)
        if not path.is_file():
            raise CheckpointError(
                f"MODEL.PRETRAINED={pretrained} does not exist; download the ImageNet weights "
                f"with `ssformer download weights {config.model.backbone}`, or train from "
                "scratch with --set MODEL.PRETRAINED=null"
            )
    return build_model(
        config.model.name,
        config.model.backbone,
        num_classes=int(config.model.num_classes or 1),
        pretrained=pretrained or None,
    )


# ----------------------------------------------------------------------------- one epoch


def _stall_point() -> tuple[int, int] | None:
    value = os.environ.get(STALL_ENV)
    if not value:
        return None
    epoch, step = value.split(":")
    return int(epoch), int(step)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    ctx: DistContext,
    *,
    epoch: int,
    epochs: int,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = False,
    max_steps: int | None = None,
    deadline: float | None = None,
    stall_dir: Path | None = None,
) -> EpochStats:
    """Train for one epoch; returns the mean loss over all ranks and what happened.

    ``scheduler.interval == "step"`` schedules step after every optimiser step (others are
    stepped by the caller after the epoch). ``max_steps`` / ``deadline`` (a
    ``time.monotonic()`` value) end the epoch early and set ``stop_reason``. ``stall_dir``
    is where the :data:`STALL_ENV` test hook writes its marker (rank 0's run folder).
    """
    device = ctx.device
    model.train()
    total = len(loader) if hasattr(loader, "__len__") else None
    log_every = max(1, (total or 10) // 10)
    iterator: Iterable[dict[str, Any]] = loader
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(loader, total=total, desc=f"epoch {epoch}/{epochs}", leave=False)
        iterator = bar
    stall = _stall_point()
    loss_sum = 0.0
    steps = images = 0
    stop_reason = None
    start = time.monotonic()
    for batch in iterator:
        x = batch["image"].to(device, non_blocking=True)
        y = batch["mask"].to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        with torch.autocast(
            device_type=device.type,
            dtype=amp_dtype or torch.float32,
            enabled=amp_dtype is not None,
        ):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()

        # The step's one host synchronisation (with the fused AdamW; GradScaler adds one for
        # other optimizers under fp16), after the backward pass has been queued (a GPU is
        # never left waiting for it) and before the optimizer step: every rank learns
        # whether any rank's loss is non-finite, so that all stop together and no non-finite
        # gradient reaches the weights; the same read gives the loss for the running mean.
        flags = torch.stack([loss.detach().double(), (~torch.isfinite(loss.detach())).double()])
        loss_total, non_finite = reduce_sum(ctx, flags).tolist()
        if non_finite > 0:
            if bar is not None:
                bar.close()
            raise NonFiniteLossError(
                f"the training loss became {float(loss)} at epoch {epoch}, step {steps + 1}; "
                "stopping. last.pth keeps the last good epoch: lower OPTIMIZER.LR, turn "
                "TRAIN.AMP off, or check the data, then resume or start again"
            )
        scaler.step(optimizer)
        scaler.update()
        if getattr(scheduler, "interval", "epoch") == "step":
            scheduler.step()

        steps += 1
        images += x.shape[0] * ctx.world_size
        loss_sum += loss_total / ctx.world_size
        if bar is not None:
            bar.set_postfix(loss=f"{loss_sum / steps:.4f}", refresh=False)
        elif total and (steps % log_every == 0 or steps == total):
            lr = optimizer.param_groups[0]["lr"]
            rate = images / max(time.monotonic() - start, 1e-9)
            log(
                f"epoch {epoch}/{epochs} step {steps}/{total} loss {loss_sum / steps:.4f} "
                f"lr {lr:.3g} {rate:.1f} img/s"
            )
        if stall is not None and stall == (epoch, steps) and stall_dir is not None:
            (stall_dir / "stalled").write_text(f"{epoch}:{steps}\n")
            time.sleep(3600)
        if max_steps is not None and steps >= max_steps:
            stop_reason = "TRAIN.MAX_STEPS reached"
            break
        if deadline is not None:
            # The same decision on every rank: rank 0's clock decides.
            over = broadcast_object(ctx, time.monotonic() >= deadline)
            if over:
                stop_reason = "TRAIN.TIME_LIMIT_MIN reached"
                break
    if bar is not None:
        bar.close()
    if steps == 0:
        raise DataError(
            "the training loader produced no batch: the training set is smaller than "
            "TRAIN.BATCH_SIZE x the number of processes; lower TRAIN.BATCH_SIZE"
        )
    return EpochStats(
        loss=loss_sum / steps,
        steps=steps,
        images=images,
        seconds=time.monotonic() - start,
        stop_reason=stop_reason,
    )


# ----------------------------------------------------------------------------- the run


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _evaluate_sets(
    model: nn.Module,
    datasets: dict[str, Any],
    device: torch.device,
    *,
    metrics: tuple[str, ...] | None,
    msf: MSFSettings | None,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    batch_size: int,
    workers: int,
) -> dict[str, EvalOutput]:
    return {
        name: evaluate(
            model,
            dataset,
            device,
            metrics=metrics,
            msf=msf,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
            description=name,
            batch_size=batch_size,
            workers=workers,
        )
        for name, dataset in datasets.items()
    }


def _mean_over_sets(outputs: dict[str, EvalOutput]) -> dict[str, float]:
    if len(outputs) == 1:
        return dict(next(iter(outputs.values())).metrics)
    keys = next(iter(outputs.values())).metrics.keys()
    return {k: float(np.mean([o.metrics[k] for o in outputs.values()])) for k in keys}


def _config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config mappings."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed.extend(_config_changes(a, b, f"{prefix}{key}."))
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


def _backup_foreign_compat(path: Path, run_dir: Path, log: Callable[[str], None]) -> None:
    """Rename ``path`` aside unless it was written by this run (see the module docstring)."""
    if not path.exists():
        return
    owner = None
    try:
        payload = read_checkpoint(path)
        meta = payload.get("meta") if isinstance(payload, dict) else None
        owner = meta.get("run_dir") if isinstance(meta, dict) else None
    except Exception:  # unreadable (not ours, truncated, foreign pickle): not this run's
        owner = None
    if owner == str(run_dir):
        return
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    target = path.with_name(f"{path.stem}.{stamp}.pth")
    number = 2
    while target.exists():
        target = path.with_name(f"{path.stem}.{stamp}-{number}.pth")
        number += 1
    os.replace(path, target)
    log(f"{path} belonged to another run ({owner or 'unknown'}); kept it as {target}")


def run_training(
    config: Config,
    *,
    resume: str | Path | None = None,
    progress: bool | None = None,
    echo: TextIO | None = sys.stdout,
) -> RunResult:
    """Train ``config`` in a new run folder (or continue the run given by ``resume``).

    ``resume``: a run folder, its ``last.pth``, or ``"last"`` (the newest run of this
    model/backbone/dataset under ``SAVE_DIR``). Under torchrun with ``TRAIN.DDP: true`` every
    process calls this; rank 0 writes. Returns a :class:`RunResult`.
    """
    started = time.monotonic()
    device = resolve_device(config.device)
    ctx = setup_distributed(config.train.ddp, device)
    device = ctx.device
    try:
        return _run(
            config,
            ctx,
            resume=resume,
            progress=_default_progress(ctx) if progress is None else progress,
            echo=echo,
            started=started,
        )
    finally:
        cleanup_distributed(ctx)


def _run(
    config: Config,
    ctx: DistContext,
    *,
    resume: str | Path | None,
    progress: bool,
    echo: TextIO | None,
    started: float,
) -> RunResult:
    device = ctx.device
    deterministic = device.type == "cpu"
    seed_everything(config.seed + ctx.rank, deterministic)

    # --- run folder and logs (rank 0 decides, everyone learns it)
    state: dict[str, Any] | None = None
    if ctx.is_main:
        if resume is not None:
            run_dir = find_resume_run(str(resume), experiment_dir(config))
        else:
            run_dir = make_run_dir(experiment_dir(config))
    else:
        run_dir = None
    run_dir = Path(broadcast_object(ctx, str(run_dir.resolve()) if run_dir else None))
    if resume is not None:
        state = load_training_state(run_dir / LAST_NAME)
    logger: RunLogger | NullLogger
    logger = (
        RunLogger(run_dir, _shared_log_path(config), echo=echo) if ctx.is_main else NullLogger()
    )
    log = logger.log
    try:
        if ctx.is_main:
            if state is None:
                save_config(config, run_dir / "config.yaml")
            log(
                f"{'resuming' if state else 'starting'} run {run_dir}: {config.run_name}, "
                f"config {config.source}, device {device}, world size {ctx.world_size}, "
                f"seed {config.seed}"
            )

        if config.train.ddp and not ctx.enabled:
            log("TRAIN.DDP is set but torchrun did not start this process: training in one process")

        # --- data: rank 0 checks the files (every image decoded once), everyone builds loaders
        problem = None
        if ctx.is_main and Path(config.dataset.root).is_dir():
            try:
                _check_data(Path(config.dataset.root))
            except DataError as error:
                problem = str(error)
        problem = broadcast_object(ctx, problem)
        if problem is not None:
            raise DataError(problem)
        data = _build_data(config)
        if ctx.enabled:
            sampler = DistributedSampler(
                data.train, ctx.world_size, ctx.rank, shuffle=True, seed=config.seed, drop_last=True
            )
            generator = torch.Generator()
            generator.manual_seed(config.seed + ctx.rank)
            shuffle = None
        else:
            sampler = None
            generator = torch.Generator()
            generator.manual_seed(config.seed)
            shuffle = True
        per_rank = len(data.train) // ctx.world_size
        drop_last = per_rank >= config.train.batch_size
        workers = resolve_workers(config, device, ctx.world_size)
        loader = DataLoader(
            data.train,
            batch_size=config.train.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            drop_last=drop_last,
            generator=generator,
            worker_init_fn=_seed_worker,
            persistent_workers=False,
        )
        log(
            f"data: {len(data.train)} training images, model selection on "
            f"{', '.join(f'{k} ({len(v)})' for k, v in data.select.items())}, test on "
            f"{', '.join(f'{k} ({len(v)})' for k, v in data.test.items())}; "
            f"{len(loader)} steps/epoch, {workers} workers"
        )

        # --- model, loss, optimiser, schedule, AMP
        model = _build_model(config).to(device)
        if ctx.enabled and config.train.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if config.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        base_model = model
        num_classes = int(config.model.num_classes or 1)
        loss_fn = build_loss(
            config.loss.name,
            num_classes,
            ignore_label=config.dataset.ignore_label,
            cls_weights=list(config.loss.cls_weights)
            if isinstance(config.loss.cls_weights, tuple)
            else None,
            double_sigmoid=config.train.official_double_sigmoid,
        ).to(device)
        optimizer = build_optimizer(
            base_model,
            config.optimizer.name,
            config.optimizer.lr,
            config.optimizer.weight_decay,
            fused=fused_adamw_available(device) or None,
        )
        scheduler = build_scheduler_from_config(
            config.scheduler,
            optimizer,
            epochs=config.train.epochs,
            iters_per_epoch=max(1, len(loader)),
        )
        amp_dtype = autocast_dtype(config, device)
        scaler = torch.amp.GradScaler(
            device.type, enabled=device.type == "cuda" and amp_dtype == torch.float16
        )
        metric_name = selection_metric(config)
        params = sum(p.numel() for p in base_model.parameters()) / 1e6
        log(
            f"model {config.model.name} on {config.model.backbone}, {num_classes} output "
            f"channel(s), {params:.2f} M parameters, pretrained: {config.model.pretrained or 'no'};"
            f" loss {config.loss.name}; AMP {amp_dtype or 'off'}; best epoch by "
            f"{'/'.join(data.select)} {metric_name}"
        )
        if config.train.amp and amp_dtype is None:
            log(f"TRAIN.AMP ignored on {device.type}: fp32 (set TRAIN.AMP_DTYPE=bfloat16 to force)")

        # --- resume
        start_epoch = 1
        global_step = 0
        best_metric: float | None = None
        best_epoch: int | None = None
        history: list[dict[str, Any]] = []
        if state is not None:
            base_model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            start_epoch = int(state["epoch"]) + 1
            global_step = int(state["global_step"])
            best_metric = state.get("best_metric")
            best_epoch = state.get("best_epoch")
            history = list(state.get("history", []))
            rng_states = state.get("rng_states") or []
            if len(rng_states) == ctx.world_size:
                restore_rng_state(rng_states[ctx.rank], generator)
            else:
                log(
                    f"warning: {LAST_NAME} holds random states of {len(rng_states)} process(es), "
                    f"this run has {ctx.world_size}; reseeding (the resumed run will differ)"
                )
                seed_everything(config.seed + ctx.rank + start_epoch, deterministic)
            logger.restore_rows(history)
            changed = _config_changes(state.get("config") or {}, config.to_dict())
            if changed:
                log(f"note: the config differs from the checkpoint's in {', '.join(changed)}")
            log(f"resumed from {run_dir / LAST_NAME}: {start_epoch - 1} epoch(s) done")

        # --- wrappers (after loading plain weights)
        train_model: nn.Module = base_model
        if ctx.enabled:
            ids = [device.index] if device.type == "cuda" else None
            train_model = nn.parallel.DistributedDataParallel(base_model, device_ids=ids)
        if config.train.compile:
            train_model = torch.compile(train_model)

        deadline = (
            started + config.train.time_limit_min * 60 if config.train.time_limit_min else None
        )
        compat_path = config.best_checkpoint_path
        if ctx.is_main:
            _backup_foreign_compat(compat_path, run_dir, log)
        stop_reason = None
        epoch = start_epoch - 1
        for epoch in range(start_epoch, config.train.epochs + 1):
            if sampler is not None:
                sampler.set_epoch(epoch)
            lr = current_lr(optimizer)
            steps_left = config.train.max_steps - global_step if config.train.max_steps else None
            stats = train_one_epoch(
                train_model,
                loader,
                loss_fn,
                optimizer,
                scheduler,
                scaler,
                ctx,
                epoch=epoch,
                epochs=config.train.epochs,
                amp_dtype=amp_dtype,
                channels_last=config.train.channels_last,
                log=log,
                progress=progress,
                max_steps=steps_left,
                deadline=deadline,
                stall_dir=run_dir if ctx.is_main else None,
            )
            global_step += stats.steps
            stop_reason = stats.stop_reason
            if getattr(scheduler, "interval", "epoch") == "epoch":
                scheduler.step()
            row: dict[str, Any] = {
                "epoch": epoch,
                "lr": lr,
                "train_loss": stats.loss,
                "steps": global_step,
                "train_time_s": round(stats.seconds, 3),
                "train_img_per_s": round(stats.images / max(stats.seconds, 1e-9), 2),
            }
            last_epoch = epoch == config.train.epochs or stop_reason is not None
            is_best = False
            if epoch % config.train.eval_interval == 0 or last_epoch:
                if ctx.is_main:
                    eval_start = time.monotonic()
                    outputs = _evaluate_sets(
                        base_model,
                        data.select,
                        device,
                        metrics=TRAINING_METRICS,
                        msf=None,
                        amp_dtype=amp_dtype,
                        channels_last=config.train.channels_last,
                        batch_size=config.train.batch_size,
                        workers=workers,
                    )
                    scores = _mean_over_sets(outputs)
                    prefix = "val" if "val" in data.select else "test"
                    row.update({f"{prefix}/{k}": v for k, v in scores.items()})
                    row["eval_time_s"] = round(time.monotonic() - eval_start, 3)
                    value = scores.get(metric_name)
                    if value is None:
                        raise ConfigError(
                            f"the selection metric {metric_name!r} was not computed; choose "
                            f"one of {', '.join(scores)}"
                        )
                    if math.isfinite(value) and (best_metric is None or value > best_metric):
                        best_metric, best_epoch, is_best = float(value), epoch, True
                is_best = bool(broadcast_object(ctx, is_best))
                best_metric = broadcast_object(ctx, best_metric)
                best_epoch = broadcast_object(ctx, best_epoch)
            row["best_epoch"] = best_epoch
            history.append(row)

            rng_states = all_gather_objects(ctx, capture_rng_state(generator))
            if ctx.is_main:
                meta = {
                    "config": config.to_dict(),
                    "epoch": epoch,
                    "run_dir": str(run_dir),
                    "selection_metric": metric_name,
                    "selection_value": best_metric,
                    "selection_split": "/".join(data.select),
                }
                if is_best:
                    best_file = save_checkpoint_file(run_dir / "best.pth", base_model, **meta)
                    copy_file_atomic(best_file, compat_path)  # serialised once, copied
                save_training_state(
                    run_dir / LAST_NAME,
                    {
                        "model": {k: v.detach().cpu() for k, v in base_model.state_dict().items()},
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "epoch": epoch,
                        "global_step": global_step,
                        "best_metric": best_metric,
                        "best_epoch": best_epoch,
                        "selection_metric": metric_name,
                        "history": [{k: _json_ready(v) for k, v in r.items()} for r in history],
                        "rng_states": rng_states,
                        "config": config.to_dict(),
                    },
                )
                logger.log_metrics(row)
                shown = f" val {metric_name} {row.get(f'val/{metric_name}', float('nan')):.4f}"
                if f"val/{metric_name}" not in row:
                    shown = (
                        f" test {metric_name} {row[f'test/{metric_name}']:.4f}"
                        if f"test/{metric_name}" in row
                        else ""
                    )
                log(
                    f"epoch {epoch}/{config.train.epochs} done: loss {stats.loss:.4f}, lr "
                    f"{lr:.3g},{shown} (best {'n/a' if best_metric is None else f'{best_metric:.4f}'}"
                    f" at epoch {best_epoch}), {stats.seconds:.1f} s"
                    + (" [best]" if is_best else "")
                )
            barrier(ctx)
            if stop_reason is not None:
                log(f"stopping after epoch {epoch}: {stop_reason}")
                break

        # --- the best weights on the test split(s)
        test_results: dict[str, dict[str, float]] = {}
        best_path = run_dir / "best.pth"
        if ctx.is_main and best_path.is_file():
            load_weights(base_model, best_path)
            msf = MSFSettings.from_config(config)
            outputs = _evaluate_sets(
                base_model,
                data.test,
                device,
                metrics=None,
                msf=msf,
                amp_dtype=amp_dtype,
                channels_last=config.train.channels_last,
                batch_size=config.train.batch_size,
                workers=workers,
            )
            for name, output in outputs.items():
                test_results[name] = output.metrics
                file_name = "eval_test.json" if name == "test" else f"eval_test_{name}.json"
                write_eval_json(
                    run_dir / file_name,
                    split="test",
                    dataset=config.dataset.name if name == "test" else name,
                    weights=best_path,
                    output=output,
                    msf=msf,
                    image_size=config.eval.image_size,
                    epoch=best_epoch,
                )
                summary = ", ".join(
                    f"{k} {v:.4f}"
                    for k, v in output.metrics.items()
                    if k in ("mDice", "mIoU", "Dice@0.5", "mIoU_2cls", "mDice_2cls")
                )
                log(f"test {name} with best weights (epoch {best_epoch}): {summary}")
        barrier(ctx)
        seconds = time.monotonic() - started
        log(
            f"run finished in {seconds:.1f} s: best {metric_name} "
            f"{'n/a' if best_metric is None else f'{best_metric:.4f}'} at epoch "
            f"{best_epoch}; weights {best_path} and {compat_path}"
        )
        return RunResult(
            run_dir=run_dir,
            best_metric=best_metric,
            best_metric_name=metric_name,
            best_epoch=best_epoch,
            epochs_done=epoch,
            global_step=global_step,
            best_path=best_path if best_path.is_file() else None,
            last_path=run_dir / LAST_NAME,
            compat_path=compat_path if compat_path.is_file() else None,
            history=history,
            test_results=test_results,
            stop_reason=stop_reason,
            seconds=seconds,
        )
    except SSFormerError as error:
        log(f"error: {error}")
        raise
    finally:
        logger.close()
