"""Speed on real Kvasir-SEG frames: the pair cache's first fill, a training epoch, ``ssformer val``
against the official ``test.py`` pipeline plus PySODMetrics, and the OpenVINO exports.

Usage::

    PYTHONPATH=src python benchmarks/bench_real_speed.py --data DIR --official-repo REPO \\
        [--weights RUN/best.pth] [--size 352] [--train-size 128] [--skip-epoch] [--skip-exports]

``DIR`` is a Kvasir-SEG folder (``images/``, ``masks/``; the 1000 pairs), only read: the pairs are
copied into a work folder and split 80/10/10 with seed 1337 (800/100/100). ``REPO`` is a
checkout of https://github.com/Qiming-Huang/ssformer: its ``utils/test_transforms.py`` (the test
transforms of ``configs/ssformer-S.yaml``) and its ``Fmeasure_calu`` (from ``utils/tools.py``,
whose module imports need packages the official code does not use here, so the function alone
is compiled from the file) run as they are; nothing of it is copied. ``--weights`` is a
checkpoint of SSFormer on MiT-B0 (``bench_real_cpu.py --work W`` leaves ``best.pth`` in its run
folder); without it an untrained MiT-B0 SSFormer is used (the timings hold, the Dice do not).

1. **Cache first fill**: :class:`ssformer.data.cache.PairCache` at ``--size`` over all 1000
   pairs, one thread (what a training run with 0 workers did in its first epoch) and
   :meth:`~ssformer.data.cache.PairCache.fill` with one thread per CPU; total and per frame, and
   the check that both caches hold the same bytes.
2. **A training epoch**: ``ssformer train`` for 2 epochs at ``--train-size`` (from scratch,
   CPU); its log's timestamps show the file check (every pair decoded once) and the cache fill
   at that size (before epoch 1, one thread per CPU), then each epoch's seconds.
3. **Evaluation of the 100 test frames**: ``run_evaluation`` (``ssformer val``) under every
   ``EVAL.RECIPE`` against the official pipeline on the same frames with the same model: its
   ``CustomDataSet`` steps (PIL, the test transforms, batch 1), sigmoid, bilinear resize to the
   image size, ``> 0.5``, its 256-threshold ``Fmeasure_calu`` loop, then PySODMetrics (S, E, Fw,
   MAE, F) on the 8-bit map and GT, as the polyp papers' toolbox. Ratio official / ours, both
   timed in this process, one after the other.
4. **Exports** (unless ``--skip-exports``): ``ssformer export --format openvino`` in fp32, bf16
   and int8 (NNCF, calibrated on training frames); ``ssformer predict`` of the 100 test frames
   with each and with torch fp32; seconds per frame (whole command: load, decode, write) and
   the mean per-frame Dice of each export's masks against torch fp32's.

The machine's load changes the absolute numbers; ratios measured in one run hold better.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ssformer.data.cache import PairCache
from ssformer.data.datasets import find_pairs
from ssformer.registry import EVAL_RECIPES


def ssformer(*argv: str) -> float:
    """Run ``python -m ssformer ARGV``; its wall time in seconds (stop on failure)."""
    print("$ ssformer " + " ".join(argv), flush=True)
    started = time.perf_counter()
    finished = subprocess.run([sys.executable, "-m", "ssformer", *argv], check=False)
    if finished.returncode != 0:
        raise SystemExit(f"ssformer {argv[0]} failed with exit status {finished.returncode}")
    return time.perf_counter() - started


def prepare(source: Path, work: Path) -> Path:
    """Copy ``source/{images,masks}`` into ``work/Kvasir-SEG`` and split it; the split root."""
    data = work / "Kvasir-SEG"
    for folder in ("images", "masks"):
        if not (source / folder).is_dir():
            raise SystemExit(f"{source} has no {folder}/ folder: give a Kvasir-SEG folder")
        shutil.copytree(source / folder, data / folder)
    ssformer("split", str(data), "--output", str(work / "split"), "--seed", "1337")
    return work / "split"


# ------------------------------------------------------------------------------- 1. cache fill


def cache_fill(data: Path, work: Path, size: int) -> None:
    """Time the first fill of every pair, one thread and one thread per CPU; compare bytes."""
    pairs = find_pairs(data)
    threads = os.cpu_count() or 1
    timings = {}
    for label, count in (("1 thread", 1), (f"{threads} threads", threads)):
        folder = work / "cache" / label.replace(" ", "-")
        cache = PairCache(folder, (size, size))
        started = time.perf_counter()
        decoded = cache.fill(pairs, threads=count)
        timings[label] = time.perf_counter() - started
        seconds = timings[label]
        print(
            f"cache first fill, {label}: {decoded} pairs at {size}x{size} in {seconds:.1f} s "
            f"({1000 * seconds / max(decoded, 1):.1f} ms per frame)"
        )
    folders = [work / "cache" / label.replace(" ", "-") for label in timings]
    first, second = (sorted(folder.rglob("*.npy")) for folder in folders)
    same = [a.name for a in first] == [b.name for b in second] and all(
        np.array_equal(np.load(a), np.load(b)) for a, b in zip(first, second, strict=True)
    )
    ratio = timings["1 thread"] / timings[f"{threads} threads"]
    print(f"threaded fill x{ratio:.2f} faster; the two caches hold identical entries: {same}")
    if not same:
        raise SystemExit("the threaded fill made other entries than the sequential one")


# ------------------------------------------------------------------------------- 2. an epoch


def train_epochs(split: Path, work: Path, size: int, batch: int) -> None:
    """``ssformer train`` for 2 epochs at ``size``; print each epoch's seconds."""
    save_dir = work / "epochs"
    ssformer(
        "train",
        "--cfg",
        "ssformer-s-split",
        "--no-progress",
        "--set",
        "DEVICE=cpu",
        "MODEL.NAME=SSFormer",
        "MODEL.BACKBONE=MiT-B0",
        "MODEL.PRETRAINED=null",
        f"DATASET.ROOT={split}",
        f"SAVE_DIR={save_dir}",
        f"TRAIN.IMAGE_SIZE=[{size},{size}]",
        f"EVAL.IMAGE_SIZE=[{size},{size}]",
        f"TRAIN.BATCH_SIZE={batch}",
        "TRAIN.EPOCHS=2",
        "TRAIN.AMP=false",
    )
    metrics = next(save_dir.glob("*/*/metrics.jsonl"))
    for line in (metrics.parent / "train.log").read_text().splitlines():
        if " data cache: " in line or " data: " in line or " starting run " in line:
            print("train.log: " + line[:160])  # timestamps: files checked, cache filled
    for line in metrics.read_text().splitlines():
        row = json.loads(line)
        print(
            f"epoch {row['epoch']}: train {row['train_time_s']:.1f} s "
            f"({row['train_img_per_s']:.2f} img/s), validation {row['eval_time_s']:.1f} s"
        )


# -------------------------------------------------------------- 3. ssformer val vs official


def load_by_path(name: str, path: Path) -> ModuleType:
    """Import one file of the official checkout as module ``name`` (not its package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_fmeasure(repo: Path) -> Callable[..., tuple[float, ...]]:
    """``Fmeasure_calu`` of the official ``utils/tools.py``, compiled alone from the file."""
    path = repo / "utils" / "tools.py"
    tree = ast.parse(path.read_text())
    nodes = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "Fmeasure_calu"]
    if len(nodes) != 1:
        raise SystemExit(f"{path} defines no Fmeasure_calu: is {repo} the official repository?")
    namespace: dict[str, object] = {"np": np}
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)
    return namespace["Fmeasure_calu"]  # type: ignore[return-value]


def official_pipeline(
    model: torch.nn.Module, repo: Path, pairs: list[tuple[Path, Path]], size: int
) -> tuple[float, float]:
    """The official test.py loop over ``pairs`` plus PySODMetrics; (seconds, mean Dice)."""
    from py_sod_metrics import MAE, Emeasure, Fmeasure, Smeasure, WeightedFmeasure

    transforms = load_by_path("official_test_transforms", repo / "utils" / "test_transforms.py")
    steps = [
        transforms.resize(size=[size, size]),
        transforms.tonumpy(),
        transforms.normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        transforms.totensor(),
    ]
    fmeasure = official_fmeasure(repo)
    thresholds = np.linspace(1, 0, 256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure's deprecation notice
        suite = (Smeasure(), Emeasure(), WeightedFmeasure(), MAE(), Fmeasure())
    dices = []
    started = time.perf_counter()
    with torch.no_grad():
        for image_path, mask_path in pairs:
            image = Image.open(image_path).convert("RGB")
            label = Image.open(mask_path).convert("L")
            sample = {"image": image, "gt": label, "name": image_path.name, "shape": label.size}
            for step in steps:
                sample = step(sample)
            x = torch.as_tensor(sample["image"]).float()[None]
            prob = torch.sigmoid(model(x))
            prob = F.interpolate(prob, size=image.size[::-1], mode="bilinear", align_corners=False)
            pred = (prob > 0.5).float()[0, 0].numpy()
            gt = np.asarray(torch.as_tensor(sample["gt"]).float()).astype(np.uint8).squeeze()
            pred = (pred - pred.min()) / (pred.max() - pred.min() + 1e-8)
            dices.append(np.mean([fmeasure(pred, gt, t)[3] for t in thresholds]))
            grey = np.asarray(label)
            saved = (prob[0, 0].numpy() * 255).astype(np.uint8)  # the 8-bit map papers save
            for metric in suite:
                metric.step(pred=saved, gt=grey)
    for metric in suite:
        metric.get_results()
    return time.perf_counter() - started, float(np.mean(dices))


def val_config(split: Path, work: Path, size: int, recipe: str):  # -> Config
    from ssformer.config import load_config

    return load_config(
        "ssformer-s-split",
        [
            "DEVICE=cpu",
            "MODEL.NAME=SSFormer",
            "MODEL.BACKBONE=MiT-B0",
            "MODEL.PRETRAINED=null",
            f"DATASET.ROOT={split}",
            f"SAVE_DIR={work / 'val'}",
            f"EVAL.IMAGE_SIZE=[{size},{size}]",
            f"EVAL.RECIPE={recipe}",
        ],
    )


def val_versus_official(split: Path, work: Path, weights: Path, repo: Path, size: int) -> None:
    """Time ``ssformer val`` per recipe and the official pipeline on the 100 test frames."""
    from ssformer.engine.evaluate import run_evaluation
    from ssformer.models.factories import model_from_checkpoint

    pairs = find_pairs(split / "test")
    model = model_from_checkpoint(weights).eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))  # warm-up, as for ours below
    official_s, official_dice = official_pipeline(model, repo, pairs, size)
    print(
        f"official test.py pipeline + PySODMetrics: {len(pairs)} frames in {official_s:.1f} s "
        f"({1000 * official_s / len(pairs):.0f} ms per frame); its Dice {official_dice:.4f}"
    )
    for recipe in EVAL_RECIPES:
        config = val_config(split, work, size, recipe)
        started = time.perf_counter()
        outputs = run_evaluation(
            config, weights=weights, out_dir=work / "val" / recipe, echo=lambda *a, **k: None
        )
        seconds = time.perf_counter() - started
        metrics = next(iter(outputs.values())).metrics
        print(
            f"ssformer val, EVAL.RECIPE={recipe}: {seconds:.1f} s "
            f"({1000 * seconds / len(pairs):.0f} ms per frame), official/ours x"
            f"{official_s / seconds:.2f}; official_dice {metrics['official_dice']:.4f}, "
            f"mDice {metrics['mDice']:.4f}, Dice@0.5 {metrics['Dice@0.5']:.4f}"
        )


# ------------------------------------------------------------------------------- 4. exports


def mask_dice(a: Path, b: Path) -> float:
    """Dice of two 0/255 mask files (1.0 when both are empty)."""
    x = np.asarray(Image.open(a).convert("L")) > 127
    y = np.asarray(Image.open(b).convert("L")) > 127
    total = int(x.sum()) + int(y.sum())
    return 1.0 if total == 0 else 2.0 * int((x & y).sum()) / total


def exports(split: Path, work: Path, weights: Path, size: int) -> None:
    """OpenVINO fp32/bf16/int8 exports: predict seconds per frame, mask Dice vs torch fp32."""
    images = split / "test" / "images"
    frames = len(list(images.iterdir()))
    outputs = {}
    for precision in ("torch", "fp32", "bf16", "int8"):
        model = weights
        if precision != "torch":
            model = work / "exports" / f"ssformer-{precision}.xml"
            extra = (
                ["--calibration", str(split / "train" / "images")] if precision == "int8" else []
            )
            ssformer(
                "export",
                "--weights",
                str(weights),
                "--format",
                "openvino",
                "--precision",
                precision,
                "--image-size",
                str(size),
                str(size),
                "--out",
                str(model),
                *extra,
            )
        outputs[precision] = work / "predict" / precision
        seconds = ssformer(
            "predict",
            str(images),
            "--weights",
            str(model),
            "--size",
            str(size),
            "--no-overlay",
            "--out",
            str(outputs[precision]),
        )
        print(f"predict {precision}: {frames} frames, {1000 * seconds / frames:.0f} ms per frame")
    reference = sorted(outputs["torch"].glob("*_mask.png"))
    for precision in ("fp32", "bf16", "int8"):
        dices = [mask_dice(path, outputs[precision] / path.name) for path in reference]
        print(
            f"OpenVINO {precision} masks vs torch fp32: mean Dice {np.mean(dices):.4f}, "
            f"min {np.min(dices):.4f} over {len(dices)} frames"
        )


# ------------------------------------------------------------------------------------- main


def untrained_weights(work: Path) -> Path:
    """An untrained SSFormer on MiT-B0 saved as our checkpoint (timings only)."""
    import ssformer as package
    from ssformer.models.loading import save_checkpoint_file

    torch.manual_seed(0)
    model = package.build_model("SSFormer", "MiT-B0", num_classes=1)
    return save_checkpoint_file(work / "untrained-mit-b0.pth", model)


def run(args: argparse.Namespace, work: Path) -> None:
    split = prepare(args.data, work)
    weights = args.weights or untrained_weights(work)
    print(f"weights: {weights}" + ("" if args.weights else " (untrained: Dice are meaningless)"))
    cache_fill(work / "Kvasir-SEG", work, args.size)
    if not args.skip_epoch:
        train_epochs(split, work, args.train_size, args.batch)
    val_versus_official(split, work, weights, args.official_repo, args.size)
    if not args.skip_exports:
        exports(split, work, weights, args.size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Kvasir-SEG folder (read only)")
    parser.add_argument("--official-repo", type=Path, required=True, help="official checkout")
    parser.add_argument("--weights", type=Path, default=None, help="SSFormer MiT-B0 checkpoint")
    parser.add_argument("--size", type=int, default=352, help="cache/eval side (352)")
    parser.add_argument("--train-size", type=int, default=128, help="epoch's side (128)")
    parser.add_argument("--batch", type=int, default=8, help="training batch size (8)")
    parser.add_argument("--skip-epoch", action="store_true", help="no training epochs")
    parser.add_argument("--skip-exports", action="store_true", help="no OpenVINO exports")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: temp)")
    args = parser.parse_args(argv)
    if not (args.official_repo / "utils" / "test_transforms.py").is_file():
        raise SystemExit(f"{args.official_repo} is not a checkout of the official repository")
    torch.set_num_threads(os.cpu_count() or 1)
    if args.work is not None:
        if args.work.exists():
            raise SystemExit(f"{args.work} exists; choose a new --work folder")
        run(args, args.work)
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-real-speed-"))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
