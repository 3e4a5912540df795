"""``ssformer export``: a checkpoint to an ONNX or OpenVINO file for CPU inference, checked.

Steps: refuse a request that cannot work (precision for the format, an output that exists);
build the model from the checkpoint; read the int8 calibration images (a missing folder fails
before minutes of work); export it to ONNX with torch's dynamo exporter (dynamic batch,
height and width; ``static``: height and width fixed); for OpenVINO convert that file to IR
(fp32 weights), quantised to int8 with NNCF for ``int8``; run the result in its runtime and
compare its logits with torch's on the same inputs: fp32 must be within 1e-4 (else nothing is
kept), bf16 and int8 state their difference, int8 also its mask Dice against fp32. Then the
files are renamed into place and the sidecar written beside them
(:mod:`ssformer.deploy.sidecar`).

The source may also be an fp32 ONNX export (``--weights MODEL.onnx --format openvino``): it is
converted without tracing again and checked against ONNX Runtime running the source file.

Outputs are never overwritten: an ``out`` that exists is refused; without ``out`` the export
goes beside the weights (``best.pth`` -> ``best.onnx``, ``best-int8.xml``), or to the first free
``best-2.onnx``, ``best-3.onnx``, ... (and says so).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ssformer.deploy.calibration import CalibrationSet, calibration_set, mask_dice
from ssformer.deploy.check import (
    check_inputs,
    check_record,
    max_logit_difference,
    require_fp32_parity,
)
from ssformer.deploy.convert import (
    OPSET,
    export_onnx,
    onnx_dynamic_dims,
    onnx_to_openvino,
    quantize_openvino,
    save_openvino,
)
from ssformer.deploy.formats import EXPORT_FORMATS, FILE_FORMATS
from ssformer.deploy.sessions import ExportedModel, OnnxRuntimeModel, OpenVINOModel
from ssformer.deploy.sidecar import (
    ExportInfo,
    export_files,
    package_versions,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from ssformer.errors import ExportError
from ssformer.image_size import PAPER_SIZE
from ssformer.io.digest import sha256_file
from ssformer.io.paths import why_not_file

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = ["ExportResult", "export_model_file", "output_path"]


@dataclass
class ExportResult:
    """The export written: its file, sidecar, what the sidecar says, and the wall time."""

    path: Path
    sidecar: Path
    info: ExportInfo
    seconds: float
    precision: str  # as computed on this machine (e.g. "fp32" when bf16 was asked on a CPU without)


@dataclass
class _Source:
    """What is exported: the fp32 reference to check against and the model it describes."""

    reference: Callable[[torch.Tensor], torch.Tensor]
    against: str
    model: str
    backbone: str
    num_classes: int
    record: dict[str, Any]
    torch_model: torch.nn.Module | None = None
    onnx: Path | None = None
    onnx_info: ExportInfo | None = None


def _check_request(weights: Path, file_format: str, precision: str, static: bool) -> None:
    if file_format not in EXPORT_FORMATS:
        raise ExportError(f"--format {file_format!r}: choose onnx or openvino")
    if file_format == "onnx" and precision != "fp32":
        raise ExportError(
            f"--precision {precision} is made for OpenVINO (bf16: its compute precision; int8: "
            f"NNCF quantisation); ONNX exports are fp32: use --format openvino --precision "
            f"{precision}"
        )
    suffix = weights.suffix.lower()
    if suffix == ".xml" or (suffix == ".onnx" and file_format == "onnx"):
        raise ExportError(
            f"{weights} is already a {FILE_FORMATS[suffix]} export; give its checkpoint "
            "(or an .onnx export with --format openvino)"
        )
    if suffix == ".onnx" and static:
        raise ExportError("--static applies to exports from a checkpoint, not from an .onnx file")


def output_path(
    weights: Path,
    file_format: str,
    precision: str,
    out: Path | None,
    echo: Callable[[str], None] | None = print,
) -> Path:
    """Where the export goes (see the module doc); refuses an ``out`` that exists."""
    suffix = EXPORT_FORMATS[file_format].suffix
    if out is not None:
        out = Path(out)
        if out.suffix.lower() != suffix:
            raise ExportError(f"--out {out}: a {file_format} export is a {suffix} file")
        taken = [p for p in [*export_files(out), sidecar_path(out)] if p.exists()]
        if taken:
            free = out.with_name(f"{out.stem}-2{suffix}")
            raise ExportError(
                f"{taken[0]} already exists and exports never overwrite files: remove it or "
                f"choose another name, e.g. `ssformer export --weights {weights} --format "
                f"{file_format} --precision {precision} --out {free}`"
            )
        return out
    stem = weights.stem if precision == "fp32" else f"{weights.stem}-{precision}"
    candidate, number = weights.with_name(stem + suffix), 1
    while any(p.exists() for p in [*export_files(candidate), sidecar_path(candidate)]):
        number += 1
        candidate = weights.with_name(f"{stem}-{number}{suffix}")
    if number > 1 and echo is not None:
        echo(f"{weights.with_name(stem + suffix)} exists; writing {candidate} instead")
    return candidate


def _load_source(weights: Path, config: Config | None) -> _Source:
    if not weights.is_file():
        raise ExportError(
            f"weights file {weights} {why_not_file(weights)}; pass the .pth file to export"
        )
    record = {"weights": str(weights), "sha256": sha256_file(weights)}
    if weights.suffix.lower() == ".onnx":
        info = read_sidecar(weights)
        if info.precision != "fp32":
            raise ExportError(f"{weights} is a {info.precision} export; convert fp32 ones only")
        session = OnnxRuntimeModel(weights, info)
        return _Source(
            reference=session,
            against=f"onnxruntime fp32 running {weights.name} (itself checked against torch)",
            model=info.model,
            backbone=info.backbone,
            num_classes=info.num_classes,
            record={**record, "converted_from": info.source},
            onnx=weights,
            onnx_info=info,
        )
    from ssformer.models import load_model

    model = load_model(weights, config).to("cpu", torch.float32).eval()
    return _Source(
        reference=model,
        against="torch fp32 eager",
        model=model.name,
        backbone=model.backbone_name,
        num_classes=model.num_classes,
        record=record,
        torch_model=model,
    )


def _onnx_file(
    source: _Source, work: Path, image_size: Sequence[int], static: bool
) -> tuple[Path, dict[str, bool]]:
    if source.onnx is not None:
        return source.onnx, onnx_dynamic_dims(source.onnx)
    assert source.torch_model is not None
    path = work / "model.onnx"
    return path, export_onnx(source.torch_model, path, image_size, static=static)


def _openvino_file(
    onnx_path: Path,
    work: Path,
    precision: str,
    calibration: CalibrationSet | None,
    dynamic: dict[str, bool],
) -> tuple[Path, dict[str, bool]]:
    """The OpenVINO IR of ``onnx_path`` and its dynamic dimensions. int8 fixes height and
    width to the calibration size: NNCF's quantisation parameters of some activations are
    per token, so the quantised graph holds only for that token count."""
    model = onnx_to_openvino(onnx_path)
    if precision == "int8":
        assert calibration is not None
        height, width = calibration.calibrate[0].shape[-2:]
        model.reshape({model.inputs[0]: [-1, 3, int(height), int(width)]})
        model = quantize_openvino(model, calibration.calibrate)
        dynamic = {**dynamic, "height": False, "width": False}
    return save_openvino(model, work / "model.xml"), dynamic


def _session(path: Path, info: ExportInfo) -> ExportedModel:
    if info.file_format == "onnx":
        return OnnxRuntimeModel(path, info)
    return OpenVINOModel(path, info)


def _checked(
    info: ExportInfo,
    source: _Source,
    session: ExportedModel,
    calibration: CalibrationSet | None,
) -> ExportInfo:
    """``info`` with its check (and calibration) entries; refuses fp32 beyond the limit."""
    inputs = check_inputs(info.image_size, info.dynamic_size)
    difference = max_logit_difference(source.reference, session, inputs)
    if info.precision == "fp32":
        require_fp32_parity(difference, f"the {info.file_format} export")
    check = check_record(difference, source.against, inputs, info.precision)
    check["computed_in"] = session.precision
    if calibration is None:
        return replace(info, check=check)
    dice = mask_dice(source.reference, session, calibration.dice_images)
    record = {
        "method": "NNCF post-training quantisation (preset mixed, classifier conv kept fp32)",
        "source": calibration.source,
        "images": len(calibration.calibrate),
        "mask_dice_vs_fp32": dice,
        "dice_on": (
            f"{len(calibration.held_out)} held-out images"
            if calibration.held_out
            else f"the {len(calibration.calibrate)} calibration images"
        ),
    }
    return replace(info, check=check, calibration=record)


def _move_into_place(made: Path, target: Path) -> None:
    """Rename the files of an export (``.bin`` before ``.xml``) onto their final names."""
    for part, final in reversed(list(zip(export_files(made), export_files(target), strict=True))):
        os.replace(part, final)


def export_model_file(
    weights: str | Path,
    file_format: str,
    *,
    precision: str = "fp32",
    out: Path | None = None,
    image_size: Sequence[int] | None = None,
    config: Config | None = None,
    static: bool = False,
    calibration: Path | None = None,
    calibration_images: int = 64,
    echo: Callable[[str], None] | None = print,
) -> ExportResult:
    """``ssformer export`` (see the module doc). ``image_size`` (the check's and the nominal
    input size) defaults to the source export's, else 352x352."""
    started = time.monotonic()
    weights = Path(weights)
    _check_request(weights, file_format, precision, static)
    target = output_path(weights, file_format, precision, out, echo)
    source = _load_source(weights, config)
    if image_size is None:
        image_size = source.onnx_info.image_size if source.onnx_info else PAPER_SIZE
    size = (int(image_size[0]), int(image_size[1]))
    calib = None
    if precision == "int8":
        calib = calibration_set(size, calibration_images, folder=calibration, config=config)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".ssformer-export-") as tmp:
        onnx_path, dynamic = _onnx_file(source, Path(tmp), size, static)
        made = onnx_path
        if file_format == "openvino":
            made, dynamic = _openvino_file(onnx_path, Path(tmp), precision, calib, dynamic)
        info = ExportInfo(
            file_format=file_format,
            precision=precision,
            model=source.model,
            backbone=source.backbone,
            num_classes=source.num_classes,
            image_size=size,
            dynamic=dynamic,
            source=source.record,
            versions={
                **package_versions(
                    "torch", "onnx", "onnxscript", EXPORT_FORMATS[file_format].runtime
                ),
                **({"nncf": package_versions("nncf")["nncf"]} if precision == "int8" else {}),
                "exporter": "torch.onnx.export(dynamo=True)",
                "opset": OPSET,
            },
        )
        session = _session(made, info)
        info = _checked(info, source, session, calib)
        computed = session.precision
        del session
        _move_into_place(made, target)
    side = write_sidecar(target, info)
    return ExportResult(target, side, info, time.monotonic() - started, computed)
