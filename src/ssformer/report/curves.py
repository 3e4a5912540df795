"""Training curves of one run from its ``metrics.jsonl``: loss, validation scores, learning rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssformer.report.grid import save_figure
from ssformer.report.runs import RunRecord

LOSS_KEYS = ("train_loss", "loss", "train/loss")
LR_KEYS = ("lr", "train/lr")
SCORE_WORDS = ("dice", "iou")


def _series(epochs: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for record in epochs:
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            xs.append(float(record["epoch"]))
            ys.append(float(value))
    return xs, ys


def score_keys(epochs: list[dict[str, Any]]) -> list[str]:
    """Validation score keys in the log (``val/...`` with Dice or IoU in the name), sorted."""
    keys: list[str] = []
    for record in epochs:
        for key in record:
            lower = key.lower()
            is_val = lower.startswith(("val/", "val_", "test/"))
            if is_val and any(word in lower for word in SCORE_WORDS) and key not in keys:
                keys.append(key)
    return sorted(keys)


def _selected_epoch(epochs: list[dict[str, Any]]) -> float | None:
    """The epoch the run kept as best (``best_epoch`` of its last record), if logged."""
    for record in reversed(epochs):
        value = record.get("best_epoch")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def write_curves_png(run: RunRecord, path: Path) -> bool:
    """Plot loss, validation Dice/IoU and learning rate vs epoch; ``False`` if nothing to plot."""
    if not run.epochs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    loss_ax, score_ax, lr_ax = axes
    plotted = False
    for key in LOSS_KEYS:
        xs, ys = _series(run.epochs, key)
        if xs:
            loss_ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=key)
            plotted = True
    loss_ax.set_title("training loss")
    selected = _selected_epoch(run.epochs)
    for key in score_keys(run.epochs):
        xs, ys = _series(run.epochs, key)
        if not xs:
            continue
        percent = "_2cls" in key  # ssformer.metrics writes the pooled keys x100 already
        values = ys if percent else [100.0 * y for y in ys]
        label = key if percent else f"{key} ×100"
        marker = "o" if len(xs) < 30 else None
        score_ax.plot(xs, values, marker=marker, ms=3, label=label)
        plotted = True
    if selected is not None:
        score_ax.axvline(selected, color="#555555", ls="--", lw=1, label=f"best epoch {selected:g}")
    score_ax.set_title("validation scores (%)")
    for key in LR_KEYS:
        xs, ys = _series(run.epochs, key)
        if xs:
            lr_ax.plot(xs, ys, color="#6a3d9a", label=key)
            lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            plotted = True
    lr_ax.set_title("learning rate")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(
                0.5,
                0.5,
                "not logged",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="#888",
            )
    data = "synthetic data (generated, not Kvasir)" if run.is_synthetic else run.dataset
    title = f"{run.name}: {run.model} + {run.backbone} on {data}"
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    if plotted:
        save_figure(fig, path)
    plt.close(fig)
    return plotted
