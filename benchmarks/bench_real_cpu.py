"""SSFormer (MiT-B0) trained from scratch on real Kvasir-SEG frames on the CPU, for a fixed time.

Usage::

    PYTHONPATH=src python benchmarks/bench_real_cpu.py --data DIR --minutes M [--size 128]

``DIR`` is a Kvasir-SEG folder as Simula ships it (``images/*.jpg``, ``masks/*.jpg``; the 1000
pairs). It is only read: the pairs are copied into a work folder (``--work``, default a temporary
folder, removed at the end unless ``--keep``), which ``ssformer split`` cuts 80/10/10 with seed
1337 (the study's split, 800/100/100). ``ssformer train`` then trains SSFormer on MiT-B0 **from
scratch** (no ImageNet weights: ``MODEL.PRETRAINED=null``), official augmentation, Dice+BCE,
AdamW at 1e-4 without the official one-epoch warm-up (which trains epoch 1 at learning rate 0,
more than a short run can spare), on the CPU for ``--minutes`` (``TRAIN.TIME_LIMIT_MIN``; the epoch running at the limit is cut
short), selecting the best epoch on the validation split. The script prints the learning curve
(one line per epoch, from the run's ``metrics.jsonl``) and the test split's numbers of the best
weights under each ``EVAL.RECIPE`` (``ssformer val --set EVAL.RECIPE=...``), every metric with
its convention as ``ssformer val`` names it.

Every step runs through the ``ssformer`` command line, as a user would run it. The run folder is
printed at the end; with ``--work DIR`` (or ``--keep``) it stays, and
``bench_real_speed.py --weights RUN/best.pth`` reuses its weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ssformer.registry import EVAL_RECIPES

CURVE_COLUMNS = (
    "steps",
    "train_loss",
    "val/Dice@0.5",
    "val/mDice",
    "val/mIoU_2cls",
    "train_time_s",
)
TABLE_METRICS = ("mDice", "mIoU", "Dice@0.5", "IoU@0.5", "official_dice", "mDice_2cls", "MAE")


def ssformer(*argv: str) -> None:
    """Run ``python -m ssformer ARGV`` (output streams through); stop on failure."""
    command = [sys.executable, "-m", "ssformer", *argv]
    print("$ ssformer " + " ".join(argv), flush=True)
    finished = subprocess.run(command, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"ssformer {argv[0]} failed with exit status {finished.returncode}")


def copy_dataset(source: Path, target: Path) -> int:
    """Copy ``source/{images,masks}`` into ``target`` (the source is never written); count pairs."""
    for folder in ("images", "masks"):
        if not (source / folder).is_dir():
            raise SystemExit(f"{source} has no {folder}/ folder: give a Kvasir-SEG folder")
        shutil.copytree(source / folder, target / folder)
    return len(list((target / "images").iterdir()))


def train_settings(split_root: Path, save_dir: Path, args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides of the run (on top of the packaged ``ssformer-s-split``)."""
    size = f"[{args.size},{args.size}]"
    return [
        "DEVICE=cpu",
        "MODEL.NAME=SSFormer",
        "MODEL.BACKBONE=MiT-B0",
        "MODEL.PRETRAINED=null",
        "DATASET.NAME=Kvasir",
        f"DATASET.ROOT={split_root}",
        f"SAVE_DIR={save_dir}",
        f"TRAIN.IMAGE_SIZE={size}",
        f"EVAL.IMAGE_SIZE={size}",
        f"TRAIN.BATCH_SIZE={args.batch}",
        "TRAIN.EPOCHS=1000",
        f"TRAIN.TIME_LIMIT_MIN={args.minutes}",
        "TRAIN.AMP=false",
        "SCHEDULER.WARMUP=0",  # the official 1-epoch warm-up runs epoch 1 at learning rate 0
    ]


def newest_run(save_dir: Path) -> Path:
    """The run folder ``ssformer train`` just wrote (the one holding ``metrics.jsonl``)."""
    runs = sorted(save_dir.glob("*/*/metrics.jsonl"), key=lambda path: path.stat().st_mtime)
    if not runs:
        raise SystemExit(f"no run folder with metrics.jsonl under {save_dir}")
    return runs[-1].parent


def print_curve(run: Path) -> None:
    """One line per epoch of ``run/metrics.jsonl``."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    print("\nlearning curve (validation split, 100 frames):")
    print(f"{'epoch':>5}  " + "  ".join(f"{name:>14}" for name in CURVE_COLUMNS))
    for row in rows:
        values = [row.get(name) for name in CURVE_COLUMNS]
        cells = [
            f"{v:14d}"
            if isinstance(v, int)
            else f"{v:14.4f}"
            if isinstance(v, float)
            else f"{'-':>14}"
            for v in values
        ]
        print(f"{row['epoch']:>5}  " + "  ".join(cells))


def evaluate_recipes(run: Path, out: Path) -> dict[str, dict[str, float]]:
    """``ssformer val`` of the run's best weights on the test split under every recipe."""
    results = {}
    for recipe in EVAL_RECIPES:
        folder = out / recipe
        ssformer(
            "val",
            "--cfg",
            str(run / "config.yaml"),
            "--weights",
            str(run / "best.pth"),
            "--out",
            str(folder),
            "--set",
            f"EVAL.RECIPE={recipe}",
        )
        payload = json.loads((folder / "eval_test.json").read_text())
        results[recipe] = payload["metrics"] | {"num_images": payload["num_images"]}
    return results


def print_recipes(results: dict[str, dict[str, float]]) -> None:
    print("\ntest split under each EVAL.RECIPE (best weights; conventions: ssformer val):")
    print(f"{'metric':>14}  " + "  ".join(f"{recipe:>15}" for recipe in results))
    for name in (*TABLE_METRICS, "num_images"):
        cells = [f"{results[recipe].get(name, float('nan')):15.4f}" for recipe in results]
        print(f"{name:>14}  " + "  ".join(cells))


def run(args: argparse.Namespace, work: Path) -> Path:
    data = work / "Kvasir-SEG"
    pairs = copy_dataset(args.data, data)
    print(f"copied {pairs} pairs of {args.data} to {data}")
    ssformer("split", str(data), "--output", str(work / "split"), "--seed", "1337")
    started = time.perf_counter()
    save_dir = work / "output"
    settings = train_settings(work / "split", save_dir, args)
    ssformer("train", "--cfg", "ssformer-s-split", "--no-progress", "--set", *settings)
    wall = time.perf_counter() - started
    run_dir = newest_run(save_dir)
    print_curve(run_dir)
    print(f"training wall time {wall:.0f} s (limit {args.minutes} min; MiT-B0 from scratch, CPU)")
    print_recipes(evaluate_recipes(run_dir, work / "eval"))
    return run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Kvasir-SEG folder (read only)")
    parser.add_argument("--minutes", type=float, required=True, help="training time limit")
    parser.add_argument("--size", type=int, default=128, help="train/eval side (default 128)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.work is not None:
        if args.work.exists():
            raise SystemExit(f"{args.work} exists; choose a new --work folder")
        args.work.mkdir(parents=True)
        run_dir = run(args, args.work)
        print(f"run folder: {run_dir}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-real-cpu-"))
    try:
        run_dir = run(args, work)
        print(f"run folder: {run_dir}" + ("" if args.keep else " (removed: use --keep)"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
