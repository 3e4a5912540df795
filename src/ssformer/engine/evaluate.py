"""Evaluation: run a model over a dataset and score it under every named metric convention.

For each image the model's polyp probability is taken at the evaluation size (sigmoid of a
1-channel model; softmax channel 1 of a 2-channel model), optionally averaged over the
multi-scale + flip test-time augmentation of the reproduction study's framework
(``EVAL.MSF``: each scale ``s`` resizes the input to ``ceil(s*H/32)*32`` x ``ceil(s*W/32)*32``
bilinearly with ``align_corners=True``, the logits come back to ``H x W`` the same way, and the
probabilities of all scales and flips are averaged). Then

- the pooled 2-class metrics (``mIoU_2cls``/``mDice_2cls``, the reproduction study's) get the
  prediction ``prob > 0.5`` (= argmax) and the GT at the evaluation size, as that study does;
- every per-image metric (``mDice``, ``Dice@0.5``, ``official_dice``, ...) gets the probability
  resized bilinearly (``align_corners=False``, as the official ``test.py``) to the original mask
  size and the original mask, as the SSFormer paper, PraNet and FCBFormer do.

See :data:`ssformer.metrics.METRIC_CONVENTIONS` for what each number means. Used during training
(``train_one_epoch`` / ``evaluate``, MAE-style) and by ``ssformer val``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ssformer.data.check import refuse_empty_masks
from ssformer.data.datasets import innermost
from ssformer.data.protocols import build_datasets
from ssformer.data.recipes import toolbox_map
from ssformer.deploy.runtimes import load_inference_model, resolve_runtime
from ssformer.deploy.sessions import runtime_label
from ssformer.engine.execution import resolve_device, resolve_workers
from ssformer.engine.saved_maps import MapFolder, map_folders
from ssformer.errors import ExportError, SSFormerError
from ssformer.io.atomic import write_text_atomic
from ssformer.metrics import METRIC_CONVENTIONS, SegmentationEvaluator, resize_probability
from ssformer.models.factories import load_model
from ssformer.registry import TRAINING_METRIC_NAMES
from ssformer.run_files import eval_file_name, is_run_folder

if TYPE_CHECKING:
    from ssformer.config import Config, MSFConfig

__all__ = [
    "TRAINING_METRICS",
    "EvalOutput",
    "evaluate",
    "evaluate_sets",
    "format_metrics_table",
    "mean_over_sets",
    "polyp_probability",
    "predict_probability",
    "run_evaluation",
    "write_eval_json",
]

CONFUSION_KEY = "confusion_2cls"
"""Per-image row key of the image's pooled 2-class counts ``[[TN, FP], [FN, TP]]``."""

# Metrics computed at every validation during training by default (EVAL.METRICS: fast).
TRAINING_METRICS: tuple[str, ...] = TRAINING_METRIC_NAMES


@dataclass
class EvalOutput:
    """Aggregated metrics, per-image rows and the image count. A row holds ``name``,
    ``Dice@0.5``, ``IoU@0.5`` and the image's value of every other per-image metric computed
    that is a mean over images (``mDice``, ``mIoU``, ``MAE``, ``official_*``, ``S_alpha``,
    ``Fw_beta``, ``E_phi_mean``/``E_phi_adp``, ``Fm_mean``/``Fm_adp``; not the ``*_max`` of the
    dataset-mean curves), and ``confusion_2cls`` (the image's pooled 2-class counts) when a
    pooled metric is computed."""

    metrics: dict[str, float]
    per_image: list[dict[str, Any]] = field(default_factory=list)
    num_images: int = 0


def polyp_probability(logits: torch.Tensor) -> torch.Tensor:
    """Polyp probability [B, h, w] from logits [B, C, h, w]: sigmoid (C = 1) or softmax ch. 1."""
    logits = logits.float()
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, 1]


class NonFiniteOutputError(SSFormerError):
    """The model produced NaN or infinite logits (broken weights)."""


def _forward_probability(
    model: nn.Module, images: torch.Tensor, size: tuple[int, int], amp_dtype: torch.dtype | None
) -> torch.Tensor:
    with torch.autocast(
        device_type=images.device.type,
        dtype=amp_dtype or torch.float32,
        enabled=amp_dtype is not None,
    ):
        logits = model(images)
    logits = logits.float()
    if not bool(torch.isfinite(logits).all()):
        raise NonFiniteOutputError(
            "the model's output holds NaN or infinite values: its weights are broken (a training "
            "that diverged?); evaluate other weights"
        )
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
    return polyp_probability(logits)


@torch.no_grad()
def predict_probability(
    model: nn.Module,
    images: torch.Tensor,
    msf: MSFConfig | None = None,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Polyp probability [B, H, W] for normalised images [B, 3, H, W], with optional MSF."""
    height, width = images.shape[-2:]
    if msf is None or not msf.enable:
        return _forward_probability(model, images, (height, width), amp_dtype)
    total = torch.zeros(images.shape[0], height, width, device=images.device)
    count = 0
    for scale in msf.scales:
        new_h = math.ceil(int(scale * height) / 32) * 32
        new_w = math.ceil(int(scale * width) / 32) * 32
        scaled = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=True)
        total += _forward_probability(model, scaled, (height, width), amp_dtype)
        count += 1
        if msf.flip:  # a flip commutes with the resize and the sigmoid/softmax
            flipped = torch.flip(scaled, dims=(3,))
            prob = _forward_probability(model, flipped, (height, width), amp_dtype)
            total += torch.flip(prob, dims=(-1,))
            count += 1
    return total / count


def _score_image(
    evaluator: SegmentationEvaluator,
    base: Any,
    index: int,
    prob: torch.Tensor,
    mask: torch.Tensor,
    needs: tuple[bool, bool, bool],
    toolbox: bool,
) -> tuple[dict[str, Any], torch.Tensor | None]:
    """Add one image to ``evaluator``; returns its row values and its 8-bit toolbox map (when
    the toolbox recipe or a saved map needs it). ``needs``: (pooled metrics, per-image
    metrics, a saved map).

    Pooled: ``prob > 0.5`` against the mask at the evaluation size, the row keeping the image's
    2x2 counts; per-image: the probability resized to the original mask's size."""
    pooled, per_image, want_map = needs
    values: dict[str, Any] = {}
    if pooled:
        values[CONFUSION_KEY] = evaluator.update_pooled(prob > 0.5, mask > 0.5).tolist()
    if not (per_image or want_map):
        return values, None
    gt = torch.from_numpy(base.original_mask(index)).to(prob.device)
    saved = None
    if toolbox or want_map:
        saved = toolbox_map(torch.logit(prob.double(), eps=1e-12), tuple(gt.shape))
    if per_image:
        full = resize_probability(prob, tuple(gt.shape)).clamp_(0.0, 1.0)
        values.update(evaluator.update(full, gt, saved_map=saved if toolbox else None))
    return values, saved


def _loader(dataset: Dataset, batch_size: int, workers: int) -> DataLoader:
    """In order; where the inputs differ in size (the study's aspect-kept resize), each batch
    holds images of one size (in order of first appearance)."""
    base, indices = innermost(dataset)
    input_size = getattr(base, "input_size", None)
    if input_size is None or batch_size == 1:
        return DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=workers, drop_last=False
        )
    groups: dict[tuple[int, int], list[int]] = {}
    for position, index in enumerate(indices):
        groups.setdefault(input_size(index), []).append(position)
    batches = [
        members[start : start + batch_size]
        for members in groups.values()
        for start in range(0, len(members), batch_size)
    ]
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Any,
    device: torch.device,
    *,
    metrics: Sequence[str] | None = TRAINING_METRICS,
    msf: MSFConfig | None = None,
    amp_dtype: torch.dtype | None = None,
    batch_size: int = 1,
    workers: int = 0,
    progress: bool = False,
    description: str = "eval",
    channels_last: bool = False,
    save_maps: MapFolder | None = None,
) -> EvalOutput:
    """Score ``model`` on ``dataset`` (a :class:`ssformer.data.datasets.PolypDataset`).

    ``dataset`` items are dicts with ``image`` [3,H,W], ``mask`` [1,H,W] and ``index``; the
    dataset gives ``original_mask(index)`` and ``names``. ``metrics`` = keys of
    :data:`ssformer.metrics.METRIC_CONVENTIONS` (``None``: all of them). ``save_maps``: also
    write each image's 8-bit toolbox map (:func:`ssformer.data.recipes.toolbox_map`) there.
    Each per-image row holds the image's pooled 2-class confusion counts (``confusion_2cls``)
    when a pooled metric is computed, for the bootstrap intervals of :mod:`ssformer.report`.
    """
    was_training = model.training
    model.eval()
    wanted = tuple(metrics) if metrics is not None else tuple(METRIC_CONVENTIONS)
    pooled = any(key in ("mIoU_2cls", "mDice_2cls") for key in wanted)
    per_image_wanted = any(key not in ("mIoU_2cls", "mDice_2cls") for key in wanted)
    # Every per-image row carries Dice@0.5 and IoU@0.5 (the report picks samples by them),
    # asked for or not; compute() below keeps only what was asked for.
    row_keys = ("Dice@0.5", "IoU@0.5") if per_image_wanted else ()
    evaluator = SegmentationEvaluator(tuple(dict.fromkeys(wanted + row_keys)))
    base, indices = innermost(dataset)  # items carry the index into the innermost dataset
    position = {index: place for place, index in enumerate(indices)}
    names = list(getattr(base, "names", []))
    recipe = getattr(base, "recipe", None)  # a RecipeEvalDataset's; training's cached sets: none
    toolbox = recipe is not None and recipe.scores_saved_map
    needs = (pooled, per_image_wanted, save_maps is not None)
    per_image: list[dict[str, Any]] = []
    batches: Iterable[dict[str, Any]] = _loader(dataset, batch_size, workers)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=description, leave=False)
    try:
        for batch in batches:
            images = batch["image"].to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            probs = predict_probability(model, images, msf=msf, amp_dtype=amp_dtype)
            masks = batch["mask"].to(probs.device)
            for row, index in enumerate(batch["index"].tolist()):
                name = names[index] if index < len(names) else str(index)
                values, saved = _score_image(
                    evaluator, base, index, probs[row], masks[row, 0], needs, toolbox
                )
                if save_maps is not None and saved is not None:
                    save_maps.write(name, saved)
                per_image.append({"index": index, "name": name, **values})
    finally:
        model.train(was_training)
    # size-grouped batches: rows back in the order of the dataset
    per_image.sort(key=lambda item: position[item.pop("index")])
    num_images = len(per_image) if per_image_wanted else evaluator.num_pooled
    results = {key: value for key, value in evaluator.compute().items() if key in wanted}
    return EvalOutput(metrics=results, per_image=per_image, num_images=num_images)


def _refuse_empty_sets(sets: dict[str, Dataset]) -> None:
    """Refuse a set whose masks are (nearly) all empty: its scores would measure nothing."""
    for dataset in sets.values():
        base, indices = innermost(dataset)
        masks = [base.pairs[i][1] for i in indices]
        if masks:
            refuse_empty_masks(masks, masks[0].parent)


def format_metrics_table(results: dict[str, float], title: str = "") -> str:
    """A plain-text table: metric, value, convention (from ``METRIC_CONVENTIONS``)."""
    lines = [title] if title else []
    width = max((len(key) for key in results), default=6)
    lines.append(f"{'metric'.ljust(width)}  {'value':>9}  convention")
    lines.append(f"{'-' * width}  {'-' * 9}  {'-' * 10}")
    for key, value in results.items():
        convention = METRIC_CONVENTIONS.get(key, "")
        shown = f"{value:9.4f}" if math.isfinite(value) else f"{'undefined':>9}"
        lines.append(f"{key.ljust(width)}  {shown}  {convention}")
    return "\n".join(lines)


def evaluate_sets(
    model: nn.Module,
    datasets: dict[str, Any],
    device: torch.device,
    *,
    metrics: Sequence[str] | None,
    msf: MSFConfig | None,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    batch_size: int,
    workers: int,
) -> dict[str, EvalOutput]:
    """:func:`evaluate` on each named dataset with the same settings (training's validation
    and its final test scoring)."""
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


def mean_over_sets(outputs: dict[str, EvalOutput]) -> dict[str, float]:
    """Each metric's mean over the evaluated sets (the one set's own metrics when alone)."""
    if len(outputs) == 1:
        return dict(next(iter(outputs.values())).metrics)
    keys = next(iter(outputs.values())).metrics.keys()
    return {k: float(np.mean([o.metrics[k] for o in outputs.values()])) for k in keys}


def write_eval_json(
    path: Path,
    *,
    split: str,
    dataset: str,
    weights: Path,
    output: EvalOutput,
    msf: MSFConfig | None,
    image_size: Sequence[int],
    recipe: str | None = None,
    epoch: int | None = None,
    runtime: str = "torch fp32",
) -> Path:
    """Write one evaluation as JSON (the layout :mod:`ssformer.report.runs` reads), atomically.
    ``recipe``: the evaluation pipeline (``EVAL.RECIPE``); ``epoch``: the training epoch of the
    weights, when known; ``runtime``: what computed the model and in which precision
    (:func:`ssformer.deploy.sessions.runtime_label`)."""
    name, _, precision = runtime.partition(" ")
    payload = {
        "split": split,
        "dataset": dataset,
        "weights": str(weights),
        "runtime": name,
        "precision": precision,
        "image_size": list(image_size),
        "msf": bool(msf and msf.enable),
        "recipe": recipe,
        "num_images": output.num_images,
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in output.metrics.items()},
        "conventions": {k: METRIC_CONVENTIONS[k] for k in output.metrics},
        "per_image": output.per_image,
    }
    if epoch is not None:
        payload["epoch"] = epoch
    return write_text_atomic(path, json.dumps(payload, indent=1) + "\n")


def _eval_json_path(
    config: Config, weights: Path, name: tuple[str, str, str], tag: str, out_dir: Path | None
) -> Path:
    """Where ``ssformer val`` writes the JSON of ``name`` (split, evaluation set, suffix such as
    ``_msf``); ``tag``: ``""`` for torch, ``_openvino`` and the like for an export (see
    run_evaluation)."""
    split, set_name, suffix = name
    if out_dir is not None:
        return Path(out_dir) / eval_file_name(split, set_name, suffix + tag)
    if is_run_folder(weights.parent):
        prefix = f"{weights.stem}{tag}_" if tag else ""
        return weights.parent / eval_file_name(split, set_name, suffix, prefix)
    # outside a run folder the weights' stem replaces the "eval_" of the name
    name_in_run = eval_file_name(split, set_name, suffix).removeprefix("eval_")
    return Path(config.save_dir) / "eval" / f"{weights.stem}{tag}_{name_in_run}"


def _evaluation_model(
    config: Config, path: Path, runtime: str | None, compile: bool, echo: Any
) -> tuple[nn.Module, torch.device]:
    """The model ``ssformer val`` scores and the device its inputs go to (the CPU for an
    export run by ONNX Runtime or OpenVINO)."""
    runtime = resolve_runtime(path, runtime)
    if runtime != "torch":
        if compile:
            raise ExportError(
                f"--compile compiles torch models; the {runtime} runtime compiles the export "
                "itself: drop --compile"
            )
        size = tuple(config.eval.image_size)
        return load_inference_model(path, runtime, config, image_size=size, echo=echo), (
            torch.device("cpu")
        )
    device = resolve_device(config.device)
    model = load_model(path, config).to(device).eval()
    if compile:
        from ssformer.engine.compiled import compile_for_inference

        model = compile_for_inference(model, device)
    return model, device


def _evaluation_sets(config: Config, split: str, echo: Callable[[str], None]) -> dict[str, Any]:
    """The sets ``ssformer val`` scores; the PraNet test sets absent from the folder are named."""
    data = build_datasets(config, split)
    missing = data.missing_note() if split == "test" else None
    if missing:
        echo(missing)
    return data.evaluation_sets(split)


def _table_title(
    config: Config, what: str, output: EvalOutput, weights: str, msf: MSFConfig
) -> str:
    """The title of one set's metrics table: what was scored, how, and by which weights."""
    width, height = config.eval.image_size
    title = (
        f"{what} ({output.num_images} images, recipe {config.eval.recipe} at {width}x{height}),"
        f" weights {weights}"
    )
    return title + (f", MSF scales {list(msf.scales)} flip {msf.flip}" if msf.enable else "")


def run_evaluation(
    config: Config,
    *,
    weights: str | Path | None = None,
    split: str = "test",
    metrics: Sequence[str] | None = None,
    msf: MSFConfig | None = None,
    out_dir: Path | None = None,
    progress: bool = False,
    echo: Any = print,
    compile: bool = False,
    runtime: str | None = None,
    save_maps: Path | None = None,
) -> dict[str, EvalOutput]:
    """``ssformer val``: score the weights on ``split``, print tables, write ``eval_*.json``.

    ``weights`` defaults to ``EVAL.MODEL_PATH``; ``msf`` to ``EVAL.MSF``. The JSON goes to
    ``out_dir``, else to the weights' run folder when they lie in one (``eval_<split>.json``,
    ``eval_<split>_<set>.json`` for the PraNet sets, ``_msf`` appended with MSF), else to
    ``SAVE_DIR/eval/<weights stem>_...``. A previous file of the same name is replaced.
    ``compile``: channels-last and ``torch.compile`` (:mod:`ssformer.engine.compiled`).
    ``runtime``: ``torch``, ``onnxruntime`` or ``openvino`` (:mod:`ssformer.deploy.runtimes`;
    default: the weights file's own); the JSON of another runtime than torch is named
    ``<weights stem>_<runtime>_eval_<split>.json`` in a run folder (never replacing torch's
    ``eval_<split>.json``), with ``_<runtime>`` added to the name elsewhere. ``save_maps``: see
    :func:`ssformer.engine.saved_maps.map_folders`.
    """
    path = Path(weights or config.eval.model_path or config.best_checkpoint_path)
    model, device = _evaluation_model(config, path, runtime, compile, echo)
    label = runtime_label(model)
    tag = "" if label.startswith("torch") else f"_{label.split()[0]}"
    msf = config.eval.msf if msf is None else msf
    sets = _evaluation_sets(config, split, echo)
    _refuse_empty_sets(sets)
    folders = map_folders(save_maps, sets, config.dataset.name)  # all checked before scoring
    # a subset of the metrics never replaces the full table that report reads
    suffix = ("_msf" if msf.enable else "") + ("_subset" if metrics else "")
    workers = resolve_workers(config, device)
    results: dict[str, EvalOutput] = {}
    for name, dataset in sets.items():
        output = evaluate(
            model,
            dataset,
            device,
            metrics=metrics,
            msf=msf,
            progress=progress,
            description=name,
            # A compiled model is specialised to one input shape: batch 1 avoids a smaller last
            # batch compiling again (the study recipe's aspect-kept sizes still compile once
            # per distinct size).
            batch_size=1 if compile else config.train.batch_size,
            workers=workers,
            save_maps=folders.get(name),
        )
        results[name] = output
        dataset_name = config.dataset.name if name in ("test", "val") else name
        if name in folders:
            echo(f"wrote {len(folders[name].written)} maps into {folders[name].folder}")
        title = _table_title(config, f"{dataset_name} {split}", output, f"{path}, {label}", msf)
        echo(format_metrics_table(output.metrics, title=title))
        target = _eval_json_path(config, path, (split, name, suffix), tag, out_dir)
        existed = target.exists()
        write_eval_json(
            target,
            split=split,
            dataset=dataset_name,
            weights=path,
            output=output,
            msf=msf,
            image_size=config.eval.image_size,
            recipe=config.eval.recipe,
            runtime=label,
        )
        echo(f"{'replaced' if existed else 'wrote'} {target}")
    return results
