"""The JSON sidecar of an exported model: everything needed to use the file alone.

``ssformer export`` writes ``MODEL.onnx.json`` next to ``MODEL.onnx`` (``MODEL.xml.json`` next to
``MODEL.xml`` + ``MODEL.bin``): the model (name, backbone, output channels), the input (layout,
colour order, nominal size, which dimensions are dynamic, the normalisation), the output
convention (logits at the input's height and width; how to get the polyp probability), the
precision, the check against torch on export, the int8 calibration, the versions and the
SHA-256 of the source weights and of every file of the export. :func:`read_sidecar` reads it
back and refuses a missing or foreign sidecar, or model files that changed since. Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ssformer import __version__
from ssformer.deploy.formats import FILE_FORMATS, PRECISIONS
from ssformer.errors import ExportError
from ssformer.io.atomic import write_text_atomic
from ssformer.io.digest import sha256_file
from ssformer.registry import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "FILE_FORMATS",
    "FORMAT",
    "PRECISIONS",
    "ExportInfo",
    "export_files",
    "package_versions",
    "read_sidecar",
    "sidecar_path",
    "write_sidecar",
]

FORMAT = "ssformer-export"
FORMAT_VERSION = 1
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def sidecar_path(model_path: str | Path) -> Path:
    """``MODEL.onnx`` -> ``MODEL.onnx.json`` (``MODEL.xml`` -> ``MODEL.xml.json``)."""
    path = Path(model_path)
    return path.with_name(path.name + ".json")


def export_files(model_path: str | Path) -> list[Path]:
    """The files an export consists of: ``MODEL.onnx``, or ``MODEL.xml`` and ``MODEL.bin``."""
    path = Path(model_path)
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def package_versions(*packages: str) -> dict[str, str]:
    """``{"ssformer": ..., package: version, ...}`` of the installed ``packages``."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"ssformer": __version__}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _probability_rule(num_classes: int) -> str:
    if num_classes == 1:
        return "sigmoid(logits[:, 0])"
    return "softmax(logits, dim=1)[:, 1] (channel 1 is polyp)"


@dataclass(frozen=True)
class ExportInfo:
    """What a sidecar says. ``dynamic``: ``{"batch": bool, "height": bool, "width": bool}``;
    ``check``: the comparison made on export; ``calibration``: int8 only."""

    file_format: str
    precision: str
    model: str
    backbone: str
    num_classes: int
    image_size: tuple[int, int]
    dynamic: dict[str, bool]
    check: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def dynamic_size(self) -> bool:
        """Whether height and width may be any size (else only ``image_size``)."""
        return bool(self.dynamic.get("height") and self.dynamic.get("width"))

    def describe_shapes(self) -> str:
        """``[N, 3, H, W] with N, H and W dynamic`` and the like."""
        batch = "N" if self.dynamic.get("batch") else "1"
        height, width = self.image_size
        if self.dynamic_size:
            return f"[{batch}, 3, H, W], any batch and any height and width"
        return f"[{batch}, 3, {height}, {width}], any batch, height and width fixed"

    def to_json(self) -> dict[str, Any]:
        """The sidecar's content (see the module doc)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": {
                "name": self.model,
                "backbone": self.backbone,
                "num_classes": self.num_classes,
            },
            "file_format": self.file_format,
            "files": self.files,
            "precision": self.precision,
            "openvino_config": {
                "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32"
            },
            "input": {
                "name": INPUT_NAME,
                "layout": "NCHW",
                "dtype": "float32",
                "channels": "RGB",
                "size": list(self.image_size),
                "dynamic": self.dynamic,
                "shape": self.describe_shapes(),
                "preprocess": "resize bilinearly to size, then (pixel / 255 - mean) / std",
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
            },
            "output": {
                "name": OUTPUT_NAME,
                "layout": "NCHW",
                "channels": self.num_classes,
                "kind": "logits",
                "size": "the input's height and width",
                "polyp_probability": _probability_rule(self.num_classes),
                "mask": "polyp_probability > 0.5",
            },
            "check": self.check,
            "calibration": self.calibration,
            "source": self.source,
            "versions": self.versions,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> ExportInfo:
        """Parse a sidecar; :class:`ExportError` naming ``where`` and the bad key."""
        if data.get("format") != FORMAT:
            raise ExportError(
                f"{where} is not an ssformer export sidecar (format {data.get('format')!r}, "
                f"expected {FORMAT!r})"
            )
        try:
            model, inputs = data["model"], data["input"]
            info = cls(
                file_format=str(data["file_format"]),
                precision=str(data["precision"]),
                model=str(model["name"]),
                backbone=str(model["backbone"]),
                num_classes=int(model["num_classes"]),
                image_size=(int(inputs["size"][0]), int(inputs["size"][1])),
                dynamic={k: bool(v) for k, v in dict(inputs["dynamic"]).items()},
                check=dict(data.get("check") or {}),
                source=dict(data.get("source") or {}),
                versions=dict(data.get("versions") or {}),
                calibration=data.get("calibration"),
                files={str(k): str(v) for k, v in dict(data.get("files") or {}).items()},
            )
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise ExportError(
                f"sidecar {where} lacks or mangles the key {error}; export the model again"
            ) from error
        if info.precision not in PRECISIONS:
            raise ExportError(f"sidecar {where}: precision {info.precision!r} is unknown")
        return info


def write_sidecar(model_path: str | Path, info: ExportInfo) -> Path:
    """Write ``info`` (with the SHA-256 of every file of the export) next to ``model_path``."""
    files = {path.name: sha256_file(path) for path in export_files(model_path)}
    payload = replace(info, files=files).to_json()
    return write_text_atomic(sidecar_path(model_path), json.dumps(payload, indent=1) + "\n")


def read_sidecar(model_path: str | Path, *, verify: bool = True) -> ExportInfo:
    """The :class:`ExportInfo` of an exported model file. Refuses (``ExportError``) a file
    without its sidecar, a sidecar of another format, and, with ``verify``, model files whose
    SHA-256 differs from the one recorded on export."""
    path = Path(model_path)
    side = sidecar_path(path)
    file_format = FILE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ExportError(
            f"{path} is not an exported model (expected a .onnx or .xml file written by "
            "ssformer export)"
        )
    if not path.is_file():
        raise ExportError(f"exported model {path} does not exist")
    if not side.is_file():
        fresh = path.with_name(f"{path.stem}-new{path.suffix}")
        raise ExportError(
            f"{path} has no sidecar {side} (the JSON file ssformer export writes next to it: "
            "model, input size, normalisation, precision); export the checkpoint again, e.g. "
            f"`ssformer export --weights best.pth --format {file_format} --out {fresh}`"
        )
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"sidecar {side} is not readable JSON ({error})") from error
    if not isinstance(data, dict):
        raise ExportError(f"sidecar {side} is not an ssformer export sidecar")
    info = ExportInfo.from_json(data, side)
    if info.file_format != file_format:
        raise ExportError(
            f"sidecar {side} describes a {info.file_format} export, but {path} is {file_format}"
        )
    if verify:
        _verify_files(path, info, side)
    return info


def _verify_files(path: Path, info: ExportInfo, side: Path) -> None:
    for part in export_files(path):
        recorded = info.files.get(part.name)
        if not part.is_file():
            raise ExportError(f"{part}, a file of the export {path}, is missing")
        if recorded is not None and sha256_file(part) != recorded:
            raise ExportError(
                f"{part} is not the file that ssformer export wrote (its SHA-256 differs from "
                f"the one in {side}): it was changed or replaced; export the model again"
            )
