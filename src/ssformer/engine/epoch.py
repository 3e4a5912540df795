"""One pass over the training data (MAE's ``engine_*.train_one_epoch``, nanoGPT's step).

A step reads top to bottom: batch to the device, forward under autocast, loss in fp32,
backward, one host synchronisation (the loss and a non-finite flag, summed over ranks), the
optimiser and AMP-scaler step, a per-step scheduler step. A non-finite loss on any rank stops
every rank before the optimiser step, so no non-finite gradient reaches the weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssformer.engine.distributed import DistContext, broadcast_object, reduce_sum
from ssformer.errors import DataError, SSFormerError

__all__ = [
    "EpochStats",
    "NonFiniteLossError",
    "StepCallback",
    "check_weights_finite",
    "train_one_epoch",
]

StepCallback = Callable[[int, int], None]
"""Called as ``callback(epoch, step)`` after every optimiser step (both 1-based)."""


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
    last_lr: float = float("nan")  # the learning rate of the epoch's last optimiser step


class _StepReport:
    """The epoch's progress: a tqdm bar, or about ten log lines per epoch."""

    def __init__(
        self,
        loader: Iterable[Any],
        epoch: int,
        epochs: int,
        log: Callable[[str], None],
        bar: bool,
        run_eta: str = "",
    ) -> None:
        self.total = len(loader) if hasattr(loader, "__len__") else None
        self.every = max(1, (self.total or 10) // 10)
        self.prefix = f"epoch {epoch}/{epochs}" + (f" (run ETA {run_eta})" if run_eta else "")
        self.log = log
        self.start = time.monotonic()
        self.bar = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(loader, total=self.total, desc=self.prefix, leave=False)

    def batches(self, loader: Iterable[Any]) -> Iterable[Any]:
        return self.bar if self.bar is not None else loader

    def step(self, steps: int, images: int, mean_loss: float, lr: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
        elif self.total and (steps % self.every == 0 or steps == self.total):
            rate = images / max(time.monotonic() - self.start, 1e-9)
            self.log(
                f"{self.prefix} step {steps}/{self.total} loss {mean_loss:.4f} "
                f"lr {lr:.3g} {rate:.1f} img/s"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
    on_step: StepCallback | None = None,
    run_eta: str = "",
) -> EpochStats:
    """Train for one epoch; returns the mean loss over all ranks and what happened.

    ``scheduler.interval == "step"`` schedules step after every optimiser step (others are
    stepped by the caller after the epoch). ``max_steps`` / ``deadline`` (a
    ``time.monotonic()`` value) end the epoch early and set ``stop_reason``. ``run_eta``: the
    whole run's estimated time left, shown in the bar and the step lines.
    """
    device = ctx.device
    model.train()
    report = _StepReport(loader, epoch, epochs, log, progress, run_eta)
    loss_sum, steps, images, stop_reason = 0.0, 0, 0, None
    try:
        for batch in report.batches(loader):
            x = batch["image"].to(device, non_blocking=True)
            y = batch["mask"].to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
            ):
                logits = model(x)
            loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            # The step's one host synchronisation, after the backward pass has been queued and
            # before the optimiser step: every rank learns whether any loss is non-finite.
            lr = optimizer.param_groups[0]["lr"]  # the rate this step uses
            loss_total = _checked_loss(loss, ctx, epoch, steps + 1, lr)
            scaler.step(optimizer)
            scaler.update()
            if getattr(scheduler, "interval", "epoch") == "step":
                scheduler.step()
            steps += 1
            images += x.shape[0] * ctx.world_size
            loss_sum += loss_total / ctx.world_size
            report.step(steps, images, loss_sum / steps, lr)
            if on_step is not None:
                on_step(epoch, steps)
            stop_reason = _stop_reason(ctx, steps, max_steps, deadline)
            if stop_reason is not None:
                break
    finally:
        report.close()
    if steps == 0:
        raise DataError(
            "the training loader produced no batch: the training set is smaller than "
            "TRAIN.BATCH_SIZE x the number of processes; lower TRAIN.BATCH_SIZE"
        )
    seconds = time.monotonic() - report.start
    return EpochStats(loss_sum / steps, steps, images, seconds, stop_reason, last_lr=lr)


def _checked_loss(
    loss: torch.Tensor, ctx: DistContext, epoch: int, step: int, optimizer_lr: float
) -> float:
    """The loss summed over ranks; :class:`NonFiniteLossError` if any rank's is non-finite."""
    flags = torch.stack([loss.detach().double(), (~torch.isfinite(loss.detach())).double()])
    loss_total, non_finite = reduce_sum(ctx, flags).tolist()
    if non_finite > 0:
        raise NonFiniteLossError(
            f"the training loss became {float(loss.detach())} at epoch {epoch}, step {step} "
            f"(learning rate {optimizer_lr:.3g}); stopping"
        )
    return loss_total


def _stop_reason(
    ctx: DistContext, steps: int, max_steps: int | None, deadline: float | None
) -> str | None:
    if max_steps is not None and steps >= max_steps:
        return "TRAIN.MAX_STEPS reached"
    # The same decision on every rank: rank 0's clock decides.
    if deadline is not None and broadcast_object(ctx, time.monotonic() >= deadline):
        return "TRAIN.TIME_LIMIT_MIN reached"
    return None


def check_weights_finite(model: nn.Module, epoch: int, stats: EpochStats) -> None:
    """:class:`NonFiniteLossError` when the epoch's last optimiser step left non-finite weights
    (its loss was finite, so the per-step check could not see it)."""
    if all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return
    raise NonFiniteLossError(
        f"the weights became NaN or infinite in the last optimiser step of epoch {epoch} (mean "
        f"loss {stats.loss:.4g}, learning rate {stats.last_lr:.3g}): the training diverged"
    )
