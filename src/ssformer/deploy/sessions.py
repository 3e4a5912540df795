"""Exported models run by ONNX Runtime or OpenVINO, behaving as the torch model does.

:class:`ExportedModel` is the one inference interface that ``ssformer predict``, ``val`` and
``bench`` share with torch models: an ``nn.Module`` without parameters whose ``forward`` takes
a normalised float32 batch ``[N, 3, H, W]`` (any device, any memory format) and returns the
logits ``[N, C, H, W]`` as a torch tensor on the input's device, computed on the CPU. Its
``runtime`` and ``precision`` say how; :func:`runtime_label` gives the same words for any model
(``torch fp32`` for a torch one), which every command prints and writes.

OpenVINO: compiled with ``INFERENCE_PRECISION_HINT`` from the sidecar (``f32`` for fp32 and
int8, ``bf16`` for bf16: without the hint OpenVINO computes in bf16 on CPUs that have it) and
``PERFORMANCE_HINT=LATENCY`` (one stream: each call uses every thread). Each new input shape
gets its own compilation of the model reshaped to that static shape (measured faster than the
dynamic-shape compilation; about 1 s each for SSFormer-S), up to :data:`MAX_STATIC_SHAPES`;
further shapes run on one dynamic-shape compilation. ONNX Runtime: one session with dynamic
shapes; its threads do not spin between calls (they would take the CPU from decoding and from
torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssformer.deploy.optional import require
from ssformer.deploy.sidecar import ExportInfo
from ssformer.errors import ExportError

__all__ = [
    "MAX_STATIC_SHAPES",
    "ExportedModel",
    "OnnxRuntimeModel",
    "OpenVINOModel",
    "runtime_label",
]

MAX_STATIC_SHAPES = 4
_OV_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


class ExportedModel(nn.Module):
    """An exported file (with its sidecar ``info``) as a model: see the module doc.

    ``name``, ``backbone_name`` and ``num_classes`` as on :class:`SegmentationModel`;
    ``threads``: the runtime's CPU threads (default: the runtime's choice, every core).
    """

    runtime = "?"

    def __init__(self, path: str | Path, info: ExportInfo, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.info = info
        self.threads = threads
        self.name = info.model
        self.backbone_name = info.backbone
        self.num_classes = info.num_classes
        self.precision = info.precision

    @property
    def label(self) -> str:
        """``openvino fp32`` and the like."""
        return f"{self.runtime} {self.precision}"

    def check_size(self, size: tuple[int, int]) -> None:
        """Refuse an input size that a static-size export cannot take."""
        size = (int(size[0]), int(size[1]))
        if not self.info.dynamic_size and size != tuple(self.info.image_size):
            height, width = self.info.image_size
            raise ExportError(
                f"{self.path} was exported for {height}x{width} inputs only (a static size); "
                f"this input is {size[0]}x{size[1]}: export again without --static (any size), "
                f"or feed {height}x{width} inputs (predict --size {height} {width}; for val "
                f"EVAL.IMAGE_SIZE=[{height},{width}] with a square recipe, no MSF)"
            )

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ExportError(f"{self.path} takes [N, 3, H, W] images, got {tuple(x.shape)}")
        self.check_size((int(x.shape[2]), int(x.shape[3])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self._run(array)).to(x.device)

    def _run(self, array: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"path={self.path}, runtime={self.runtime}, precision={self.precision}"


class OnnxRuntimeModel(ExportedModel):
    """An ONNX export run by ONNX Runtime's CPU execution provider."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, info: ExportInfo, threads: int | None = None) -> None:
        super().__init__(path, info, threads)
        if info.file_format != "onnx":
            raise ExportError(
                f"ONNX Runtime runs .onnx exports; {path} is {info.file_format}: "
                "use --runtime openvino"
            )
        ort = require("onnxruntime", "the onnxruntime runtime")
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise ExportError(f"ONNX Runtime cannot load {path}: {error}") from error
        self._input = self.session.get_inputs()[0].name

    def _run(self, array: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: array})[0]


class OpenVINOModel(ExportedModel):
    """An OpenVINO IR (``.xml`` + ``.bin``) or ONNX export run by OpenVINO on the CPU."""

    runtime = "openvino"

    def __init__(self, path: str | Path, info: ExportInfo, threads: int | None = None) -> None:
        super().__init__(path, info, threads)
        ov = require("openvino", "the openvino runtime")
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(str(path))
        except Exception as error:
            raise ExportError(f"OpenVINO cannot read {path}: {error}") from error
        self.config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "bf16" if info.precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self._requests: dict[tuple[int, ...], Any] = {}
        self._dynamic: Any = None

    def _compile(self, shape: tuple[int, ...] | None) -> Any:
        model = self.model
        if shape is not None:
            model = self.model.clone()
            model.reshape({model.inputs[0]: list(shape)})
        compiled = self.core.compile_model(model, "CPU", self.config)
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        computed = _OV_PRECISIONS.get(name, name)
        # int8: the quantised ops in int8, the others in the hinted precision
        self.precision = (
            f"int8 (other ops {computed})" if self.info.precision == "int8" else computed
        )
        return compiled.create_infer_request()

    def _request(self, shape: tuple[int, ...]) -> Any:
        request = self._requests.get(shape)
        if request is None and len(self._requests) < MAX_STATIC_SHAPES:
            request = self._requests[shape] = self._compile(shape)
        if request is None:
            if self._dynamic is None:
                self._dynamic = self._compile(None)
            request = self._dynamic
        return request

    def _run(self, array: np.ndarray) -> np.ndarray:
        result = self._request(tuple(array.shape)).infer({0: array})
        return next(iter(result.values()))


def runtime_label(model: nn.Module) -> str:
    """How ``model`` computes: ``openvino fp32``, ``onnxruntime fp32``, ``torch fp32`` or
    ``torch fp32 (torch.compile)``."""
    if isinstance(model, ExportedModel):
        return model.label
    if getattr(model, "compiled", False) is True:  # CompiledInference that did not fall back
        return "torch fp32 (torch.compile)"
    return "torch fp32"
