"""What an export can be, named once: its file formats (with their suffixes and the runtime that
runs each by default), the runtimes ``--runtime`` accepts, and the precisions. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXPORT_FORMATS", "FILE_FORMATS", "PRECISIONS", "RUNTIMES", "ExportFormat"]


@dataclass(frozen=True)
class ExportFormat:
    """An export's file format: ``name`` (``--format``), file ``suffix``, default ``runtime``."""

    name: str
    suffix: str
    runtime: str


EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("onnx", ".onnx", "onnxruntime"),
        ExportFormat("openvino", ".xml", "openvino"),
    )
}
FILE_FORMATS: dict[str, str] = {f.suffix: f.name for f in EXPORT_FORMATS.values()}
"""Suffix of an exported model file -> its format."""
RUNTIMES: tuple[str, ...] = ("torch", *dict.fromkeys(f.runtime for f in EXPORT_FORMATS.values()))
"""What runs a model: torch (checkpoints), then the runtimes of the export formats."""
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
