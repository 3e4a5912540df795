"""The training state and its file, ``last.pth``: written and read here and nowhere else.

``last.pth`` (written atomically after every epoch) holds what is needed to continue a run
exactly, as in nanoGPT: the model, optimiser, scheduler and AMP grad-scaler states, the number of
finished epochs and optimiser steps, the best validation metric so far, the metrics history, the
merged config and the random-number-generator states of every rank (Python, NumPy, torch CPU,
CUDA and the DataLoader's generator), captured at the end of the epoch, i.e. at the start of the
next one. A run killed in the middle of epoch ``e`` resumes from the end of epoch ``e-1`` and
replays epoch ``e`` from its start with exactly the random state it first had, so the resumed run
ends with the same weights as an uninterrupted one (on CPU, and on CUDA up to the determinism of
its kernels).

:class:`TrainingState` holds the live objects of a run and its :class:`Progress`;
:meth:`TrainingState.save` writes ``last.pth`` and :meth:`TrainingState.restore` puts a
``last.pth`` back into them. Best weights (``best.pth``) are written in the model checkpoint
format of :mod:`ssformer.models.loading`, which :func:`ssformer.load_weights` reads. Every file
is loaded with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssformer.errors import CheckpointError
from ssformer.io.atomic import save_torch_atomic
from ssformer.io.checkpoint_file import read_checkpoint
from ssformer.run_files import LAST, resumable_runs

__all__ = [
    "TRAINING_STATE_FORMAT",
    "Progress",
    "TrainingState",
    "capture_rng_state",
    "find_resume_run",
    "load_training_state",
    "restore_rng_state",
]

TRAINING_STATE_FORMAT = "ssformer-training-state-v1"


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Python, NumPy, torch (CPU, CUDA) and DataLoader-generator states as weights-only data."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": [int(v) for v in np_state["state"]["key"]],
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["loader_generator"] = generator.get_state()
    return state


def restore_rng_state(state: Mapping[str, Any], generator: torch.Generator | None = None) -> None:
    """Put back what :func:`capture_rng_state` captured."""
    python_state = state["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np.asarray(np_state["key"], dtype=np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    if generator is not None and "loader_generator" in state:
        generator.set_state(state["loader_generator"])


def load_training_state(path: Path) -> dict[str, Any]:
    """Read a ``last.pth`` written by :meth:`TrainingState.save` (weights only, on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no training state at {path}; resume needs a run's {LAST}")
    try:
        state = read_checkpoint(path)
    except CheckpointError as error:
        raise CheckpointError(
            f"{path} could not be read as a training state ({error}); resume from an earlier run "
            "or start a new one"
        ) from error
    if state.get("format") != TRAINING_STATE_FORMAT:
        raise CheckpointError(
            f"{path} is not an ssformer training state (no format {TRAINING_STATE_FORMAT!r}); "
            f"to start from weights only, set MODEL.PRETRAINED, or evaluate them with "
            f"`ssformer val --cfg CONFIG --weights {path}`"
        )
    return state


def _json_ready(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Progress:
    """How far a run is: finished epochs and optimiser steps, the best selection metric so far
    and its epoch, and one metrics row per finished epoch."""

    epoch: int = 0
    global_step: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainingState:
    """The live objects of a run (plain model, optimiser, scheduler, AMP scaler, the training
    DataLoader's generator) and its :class:`Progress`: what ``last.pth`` holds."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    progress: Progress = field(default_factory=Progress)

    def save(
        self,
        path: Path,
        *,
        rng_states: list[dict[str, Any]],
        config: dict[str, Any],
        selection_metric: str,
        augmentation: str = "",
    ) -> None:
        """Write ``last.pth`` atomically; ``rng_states`` holds every rank's
        :func:`capture_rng_state`, in rank order; ``augmentation`` names the version of the
        training augmentation (a resumed run is warned when it changed)."""
        done = self.progress
        payload = {
            "format": TRAINING_STATE_FORMAT,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": done.epoch,
            "global_step": done.global_step,
            "best_metric": done.best_metric,
            "best_epoch": done.best_epoch,
            "selection_metric": selection_metric,
            "history": [{k: _json_ready(v) for k, v in row.items()} for row in done.history],
            "rng_states": rng_states,
            "config": config,
            "augmentation": augmentation,
        }
        save_torch_atomic(payload, path)

    def restore(self, payload: Mapping[str, Any], rank: int, world_size: int) -> bool:
        """Load a ``last.pth`` payload (:func:`load_training_state`) into the live objects and
        the progress. Returns whether the random states were restored: they are only when the
        file holds one per process of this run."""
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if payload["scaler"] and self.scaler.is_enabled():  # AMP fp16 may be turned on/off
            self.scaler.load_state_dict(payload["scaler"])
        self.progress = Progress(
            epoch=int(payload["epoch"]),
            global_step=int(payload["global_step"]),
            best_metric=payload.get("best_metric"),
            best_epoch=payload.get("best_epoch"),
            history=list(payload.get("history", [])),
        )
        rng_states = payload.get("rng_states") or []
        if len(rng_states) != world_size:
            return False
        restore_rng_state(rng_states[rank], self.generator)
        return True


def find_resume_run(spec: str, experiment_dir: Path | None) -> Path:
    """The run folder to resume: ``spec`` is a run folder, a ``last.pth`` or ``last``.

    ``last`` picks the most recently written ``last.pth`` among the run folders of
    ``experiment_dir`` (``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>``).
    """
    if spec == "last":
        if experiment_dir is None or not experiment_dir.is_dir():
            raise CheckpointError(
                f"--resume last: no runs under {experiment_dir}; start a run first or give the "
                "run folder (--resume SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>/<run>)"
            )
        runs = resumable_runs(experiment_dir)
        if not runs:
            raise CheckpointError(
                f"--resume last: no run under {experiment_dir} has a {LAST} yet "
                "(a run writes it at the end of its first epoch)"
            )
        return runs[-1]
    path = Path(spec)
    if path.is_file() and path.name == LAST:
        return path.parent
    if path.is_dir():
        if not (path / LAST).is_file():
            raise CheckpointError(
                f"--resume {spec}: {path / LAST} does not exist (the run did not finish "
                "an epoch); start the run again"
            )
        return path
    raise CheckpointError(f"--resume {spec}: no such run folder or {LAST} file")
