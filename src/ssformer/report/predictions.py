"""Predictions grid of one run: image, ground truth, prediction and overlay for the test images
the model segments best and worst (by per-image ``Dice@0.5``).

Per-image scores come from the run's ``eval_test*.json`` (``per_image``, written by
``ssformer val``); when a file has none, the report scores the test images itself. Predictions
are made by loading the run's ``best.pth`` (:func:`ssformer.models.model_from_checkpoint`)
and segmenting the chosen images at the run's evaluation size. Without weights or data the
report says so instead of drawing a grid (:class:`PredictionsUnavailable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssformer.image_size import PAPER_SIZE, as_size
from ssformer.report.grid import save_figure
from ssformer.report.runs import EvalResult, RunRecord

DISPLAY_HEIGHT = 256  # pixels per image in the grid


class PredictionsUnavailable(Exception):
    """The grid cannot be drawn (no weights, no data); the message says why and what to do."""


@dataclass(frozen=True)
class Sample:
    """One test image chosen for the grid."""

    tag: str  # "best 1", "worst 2", ...
    name: str
    score: float | None


def _config_size(run: RunRecord) -> tuple[int, int]:
    for section in ("EVAL", "TRAIN"):
        settings = run.config.get(section)
        value = settings.get("IMAGE_SIZE") if isinstance(settings, dict) else None
        if isinstance(value, int):
            return (value, value)
        if isinstance(value, list | tuple) and len(value) == 2:
            return as_size(value)
    return PAPER_SIZE


def test_folder(run: RunRecord, result: EvalResult) -> Path:
    """Folder with the test images/masks of ``result``: ``ROOT/test`` (split protocol) or
    ``ROOT/TestDataset/<set>`` (PraNet protocol); relative roots are tried from the current
    folder and from the run folder's ancestors."""
    if not run.dataset_root:
        raise PredictionsUnavailable("config.yaml has no DATASET.ROOT: no test images to show")
    from ssformer.data.layout import PROTOCOLS

    protocol = PROTOCOLS["pranet" if run.protocol == "pranet" else "split"]
    root = Path(run.dataset_root).expanduser()
    candidates = [root] if root.is_absolute() else [Path.cwd() / root]
    if not root.is_absolute():
        candidates += [parent / root for parent in run.path.parents]
    for base in candidates:
        folder = protocol.test_set_folder(base, result.test_set)
        if folder.is_dir():
            return folder
    raise PredictionsUnavailable(
        f"test images not found under DATASET.ROOT={run.dataset_root!r} (looked in "
        f"{', '.join(str(c) for c in candidates[:3])}); download the data or run the report "
        "from the folder the run was trained in"
    )


def _read_rgb(path: Path) -> np.ndarray:
    from ssformer.data.decode import decode_image
    from ssformer.errors import DataError

    try:
        return decode_image(path)
    except DataError as error:
        raise PredictionsUnavailable(str(error)) from error


def choose_samples(
    per_image: list[dict[str, Any]], count: int, key: str = "Dice@0.5"
) -> list[Sample]:
    """The ``count`` best and ``count`` worst images by ``key`` (ties broken by name)."""
    scored = [p for p in per_image if isinstance(p.get(key), int | float) and "name" in p]
    scored.sort(key=lambda p: (-float(p[key]), str(p["name"])))
    count = min(count, len(scored) // 2) if len(scored) > 1 else len(scored)
    best = [
        Sample(f"best {i + 1}", str(p["name"]), float(p[key])) for i, p in enumerate(scored[:count])
    ]
    worst_rows = list(reversed(scored[-count:])) if count else []
    worst = [
        Sample(f"worst {i + 1}", str(p["name"]), float(p[key])) for i, p in enumerate(worst_rows)
    ]
    return best + worst


def _dice(pred: np.ndarray, gt: np.ndarray) -> float:
    inter = int(np.logical_and(pred, gt).sum())
    total = int(pred.sum()) + int(gt.sum())
    return 2.0 * inter / total if inter > 0 else 0.0


def overlay(rgb: np.ndarray, pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Image tinted green where prediction and GT agree, red for false positives, blue for misses."""
    out = rgb.astype(np.float32)
    colours = {
        (True, True): (40.0, 220.0, 40.0),
        (True, False): (235.0, 40.0, 40.0),
        (False, True): (40.0, 90.0, 255.0),
    }
    for (p, g), colour in colours.items():
        where = (pred == p) & (gt == g)
        out[where] = out[where] * (1 - alpha) + np.array(colour, np.float32) * alpha
    return out.clip(0, 255).astype(np.uint8)


def _fit(image: np.ndarray, height: int = DISPLAY_HEIGHT) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    interpolation = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    if image.dtype == bool:
        return (
            cv2.resize(image.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        )
    return cv2.resize(image, (width, height), interpolation=interpolation)


def write_predictions_png(
    run: RunRecord, path: Path, count: int = 2, device: str = "cpu", max_images: int = 1000
) -> str:
    """Draw the grid for the run's first test evaluation; returns a one-line description.

    Raises :class:`PredictionsUnavailable` when weights, data or a test evaluation are missing.
    """
    results = run.test_evals()
    if not results:
        raise PredictionsUnavailable("no test evaluation (run `ssformer val` first)")
    result = results[0]
    if run.checkpoint is None:
        raise PredictionsUnavailable("no best.pth in the run folder: no model to predict with")
    folder = test_folder(run, result)

    import torch

    from ssformer.data.datasets import find_pairs
    from ssformer.data.decode import decode_mask
    from ssformer.engine.predict import Predictor
    from ssformer.errors import SSFormerError
    from ssformer.models import model_from_checkpoint

    try:
        pairs = {image.stem: (image, mask) for image, mask in find_pairs(folder)}
    except SSFormerError as error:
        raise PredictionsUnavailable(f"test data unusable: {error}") from error
    try:
        model = model_from_checkpoint(run.checkpoint).fuse()
    except SSFormerError as error:
        raise PredictionsUnavailable(f"{run.checkpoint.name} unusable: {error}") from error
    predictor = Predictor(model, _config_size(run), torch.device(device))

    per_image = [p for p in result.per_image if str(p.get("name")) in pairs]
    how = f"scores from {result.path.name}"
    predicted: dict[str, np.ndarray] = {}
    if not per_image:
        names = sorted(pairs)[:max_images]
        for name in names:
            image_path, mask_path = pairs[name]
            predicted[name] = predictor.mask(_read_rgb(image_path))
            score = _dice(predicted[name], decode_mask(mask_path))
            per_image.append({"name": name, "Dice@0.5": score})
        how = f"{result.path.name} has no per-image scores: scored {len(names)} images here"
    samples = choose_samples(per_image, count)
    if not samples:
        raise PredictionsUnavailable("no test image matches the per-image scores")

    rows = []
    for sample in samples:
        image_path, mask_path = pairs[sample.name]
        rgb = _read_rgb(image_path)
        gt = decode_mask(mask_path)
        if gt.shape != rgb.shape[:2]:
            import cv2

            gt = (
                cv2.resize(gt.astype(np.uint8), rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST)
                > 0
            )
        pred = predicted[sample.name] if sample.name in predicted else predictor.mask(rgb)
        rows.append((sample, rgb, gt, pred))
    _draw_grid(run, rows, path, how)
    return f"{len(rows)} images ({how})"


def _draw_grid(
    run: RunRecord,
    rows: list[tuple[Sample, np.ndarray, np.ndarray, np.ndarray]],
    path: Path,
    how: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = [_fit(rgb).shape[1] / DISPLAY_HEIGHT for _, rgb, _, _ in rows]
    aspect = max(widths)
    fig, axes = plt.subplots(
        len(rows), 4, figsize=(4 * 2.6 * aspect, len(rows) * 2.75 + 0.9), dpi=110, squeeze=False
    )
    titles = ("image", "ground truth", "prediction (p > 0.5)", "overlay")
    for index, (sample, rgb, gt, pred) in enumerate(rows):
        panels = (_fit(rgb), _fit(gt), _fit(pred), _fit(overlay(rgb, pred, gt)))
        for column, panel in enumerate(panels):
            ax = axes[index, column]
            ax.imshow(
                panel,
                cmap="gray" if panel.ndim == 2 else None,
                vmin=0,
                vmax=1 if panel.dtype == bool else 255,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if index == 0:
                ax.set_title(titles[column], fontsize=11)
        score = f"Dice@0.5 {sample.score:.3f}" if sample.score is not None else ""
        name = sample.name if len(sample.name) <= 26 else sample.name[:24] + "…"
        axes[index, 0].set_ylabel(f"{sample.tag}\n{name}\n{score}", fontsize=9)
    label = "synthetic data, not Kvasir" if run.is_synthetic else run.dataset
    fig.suptitle(
        f"{run.model} + {run.backbone} ({label}): best and worst test images\n{run.name}",
        fontsize=11,
    )
    fig.text(
        0.5,
        0.005,
        f"overlay: green = correct polyp, red = false positive, blue = missed polyp; {how}",
        ha="center",
        va="bottom",
        fontsize=9,
        color="#444444",
    )
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    save_figure(fig, path)
    plt.close(fig)
