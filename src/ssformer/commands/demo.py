"""``ssformer demo``: the whole pipeline on embedded synthetic data, on the CPU, in minutes.

Generate the synthetic polyp dataset, split it 80/10/10 with seed 1337, train SSFormer (MiT-B0,
from scratch) with the packaged ``demo`` config, score the best epoch on the test split, segment a
few test images and write the report. Every step skips what an earlier demo already made, except
training, which starts a new run folder each time (no run is ever overwritten).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ssformer.commands.train import add_overrides_argument
from ssformer.run_files import TRAIN_LOG

DEMO_CONFIG = "demo"
SYNTHETIC_IMAGES = 200
SYNTHETIC_SIZE = 176
SYNTHETIC_SEED = 0
PREDICTED_IMAGES = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on synthetic data (CPU: about 5-10 minutes on 2 cores)",
        description=(
            "synth -> split (80/10/10, seed 1337) -> train SSFormer MiT-B0 -> test -> predict -> "
            "report, with the packaged demo config (override keys with --set)."
        ),
    )
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"), help="synthetic data")
    add_overrides_argument(parser)
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssformer.config import load_config

    config = load_config(DEMO_CONFIG, args.overrides)  # fail on a bad --set before any work
    started = time.monotonic()

    from ssformer.data.split import split_dataset
    from ssformer.data.synthetic import generate_synthetic_dataset
    from ssformer.engine.predict import Predictor, predict_paths
    from ssformer.engine.train import run_training
    from ssformer.models import load_model
    from ssformer.report import build_report

    data = Path(args.data)
    print(f"[1/6] synthetic data: {data}", flush=True)
    if (data / "images").is_dir() and any((data / "images").iterdir()):
        print(f"      {data} exists already; using it")
    else:
        generate_synthetic_dataset(
            data, n=SYNTHETIC_IMAGES, size=SYNTHETIC_SIZE, seed=SYNTHETIC_SEED, size_jitter=0.2
        )

    split_root = Path(config.dataset.root)
    print(f"[2/6] split 80/10/10, seed 1337 -> {split_root}", flush=True)
    split = split_dataset(data, split_root)  # the study's 80/10/10, seed 1337
    counts = {name: len(files) for name, files in split.files.items()}
    print(f"      {counts}{'' if split.created else ' (made before)'}")

    print(f"[3/6] train {config.model.name} {config.model.backbone} on the CPU", flush=True)
    result = run_training(config, progress=args.progress)

    print("[4/6] test split (best epoch)", flush=True)
    test = result.test_results.get("test", {})
    for key in ("Dice@0.5", "IoU@0.5", "mDice", "mIoU", "mDice_2cls"):
        if key in test:
            print(f"      {key:<10} {test[key]:.4f}")

    print("[5/6] predictions on a few test images", flush=True)
    best = result.best_path or result.last_path
    model = load_model(best)
    test_images = sorted((split_root / "test" / "images").iterdir())[:PREDICTED_IMAGES]
    from ssformer.engine.execution import resolve_device

    predictor = Predictor(model, tuple(config.test.image_size), resolve_device(config.device))
    predictions = predict_paths(
        predictor, test_images, result.run_dir / "predictions", overlay=True, echo=None
    )

    print("[6/6] report", flush=True)
    report = build_report([result.run_dir], result.run_dir / "report")

    minutes = (time.monotonic() - started) / 60
    dice = test.get("Dice@0.5")
    print(
        "\nDemo finished in {:.1f} min.\n"
        "  test Dice@0.5 (per image, binarised at 0.5): {}\n"
        "  run folder:   {}\n"
        "  log:          {}\n"
        "  best weights: {}\n"
        "  predictions:  {}\n"
        "  report:       {}".format(
            minutes,
            "n/a" if dice is None else f"{dice:.4f}",
            result.run_dir,
            result.run_dir / TRAIN_LOG,
            best,
            predictions.out_dir,
            report.out_dir / "results.md",
        )
    )
    return 0
