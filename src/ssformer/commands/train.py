"""``ssformer train``: train one model from a config file (see :mod:`ssformer.engine.train`).

``ssformer train --cfg configs/kvasir-seg.yaml [--set KEY=VALUE ...] [--resume [RUN|last]]``.
The config is loaded and validated before torch is imported, so a mistyped key fails at once.
A sweep file (lists of models/backbones) is refused with a pointer to ``ssformer sweep``.
Under ``torchrun`` with ``TRAIN.DDP: true`` every process runs this command.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ssformer.config import Config


def add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--cfg`` and ``--set`` (shared by train, val and predict)."""
    parser.add_argument(
        "--cfg",
        required=required,
        metavar="FILE",
        help="config file (or a packaged config name such as kvasir-seg)",
    )
    add_overrides_argument(parser)


def add_overrides_argument(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE ...`` (repeatable), collected in ``args.overrides``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. --set DEVICE=cpu TRAIN.EPOCHS=1 (repeatable)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a config file",
        description=(
            "Train one model. Each run writes into a new folder "
            "SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>/<timestamp>: config.yaml, train.log, "
            "metrics.jsonl/.csv, last.pth (resumable), best.pth; the best weights are also "
            "copied to SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>.pth. Multi-GPU: torchrun "
            "--nproc_per_node N tools/train.py --cfg F --set TRAIN.DDP=true."
        ),
    )
    add_config_arguments(parser, required=False)
    parser.add_argument(
        "--resume",
        nargs="?",
        const="last",
        default=None,
        metavar="RUN",
        help="continue a run: its folder, its last.pth, or 'last' (default: the newest run "
        "of this model/backbone/dataset; without --cfg, the newest run under output/); "
        "without --cfg, the run's own config.yaml is used",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress", dest="progress", action="store_true", default=None, help="progress bar"
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)


def _load(args: argparse.Namespace):  # -> Config (typed lazily: keep torch out)
    from ssformer.config import load_config
    from ssformer.errors import ConfigError
    from ssformer.run_files import CONFIG, is_run_folder, resumable_runs

    if args.cfg is not None:
        return load_config(args.cfg, args.overrides)
    if args.resume is None:
        raise ConfigError(
            "give --cfg FILE (or --resume RUN_FOLDER, which reads the run's config.yaml)"
        )
    if args.resume == "last":  # the newest run under the default SAVE_DIR
        runs = resumable_runs(Path("output"), levels=2)
        if not runs:
            raise ConfigError(
                "--resume without --cfg resumes the newest run under output/, and there is "
                "none with a last.pth: give --cfg FILE (its SAVE_DIR is searched) or "
                "--resume RUN_FOLDER"
            )
        args.resume = str(runs[-1])
    run = Path(args.resume)
    run = run.parent if run.is_file() else run
    if not is_run_folder(run):
        raise ConfigError(f"--resume {args.resume}: {run / CONFIG} not found; add --cfg")
    return load_config(run / CONFIG, args.overrides)


def run(args: argparse.Namespace) -> int:
    config = _load(args)  # validated before torch is imported

    from ssformer.engine.train import run_training

    result = run_training(config, resume=args.resume, progress=args.progress)
    best = "n/a" if result.best_metric is None else f"{result.best_metric:.4f}"
    print(
        f"run folder: {result.run_dir}\nbest {result.best_metric_name}: {best} "
        f"(epoch {result.best_epoch})"
    )
    return 0


def config_weights(config: Config) -> Path | None:
    """The weights ``--cfg`` means: the ones ``ssformer train --cfg`` of the same config wrote
    (``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>.pth``), unless ``TEST.MODEL_PATH`` names a file of
    this very model. (The study's ``kvasir-seg.yaml`` trains SegFormer but its ``TEST`` section
    names a PLDSegFormer file.)"""
    test_path = Path(config.test.model_path) if config.test.model_path else None
    trained = config.best_checkpoint_path
    if test_path is not None and test_path.stem == config.run_name:
        return test_path
    if trained.is_file():
        if test_path is not None:
            print(
                f"using {trained}, the weights this config trains (TEST.MODEL_PATH={test_path} "
                "is another model's); --weights PATH chooses others"
            )
        return trained
    if test_path is not None and test_path.is_file():
        return test_path
    if test_path is None:
        return trained
    from ssformer.errors import ConfigError

    raise ConfigError(
        f"neither {trained} (the weights `ssformer train --cfg {config.source}` writes) nor "
        f"TEST.MODEL_PATH={test_path} exists: train first, or give --weights PATH"
    )
