"""What a training run writes into its log, one line per event: the data, the model, each
epoch (with the run's ETA) and the epoch's row of ``metrics.jsonl``."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ssformer.config import Config
    from ssformer.data.protocols import ProtocolData
    from ssformer.engine.distributed import DistContext
    from ssformer.engine.epoch import EpochStats
    from ssformer.engine.training_state import TrainingState

__all__ = [
    "data_line",
    "default_progress",
    "epoch_line",
    "epoch_row",
    "model_line",
    "run_eta",
]


def data_line(data: ProtocolData, select: dict[str, Any], steps: int, workers: int) -> str:
    def sets(named: dict[str, Any]) -> str:
        return ", ".join(f"{k} ({len(v)})" for k, v in named.items())

    missing = data.missing_note()
    return (
        f"data: {len(data.train)} training images, model selection on {sets(select)}, test on "
        f"{sets(data.test)}; {steps} steps/epoch, {workers} workers"
        + (f"\n{missing}" if missing else "")
    )


def model_line(
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


def epoch_line(
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


def run_eta(history: list[dict[str, Any]], epochs_left: int, deadline: float | None = None) -> str:
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
        seconds, limit = max(deadline - time.monotonic(), 0.0), ", TRAIN.TIME_LIMIT_MIN stops it"
    hours, rest = divmod(int(seconds), 3600)
    text = f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
    return text + limit


def epoch_row(epoch: int, lr: float, stats: EpochStats, global_step: int) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "lr": lr,
        "train_loss": stats.loss,
        "steps": global_step,
        "train_time_s": round(stats.seconds, 3),
        "train_img_per_s": round(stats.images / max(stats.seconds, 1e-9), 2),
    }


def default_progress(ctx: DistContext) -> bool:
    return ctx.is_main and sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ
