"""Optimisers and learning-rate schedules of the official SSFormer training and of the
reproduction study, resumable through ``state_dict``.

Optimisers (:func:`build_optimizer`):

- ``adamw``: the study's: AdamW (betas 0.9/0.999, eps 1e-8) with ``weight_decay`` on parameters
  of 2+ dimensions and none on 1-D parameters (biases, norm weights).
- ``adamw_default``: the study's ``adamw_default``: the same groups, AdamW's default weight
  decay 0.01 on the first group (the config's ``WEIGHT_DECAY`` is not used).
- ``sgd``: the study's: SGD, momentum 0.9, the same groups.
- ``adamw_official``: the official ``train.py``: one group, every parameter decayed.

Every AdamW runs torch's fused kernel where torch has one (:func:`fused_adamw_available`: CUDA,
and CPU from torch 2.4): the same update in one kernel per step instead of a loop over
tensors, and no host synchronisation for GradScaler's overflow check under fp16 AMP.

Schedules (:func:`build_scheduler`); each has ``interval`` = ``"epoch"`` (call ``step()`` once
after every epoch) or ``"step"`` (after every optimiser step); the LR before the first call is
the one for epoch/step 0:

- ``plrd``: the study's ``PolynomialLRDecay`` as the study used it (stepped per epoch, default
  arguments): epoch ``e`` trains with
  ``end_lr + (lr - end_lr) * (1 - min(e + 1, M) / M) ** power`` (M = 40, end_lr = 1e-4,
  power = 1.0). The ``+ 1`` is the study's: its constructor already takes one step.
- ``warmuppolylr``: the study's ``WarmupPolyLR`` (linear warm-up) per optimiser step ``i``:
  ``ratio + (1 - ratio) * i / W`` for ``i < W``, then ``(1 - (i - W) / (T - W)) ** power``,
  0 after ``T``. (The study's loop stepped it once per epoch with per-iteration ``T``, so its
  LR barely moved; its seed configs use ``plrd``.)
- ``warmup_step``: the official ``GradualWarmupScheduler(multiplier=1, total_epoch=W)`` chained
  with ``StepLR(step_size=S, gamma=g)``, stepped at the start of epoch ``e``: factor ``e / W``
  for ``e <= W`` (so epoch 0 trains with LR 0, as in the official run), then
  ``g ** ((e - W) // S)``.
- ``constant``: factor 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn
from torch.optim import SGD, AdamW, Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ssformer.config import SchedulerConfig
from ssformer.errors import ConfigError
from ssformer.registry import OPTIMIZERS, SCHEDULERS

__all__ = [
    "ConstantLR",
    "FactorScheduler",
    "PolynomialLRDecay",
    "WarmupPolyLR",
    "WarmupStepLR",
    "build_optimizer",
    "build_scheduler",
    "build_scheduler_from_config",
    "current_lr",
    "param_groups_no_decay_1d",
]

Interval = Literal["epoch", "step"]


def param_groups_no_decay_1d(
    params: Iterable[nn.Parameter], weight_decay: float | None = None
) -> list[dict[str, object]]:
    """The study's two groups: 2+-D parameters (decayed), 1-D parameters (``weight_decay=0``).
    ``weight_decay=None`` leaves the first group to the optimiser's default."""
    decay, no_decay = [], []
    for p in params:
        if not p.requires_grad:
            continue
        (no_decay if p.dim() == 1 else decay).append(p)
    first: dict[str, object] = {"params": decay}
    if weight_decay is not None:
        first["weight_decay"] = weight_decay
    return [first, {"params": no_decay, "weight_decay": 0.0}]


def fused_adamw_available(device: torch.device) -> bool:
    """Whether torch has a fused AdamW kernel for ``device`` (CUDA; CPU from torch 2.4)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and torch.torch_version.TorchVersion(torch.__version__) >= "2.4"


def build_optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float, *, fused: bool | None = None
) -> Optimizer:
    """Build the optimiser ``name`` (see the module docstring) over ``model``'s trainable
    parameters. ``fused`` is passed to AdamW (None: torch's default)."""
    key = name.lower()
    params = list(model.parameters())
    extra = {} if fused is None else {"fused": fused}
    if key == "adamw":
        groups = param_groups_no_decay_1d(params, weight_decay)
        return AdamW(groups, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, **extra)
    if key == "adamw_default":
        return AdamW(param_groups_no_decay_1d(params), lr, **extra)
    if key == "sgd":
        groups = param_groups_no_decay_1d(params, weight_decay)
        return SGD(groups, lr, momentum=0.9, weight_decay=weight_decay)
    if key == "adamw_official":
        trainable = [p for p in params if p.requires_grad]
        return AdamW(trainable, lr, weight_decay=weight_decay, **extra)
    raise ConfigError(f"OPTIMIZER.NAME={name!r} is not one of {', '.join(OPTIMIZERS)}")


class FactorScheduler(LRScheduler):
    """Base: ``lr = base_lr * factor(last_epoch)`` in closed form, so that a scheduler resumed
    from ``state_dict`` continues exactly. ``last_epoch`` counts ``step()`` calls (epochs or
    optimiser steps, see ``interval``)."""

    interval: Interval = "epoch"
    settings: tuple[str, ...] = ()
    """Attributes set from the config (a horizon, a power): not part of the saved state, so a
    resumed run follows the config it resumes with (e.g. a larger ``TRAIN.EPOCHS``)."""

    def factor(self, count: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k not in self.settings}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The counters of ``state_dict`` (settings of older files ignored); the optimiser's
        rates set to this schedule's at that count (the same values when nothing changed)."""
        super().load_state_dict({k: v for k, v in state_dict.items() if k not in self.settings})
        rates = self.lr_at(self.last_epoch)
        for group, lr in zip(self.optimizer.param_groups, rates, strict=True):
            group["lr"] = lr
        self._last_lr = rates

    def get_lr(self) -> list[float]:
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]

    def lr_at(self, count: int) -> list[float]:
        """The learning rates after ``count`` calls of ``step()`` (no side effects)."""
        f = self.factor(count)
        return [base * f for base in self.base_lrs]


class ConstantLR(FactorScheduler):
    """The base learning rate throughout."""

    def factor(self, count: int) -> float:
        return 1.0


class PolynomialLRDecay(LRScheduler):
    """The study's ``plrd``, stepped once per epoch: epoch ``e`` trains with
    ``end_lr + (base - end_lr) * (1 - min(e + 1, max_decay_steps) / max_decay_steps) ** power``
    (``end_lr`` is absolute, not a ratio)."""

    interval: Interval = "epoch"

    def __init__(
        self,
        optimizer: Optimizer,
        max_decay_steps: int = 40,
        end_lr: float = 1e-4,
        power: float = 1.0,
        last_epoch: int = -1,
    ) -> None:
        if max_decay_steps <= 1:
            raise ValueError("max_decay_steps must be greater than 1")
        self.max_decay_steps = max_decay_steps
        self.end_lr = end_lr
        self.power = power
        super().__init__(optimizer, last_epoch)

    def lr_at(self, count: int) -> list[float]:
        step = min(count + 1, self.max_decay_steps)
        f = (1.0 - step / self.max_decay_steps) ** self.power
        return [(base - self.end_lr) * f + self.end_lr for base in self.base_lrs]

    def get_lr(self) -> list[float]:
        return self.lr_at(self.last_epoch)


class WarmupPolyLR(FactorScheduler):
    """The study's ``WarmupPolyLR`` with linear warm-up, per optimiser step."""

    interval: Interval = "step"
    settings = ("max_iters", "power", "warmup_iters", "warmup_ratio")

    def __init__(
        self,
        optimizer: Optimizer,
        max_iters: int,
        power: float = 0.9,
        warmup_iters: int = 0,
        warmup_ratio: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        if max_iters <= warmup_iters:
            raise ValueError(f"max_iters ({max_iters}) must exceed warmup_iters ({warmup_iters})")
        self.max_iters = max_iters
        self.power = power
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        super().__init__(optimizer, last_epoch)

    def factor(self, count: int) -> float:
        if count < self.warmup_iters:
            return self.warmup_ratio + (1.0 - self.warmup_ratio) * count / self.warmup_iters
        alpha = min(count - self.warmup_iters, self.max_iters - self.warmup_iters) / (
            self.max_iters - self.warmup_iters
        )
        return (1.0 - alpha) ** self.power


class WarmupStepLR(FactorScheduler):
    """The official warm-up + step schedule, per epoch (see the module docstring)."""

    interval: Interval = "epoch"

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_epochs: int = 1,
        step_size: int = 200,
        gamma: float = 0.1,
        last_epoch: int = -1,
    ) -> None:
        self.warmup_epochs = warmup_epochs
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def factor(self, count: int) -> float:
        w = self.warmup_epochs
        if w > 0 and count <= w:
            return count / w
        return self.gamma ** ((count - w) // self.step_size)


def build_scheduler(
    name: str,
    optimizer: Optimizer,
    *,
    epochs: int,
    iters_per_epoch: int,
    power: float = 0.9,
    warmup_epochs: int = 0,
    warmup_ratio: float = 0.1,
    max_decay_steps: int = 40,
    end_lr: float = 1e-4,
    plrd_power: float = 1.0,
    step_size: int = 200,
    gamma: float = 0.1,
) -> LRScheduler:
    """Build the schedule ``name`` (see the module docstring). The result's ``interval``
    attribute says whether to call ``step()`` per epoch or per optimiser step."""
    key = name.lower()
    if key == "plrd":
        return PolynomialLRDecay(optimizer, max_decay_steps, end_lr, plrd_power)
    if key == "warmuppolylr":
        return WarmupPolyLR(
            optimizer,
            max_iters=epochs * iters_per_epoch,
            power=power,
            warmup_iters=warmup_epochs * iters_per_epoch,
            warmup_ratio=warmup_ratio,
        )
    if key == "warmup_step":
        return WarmupStepLR(optimizer, warmup_epochs, step_size, gamma)
    if key == "constant":
        return ConstantLR(optimizer)
    raise ConfigError(f"SCHEDULER.NAME={name!r} is not one of {', '.join(SCHEDULERS)}")


def build_scheduler_from_config(
    config: SchedulerConfig, optimizer: Optimizer, *, epochs: int, iters_per_epoch: int
) -> LRScheduler:
    """:func:`build_scheduler` with the values of a ``SCHEDULER`` config section."""
    return build_scheduler(
        config.name,
        optimizer,
        epochs=epochs,
        iters_per_epoch=iters_per_epoch,
        power=config.power,
        warmup_epochs=config.warmup,
        warmup_ratio=config.warmup_ratio,
        max_decay_steps=config.max_decay_steps,
        end_lr=config.end_lr,
        plrd_power=config.plrd_power,
        step_size=config.step_size,
        gamma=config.gamma,
    )


def current_lr(optimizer: Optimizer) -> float:
    """The learning rate of the first parameter group."""
    return float(optimizer.param_groups[0]["lr"])
