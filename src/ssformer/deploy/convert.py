"""Conversions: a torch model to ONNX (torch's dynamo exporter), ONNX to OpenVINO IR, and an
OpenVINO model to int8 (NNCF post-training quantisation).

:func:`export_onnx` traces with ``torch.export`` and asks for a dynamic batch and, unless told
``static``, dynamic height and width (``Dim.AUTO``): every model here exports with both dynamic
(SSFormer, PLDSegFormer, SegFormer on MiT/PVTv2); if tracing with a dynamic size fails, it
retries with a fixed one and says so. Which dimensions came out dynamic is read back from the
written file (:func:`onnx_dynamic_dims`), not assumed. Every file is written atomically
(temporary name, then rename); the OpenVINO pair is renamed ``.bin`` first, ``.xml`` last.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssformer.deploy.optional import require
from ssformer.deploy.sidecar import INPUT_NAME, OUTPUT_NAME
from ssformer.errors import ExportError
from ssformer.io.atomic import atomic_target

__all__ = [
    "OPSET",
    "export_onnx",
    "onnx_dynamic_dims",
    "onnx_to_openvino",
    "quantize_openvino",
    "save_openvino",
]

LOG = logging.getLogger(__name__)
OPSET = 20  # the dynamo exporter's default opset in torch 2.14 (recorded in the sidecar)


def _example(image_size: tuple[int, int]) -> torch.Tensor:
    # batch 2: an example batch of 1 makes torch.export specialise the batch dimension to 1
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, *image_size, generator=generator)


def _dynamic_shapes(static: bool) -> tuple[dict[int, Any]]:
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1)}
    if not static:
        dims.update({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO})
    return (dims,)


def _trace(model: nn.Module, example: torch.Tensor, static: bool) -> Any:
    require("onnxscript", "exporting to ONNX")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing notes
        return torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            dynamic_shapes=_dynamic_shapes(static),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            verbose=False,
        )


def export_onnx(
    model: nn.Module, path: str | Path, image_size: Sequence[int], *, static: bool = False
) -> dict[str, bool]:
    """Export ``model`` (eval, CPU, fp32) to the ONNX file ``path``; returns which of
    ``batch``/``height``/``width`` are dynamic in the file."""
    model = model.to("cpu", torch.float32).eval()
    example = _example((int(image_size[0]), int(image_size[1])))
    try:
        program = _trace(model, example, static)
    except ExportError:
        raise
    except Exception as error:  # tracing a dynamic size failed: fixed height and width
        if static:
            raise ExportError(
                f"torch.onnx.export failed: {type(error).__name__}: {error}"
            ) from error
        LOG.warning("a dynamic image size does not export (%s); fixing it", error)
        try:
            program = _trace(model, example, static=True)
        except Exception as again:
            raise ExportError(
                f"torch.onnx.export failed: {type(again).__name__}: {again}"
            ) from again
    with atomic_target(path) as tmp:
        program.save(str(tmp))
    return onnx_dynamic_dims(path)


def onnx_dynamic_dims(path: str | Path) -> dict[str, bool]:
    """``{"batch", "height", "width"} -> dynamic?`` of the first input of an ONNX file."""
    onnx = require("onnx", "reading an ONNX file")
    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    flags = [bool(dim.dim_param) or not dim.HasField("dim_value") for dim in dims]
    return {"batch": flags[0], "height": flags[2], "width": flags[3]}


def onnx_to_openvino(onnx_path: str | Path) -> Any:
    """The OpenVINO model (``openvino.Model``) of an ONNX file."""
    ov = require("openvino", "converting to OpenVINO")
    return ov.convert_model(str(onnx_path))


def save_openvino(model: Any, xml_path: str | Path) -> Path:
    """Save an ``openvino.Model`` as ``xml_path`` + ``.bin`` with fp32 weights (OpenVINO's
    default would compress them to fp16), atomically."""
    ov = require("openvino", "saving an OpenVINO model")
    xml_path = Path(xml_path)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = xml_path.with_name(f".{xml_path.stem}.{os.getpid()}.tmp.xml")
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(tmp, xml_path)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
    return xml_path


def _classifier_name(model: Any) -> str | None:
    """The friendly name of the last convolution of an OpenVINO model (every head here ends
    in a 1x1 convolution to the classes, then the resize to the input size)."""
    convolutions = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    return convolutions[-1].get_friendly_name() if convolutions else None


def quantize_openvino(
    model: Any, images: Sequence[np.ndarray], progress: Callable[[str], None] | None = None
) -> Any:
    """``model`` (an ``openvino.Model``) quantised to int8 by NNCF's post-training
    quantisation, calibrated on ``images`` (normalised float32 ``[1, 3, H, W]`` arrays), mixed
    preset (symmetric weights, asymmetric activations). The classifier (the last convolution,
    which makes the logits) stays in floating point: quantising it moved the most mask pixels
    in our trials."""
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # nncf imports it
    nncf = require("nncf", "int8 quantisation")
    logging.getLogger("nncf").setLevel(logging.WARNING)
    if not images:
        raise ExportError("int8 quantisation needs at least one calibration image")
    if progress is not None:
        progress(f"calibrating int8 on {len(images)} image(s) with NNCF")
    classifier = _classifier_name(model)
    return nncf.quantize(
        model,
        nncf.Dataset(list(images)),
        subset_size=len(images),
        preset=nncf.QuantizationPreset.MIXED,
        ignored_scope=nncf.IgnoredScope(names=[classifier] if classifier else []),
    )
