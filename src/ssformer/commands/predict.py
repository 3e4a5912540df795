"""``ssformer predict``: binary masks (PNG, original size) and overlays for images, folders, videos.

``ssformer predict --weights W INPUT... [--out DIR] [--size 352] [--overlay]`` or, with the
config's ``TEST`` section (the reproduction study's ``tools/infer.py``),
``ssformer predict --cfg F`` (``TEST.MODEL_PATH``, ``TEST.FILE``, ``TEST.IMAGE_SIZE``,
``TEST.OVERLAY``; output ``SAVE_DIR/test_results``). Results never overwrite files: an output
folder that already holds files is left alone and ``DIR-2``, ``DIR-3``, ... is used instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ssformer.config import Config

from ssformer.commands.train import add_config_arguments, config_weights
from ssformer.deploy.formats import RUNTIMES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment images, folders or videos with trained weights",
        description=(
            "Write NAME_mask.png (0/255, original size) and NAME_overlay.png per image; "
            "NAME_mask.mp4 / NAME_overlay.mp4 per video."
        ),
    )
    parser.add_argument("inputs", nargs="*", type=Path, metavar="INPUT", help="image/folder/video")
    parser.add_argument("--weights", type=Path, default=None, help="default: TEST.MODEL_PATH")
    add_config_arguments(parser, required=False)
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument(
        "--size",
        nargs="+",
        default=None,
        metavar="H [W]",
        help="inference size, each side 32..4096 (default: the size the weights were evaluated at, "
        "when they record it; else TEST.IMAGE_SIZE or 352); inputs may follow it",
    )
    parser.add_argument(
        "--overlay", action=argparse.BooleanOptionalAction, default=None, help="write overlays"
    )
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model first (~1 min; pays for many images or video frames)",
    )
    add_runtime_argument(parser)
    parser.set_defaults(func=run)


def add_runtime_argument(parser: argparse.ArgumentParser) -> None:
    """``--runtime torch|onnxruntime|openvino`` (shared by predict, val and bench)."""
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=None,
        help="what runs the model: torch (default for checkpoints), onnxruntime (default for "
        ".onnx exports) or openvino (default for .xml; also runs .onnx); a checkpoint is "
        "exported to ONNX first (ssformer export keeps such a file); fp32 unless the export "
        "says otherwise",
    )


def split_size_argument(values: list[str] | None) -> tuple[tuple[int, int] | None, list[Path]]:
    """``--size SIDE`` or ``--size H W``, inputs may follow (``--size 96 clip.mp4``): the size
    ``(h, w)`` and the inputs after it, or :class:`ConfigError` naming the values and the range."""
    from ssformer.errors import ConfigError
    from ssformer.image_size import SIZE_RANGE

    if not values:
        return None, []
    count = 0
    while count < len(values) and values[count].lstrip("+-").isdigit():
        count += 1
    given = " ".join(values[: max(count, 1)])
    if count == 0:
        raise ConfigError(f"--size {given}: give the height (and width) in pixels, e.g. --size 352")
    if count > 2:
        raise ConfigError(
            f"--size {given}: give one side (--size 352) or height and width (--size 352 416), "
            f"not {count} numbers"
        )
    numbers = [int(v) for v in values[:count]]
    low, high = SIZE_RANGE
    bad = [n for n in numbers if not low <= n <= high]
    if bad:
        raise ConfigError(
            f"--size {given}: {', '.join(map(str, bad))} is outside {low}..{high} pixels; the "
            "models were trained at 352 (--size 352), which is the usual choice"
        )
    return (numbers[0], numbers[-1]), [Path(v) for v in values[count:]]


def inference_size(
    weights: Path,
    info: object | None,
    told: tuple[int, int] | None,
    overrides: list[str],
    config: Config | None,
) -> tuple[int, int]:
    """The input size: ``--size`` (or ``--set TEST.IMAGE_SIZE``), else the weights' own (an
    export's nominal size, or the evaluation size our checkpoints record), else the config's
    ``TEST.IMAGE_SIZE`` or 352; printed with its source."""
    from ssformer.models.sizes import RecordedSizes, choose_size, overridden, recorded_sizes

    told_by = "--size"
    if told is None and (told := overridden(overrides, "TEST.IMAGE_SIZE")) is not None:
        told_by = "--set TEST.IMAGE_SIZE"
    if info is not None:
        recorded = RecordedSizes(None, tuple(info.image_size))  # type: ignore[attr-defined]
    else:
        recorded = recorded_sizes(weights)
    return choose_size(
        recorded,
        told=told,
        told_by=told_by,
        configured=tuple(config.test.image_size) if config is not None else None,  # type: ignore[arg-type]
        configured_by=f"TEST.IMAGE_SIZE of {config.source}" if config is not None else "",
    )


def run(args: argparse.Namespace) -> int:
    from ssformer.errors import ConfigError

    config = None
    if args.cfg is not None:
        from ssformer.config import load_config

        config = load_config(args.cfg, args.overrides)
    size_told, more_inputs = split_size_argument(args.size)
    inputs = list(args.inputs) + more_inputs
    if not inputs and config is not None and config.test.file:
        inputs = [Path(config.test.file)]
    if not inputs:
        raise ConfigError("give INPUT files/folders/videos (or --cfg F with TEST.FILE)")
    weights = args.weights or (config_weights(config) if config is not None else None)
    if weights is None:
        raise ConfigError("give --weights PATH (or --cfg F with TEST.MODEL_PATH)")
    from ssformer.deploy.runtimes import exported_info, resolve_runtime

    runtime = resolve_runtime(weights, args.runtime)
    if args.compile and runtime != "torch":
        raise ConfigError(
            f"--compile compiles torch models; the {runtime} runtime compiles the export "
            "itself: drop --compile"
        )
    info = exported_info(weights)
    size = inference_size(weights, info, size_told, args.overrides, config)
    overlay = args.overlay
    if overlay is None:
        overlay = config.test.overlay if config is not None else True
    out = args.out
    if out is None:
        out = (
            Path(config.save_dir) / "test_results"
            if config is not None
            else Path("output/predictions")
        )

    from ssformer.deploy.runtimes import load_inference_model
    from ssformer.deploy.sessions import ExportedModel, runtime_label
    from ssformer.engine.execution import resolve_device
    from ssformer.engine.predict import Predictor, predict_paths

    device = resolve_device(args.device or (config.device if config is not None else "auto"))
    model = load_inference_model(weights, runtime, config, image_size=size)
    if isinstance(model, ExportedModel):
        model.check_size(size)
    predictor = Predictor(model, size, device, compile=args.compile)
    print(
        f"{getattr(model, 'name', 'model')} {getattr(model, 'backbone_name', '')} from "
        f"{weights}, {runtime_label(predictor.model)}, input {size[0]}x{size[1]}"
    )
    result = predict_paths(predictor, inputs, out, overlay=overlay)
    print(
        f"{result.images} image(s), {result.frames} video frame(s) segmented in "
        f"{result.seconds:.1f} s ({result.per_second:.1f} per second, end to end, on "
        f"{device if runtime == 'torch' else 'cpu'}, {runtime_label(predictor.model)}); "
        f"results in {result.out_dir}"
    )
    return 0
