"""``ssformer export``: a checkpoint to ONNX or OpenVINO for CPU inference (see
:mod:`ssformer.deploy.export`).

``ssformer export --weights W --format onnx|openvino [--precision fp32|bf16|int8] [--out PATH]
[--image-size H W] [--static] [--calibration DIR] [--cfg F]``. The export is checked against
torch (fp32: within 1e-4, else refused) and gets a JSON sidecar (``PATH.json``) that makes the
file usable alone: ``ssformer predict --weights PATH``, ``ssformer val --weights PATH``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ssformer.commands.train import add_config_arguments, config_weights
from ssformer.deploy.formats import EXPORT_FORMATS, PRECISIONS

if TYPE_CHECKING:
    from ssformer.config import Config
    from ssformer.deploy.export import ExportResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export weights to ONNX or OpenVINO (checked against torch) for CPU inference",
        description=(
            "Export a checkpoint with torch's dynamo ONNX exporter (dynamic batch, height and "
            "width), for OpenVINO converted to IR (int8: quantised with NNCF on calibration "
            "images). The result is compared with torch (fp32: max |logits diff| <= 1e-4 or "
            "nothing is kept) and described by a JSON sidecar. Existing files are never "
            "overwritten."
        ),
    )
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint (or an .onnx)")
    add_config_arguments(parser, required=False)
    parser.add_argument("--format", choices=tuple(EXPORT_FORMATS), required=True)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--out", type=Path, default=None, help="output file (.onnx / .xml)")
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="nominal input size, checked on export (and int8's fixed size); default: the "
        "size the weights were evaluated at when they record it, else EVAL.IMAGE_SIZE or 352 352",
    )
    parser.add_argument(
        "--static", action="store_true", help="fix height and width to --image-size"
    )
    parser.add_argument(
        "--calibration", type=Path, default=None, help="int8: folder of training images"
    )
    parser.add_argument(
        "--calibration-images", type=int, default=64, metavar="N", help="int8: images (64)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ssformer.errors import ConfigError

    config = None
    if args.cfg is not None:
        from ssformer.config import load_config

        config = load_config(args.cfg, args.overrides)
    weights = args.weights
    if weights is None and config is not None:
        weights = config_weights(config)
    if weights is None:
        raise ConfigError("give --weights PATH (a checkpoint, or an .onnx export)")
    size = _export_size(weights, args.image_size, config)

    from ssformer.deploy.export import export_model_file

    result = export_model_file(
        weights,
        args.format,
        precision=args.precision,
        out=args.out,
        image_size=size,
        config=config,
        static=args.static,
        calibration=args.calibration,
        calibration_images=args.calibration_images,
    )
    print(describe_export(result, weights))
    return 0


def _export_size(
    weights: Path, told: list[int] | None, config: Config | None
) -> tuple[int, int] | None:
    """The nominal size: ``--image-size``, else the checkpoint's own, else ``EVAL.IMAGE_SIZE``
    or 352 (printed with its source); an ONNX file given as the source keeps its sidecar's."""
    from ssformer.models.sizes import choose_size, recorded_sizes

    if Path(weights).suffix.lower() == ".onnx" and told is None:
        return None
    return choose_size(
        recorded_sizes(weights),
        told=(told[0], told[1]) if told else None,
        told_by="--image-size",
        configured=tuple(config.eval.image_size) if config is not None else None,  # type: ignore[arg-type]
        configured_by=f"EVAL.IMAGE_SIZE of {config.source}" if config is not None else "",
    )


def describe_export(result: ExportResult, weights: Path) -> str:
    """The lines ``ssformer export`` prints."""
    info, check = result.info, result.info.check
    extra = f" (+ {result.path.with_suffix('.bin').name})" if info.file_format == "openvino" else ""
    hint = "bf16" if info.precision == "bf16" else "f32"
    computed = f"computed in {result.precision}"
    if info.file_format == "openvino":
        computed += f", INFERENCE_PRECISION_HINT={hint}"
    probability = "sigmoid(logits[:, 0])" if info.num_classes == 1 else "softmax channel 1"
    limit = f" (limit {check['limit']:.0e})" if check.get("limit") else " (stated, no limit)"
    inputs = ", ".join("x".join(str(d) for d in shape) for shape in check["inputs"])
    lines = [
        f"exported {info.model} {info.backbone} from {weights} to {result.path}{extra} "
        f"in {result.seconds:.0f} s",
        f"  format     {info.file_format}, precision {info.precision} ({computed})",
        f"  input      image {info.describe_shapes()}; nominal {info.image_size[0]}x"
        f"{info.image_size[1]}; RGB, (pixel / 255 - ImageNet mean) / std",
        f"  output     logits [N, {info.num_classes}, H, W] at the input's size; polyp "
        f"probability {probability}",
        f"  check      max |logits diff| vs {check['against']} = "
        f"{check['max_abs_logit_diff']:.1e}{limit} on inputs {inputs}",
    ]
    if info.calibration:
        calibration = info.calibration
        lines.append(
            f"  int8       mask Dice vs fp32 {calibration['mask_dice_vs_fp32']:.4f} on "
            f"{calibration['dice_on']}; calibrated on {calibration['images']} images "
            f"({calibration['source']})"
        )
    lines.append(f"  sidecar    {result.sidecar}")
    return "\n".join(lines)
