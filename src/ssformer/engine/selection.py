"""Model selection, and scoring during training.

Every ``TRAIN.EVAL_INTERVAL`` epochs (and after the last) the model is scored on the validation
split (``split`` protocol) or on the held-out part of the PraNet TrainDataset (``pranet``); the
best epoch maximises :func:`selection_metric`: ``mIoU_2cls`` for 2-class softmax models (the
reproduction study's criterion) and ``Dice@0.5`` for 1-class sigmoid models.
``TRAIN.SELECT_ON: test`` (only with ``TRAIN.SELECT_BEST_ON_TEST_LEAKS: true``) selects on the
test split(s) instead, as the official repository did; that leaks test data into model
selection.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from torch import nn

from ssformer.engine.distributed import broadcast_object
from ssformer.engine.evaluate import EvalOutput, evaluate_sets, mean_over_sets
from ssformer.engine.train_setup import TrainingRun
from ssformer.engine.training_state import TrainingState
from ssformer.errors import ConfigError

if TYPE_CHECKING:
    from ssformer.config import Config, MSFConfig

__all__ = ["evaluate_with_run_settings", "selection_metric", "validate"]


def selection_metric(config: Config) -> str:
    """The validation metric that picks the best epoch (see the module docstring)."""
    return "Dice@0.5" if config.model.num_classes == 1 else "mIoU_2cls"


def validate(run: TrainingRun, state: TrainingState, row: dict[str, Any], epoch: int) -> bool:
    """Score the model selection set(s) on rank 0 (into ``row``); whether ``epoch`` is the best
    so far (every rank learns it)."""
    done, ctx = state.progress, run.ctx
    is_best = False
    if ctx.is_main:
        eval_start = time.monotonic()
        wanted = tuple(dict.fromkeys((*run.config.eval.metrics, run.metric_name)))
        outputs = evaluate_with_run_settings(run, state.model, run.select, metrics=wanted, msf=None)
        scores = mean_over_sets(outputs)
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


def evaluate_with_run_settings(
    run: TrainingRun,
    model: nn.Module,
    datasets: dict[str, Any],
    *,
    metrics: tuple[str, ...] | None,
    msf: MSFConfig | None,
) -> dict[str, EvalOutput]:
    """``datasets`` scored with the run's device, precision, memory format, batch and workers."""
    config = run.config
    return evaluate_sets(
        model,
        datasets,
        run.ctx.device,
        metrics=metrics,
        msf=msf,
        amp_dtype=run.amp_dtype,
        channels_last=config.train.channels_last,
        batch_size=config.train.batch_size,
        workers=run.workers,
    )
