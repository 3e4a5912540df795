"""Where and how the engine runs: the device, data-loader workers, the precision policy and
seeding. Every command asks these functions; none decides it on its own."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import numpy as np
import torch

from ssformer.config.validate import DEVICE_PATTERN
from ssformer.errors import ConfigError

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = [
    "autocast_dtype",
    "config_autocast_dtype",
    "resolve_device",
    "resolve_workers",
    "seed_everything",
    "seed_worker",
]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda0`` -> ``cuda:0``; ``cpu``, ``mps``.
    Asking for CUDA on a machine without it raises :class:`ConfigError`."""
    text = str(name).strip().lower()
    if not DEVICE_PATTERN.match(text):
        raise ConfigError(f"DEVICE={name!r} is not a device: use auto, cpu, cuda, cuda:0 / cuda0")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda"):
        index = text[4:].lstrip(":")
        if not torch.cuda.is_available():
            raise ConfigError(
                f"DEVICE={name!r} but no CUDA GPU is visible to torch; "
                f"use DEVICE=auto or DEVICE=cpu (e.g. --set DEVICE=cpu)"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(
                f"DEVICE={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device(f"cuda:{index}" if index else "cuda")
    if text == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"DEVICE={name!r} but MPS is not available; use DEVICE=auto or cpu")
    return torch.device(text)


def resolve_workers(config: Config, device: torch.device, world_size: int = 1) -> int:
    """Data-loader worker processes: ``TRAIN.WORKERS``, or when null none on a CPU with at
    most 4 cores (the model needs them; cached data loads fast in the main process), else
    one fewer than the cores per process, at most 8."""
    if config.train.workers is not None:
        return config.train.workers
    cpus = os.cpu_count() or 1
    if device.type == "cpu" and cpus <= 4:
        return 0
    return max(0, min(8, cpus // world_size - 1))


def autocast_dtype(device: torch.device, amp: bool, dtype: str | None = None) -> torch.dtype | None:
    """The one precision policy: the autocast dtype for ``amp`` on ``device``, None for fp32.

    On CUDA ``dtype`` (``float16``, the default, or ``bfloat16``). On the CPU bfloat16 when
    ``dtype`` is ``bfloat16`` or not given (``ssformer bench``'s AMP), else fp32: CPUs without
    native bfloat16 run it many times slower than fp32 (measured here: 0.5 against 9 images/s),
    so the seed configs' ``AMP: true`` with its fp16 (meant for a GPU) trains in fp32 on a CPU.
    Other devices: fp32.
    """
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if dtype == "bfloat16" else torch.float16
    if device.type == "cpu" and dtype in (None, "bfloat16"):
        return torch.bfloat16
    return None


def config_autocast_dtype(config: Config, device: torch.device) -> torch.dtype | None:
    """:func:`autocast_dtype` of ``TRAIN.AMP`` and ``TRAIN.AMP_DTYPE``."""
    return autocast_dtype(device, config.train.amp, config.train.amp_dtype)


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


def seed_worker(worker_id: int) -> None:
    """DataLoader worker init: NumPy and Python seeded from the worker's torch seed."""
    del worker_id
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
