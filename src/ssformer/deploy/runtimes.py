"""``--runtime torch|onnxruntime|openvino``: the model that predict, val and bench run.

:func:`load_inference_model` takes what ``--weights`` names and the runtime asked for:

- a checkpoint (``.pth`` and the other formats :func:`ssformer.models.load_model` reads) with
  ``torch`` (the default): the torch model;
- a checkpoint with ``onnxruntime`` / ``openvino``: the model exported to ONNX in a temporary
  folder first (checked against torch, within 1e-4), then run there (``ssformer export`` does it
  once and keeps the file);
- an export (``.onnx`` / ``.xml`` with its sidecar): run by ``onnxruntime`` (default for
  ``.onnx``) or ``openvino`` (default for ``.xml``; it reads ``.onnx`` files too).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from ssformer.deploy.check import (
    check_inputs,
    check_record,
    max_logit_difference,
    require_fp32_parity,
)
from ssformer.deploy.convert import export_onnx
from ssformer.deploy.formats import EXPORT_FORMATS, FILE_FORMATS, RUNTIMES
from ssformer.deploy.sessions import ExportedModel, OnnxRuntimeModel, OpenVINOModel
from ssformer.deploy.sidecar import ExportInfo, read_sidecar, write_sidecar
from ssformer.errors import ExportError
from ssformer.image_size import PAPER_SIZE
from ssformer.io.digest import sha256_file

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = [
    "RUNTIMES",
    "export_for_runtime",
    "exported_info",
    "load_inference_model",
    "open_export",
    "resolve_runtime",
]

_DEFAULT_RUNTIME = {f.suffix: f.runtime for f in EXPORT_FORMATS.values()}


def resolve_runtime(weights: str | Path, runtime: str | None) -> str:
    """The runtime for ``weights``: ``runtime`` if given and possible, else the file's own."""
    suffix = Path(weights).suffix.lower()
    if runtime is None:
        return _DEFAULT_RUNTIME.get(suffix, "torch")
    if runtime not in RUNTIMES:
        raise ExportError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if suffix in FILE_FORMATS and runtime == "torch":
        raise ExportError(
            f"{weights} is an exported model; the torch runtime runs checkpoints: give the "
            f"checkpoint it came from, or --runtime {_DEFAULT_RUNTIME[suffix]}"
        )
    if suffix == ".xml" and runtime == "onnxruntime":
        raise ExportError(
            f"{weights} is an OpenVINO model, which ONNX Runtime cannot run: use --runtime "
            "openvino, or export to ONNX (ssformer export --format onnx)"
        )
    return runtime


def exported_info(weights: str | Path) -> ExportInfo | None:
    """The sidecar of an export (``None`` for a checkpoint)."""
    if Path(weights).suffix.lower() not in FILE_FORMATS:
        return None
    return read_sidecar(weights, verify=False)


def stale_export_note(path: str | Path, info: ExportInfo) -> str | None:
    """A note when the checkpoint an export was made from is still there but changed since
    (its SHA-256 differs from the one the sidecar records): the export may be stale."""
    weights, recorded = info.source.get("weights"), info.source.get("sha256")
    if not weights or not recorded or not Path(weights).is_file():
        return None
    if sha256_file(Path(weights)) == recorded:
        return None
    return (
        f"note: {path} was exported from {weights}, which has changed since (its SHA-256 "
        "differs from the export's record): these results come from the old weights; "
        f"re-export with `ssformer export --weights {weights} --format {info.file_format}`"
    )


def open_export(path: str | Path, runtime: str, threads: int | None = None) -> ExportedModel:
    """An export (with its sidecar, verified) run by ``runtime``."""
    info = read_sidecar(path)
    if runtime == "onnxruntime":
        return OnnxRuntimeModel(path, info, threads)
    return OpenVINOModel(path, info, threads)


def export_for_runtime(
    model: nn.Module,
    runtime: str,
    image_size: Sequence[int],
    *,
    source: str,
    threads: int | None = None,
    echo: Callable[[str], None] | None = print,
    folder: Path | None = None,
) -> ExportedModel:
    """``model`` exported to ONNX (``folder/model.onnx``; by default in a temporary folder
    removed with the returned model), checked against torch (fp32, 1e-4) and run by
    ``runtime``."""
    workdir = None if folder is not None else tempfile.TemporaryDirectory(prefix="ssformer-")
    path = Path(folder if folder is not None else workdir.name) / "model.onnx"
    started = time.monotonic()
    dynamic = export_onnx(model, path, image_size)
    info = ExportInfo(
        file_format="onnx",
        precision="fp32",
        model=str(getattr(model, "name", type(model).__name__)),
        backbone=str(getattr(model, "backbone_name", "?")),
        num_classes=int(getattr(model, "num_classes", 1)),
        image_size=(int(image_size[0]), int(image_size[1])),
        dynamic=dynamic,
        source={"weights": source},
    )
    write_sidecar(path, info)
    exported = open_export(path, runtime, threads)
    inputs = check_inputs(image_size, info.dynamic_size)
    difference = max_logit_difference(model, exported, inputs)
    require_fp32_parity(difference, f"the export of {source}")
    exported.info = replace(info, check=check_record(difference, "torch", inputs, "fp32"))
    exported._workdir = workdir  # type: ignore[attr-defined]  # removed with the model
    if echo is not None:
        echo(
            f"exported {source} to ONNX for {runtime} in {time.monotonic() - started:.0f} s "
            f"(max |logits diff| vs torch {difference:.1e}); ssformer export keeps such a file"
        )
    return exported


def load_inference_model(
    weights: str | Path,
    runtime: str | None = None,
    config: Config | None = None,
    *,
    image_size: Sequence[int] = PAPER_SIZE,
    threads: int | None = None,
    echo: Callable[[str], None] | None = print,
) -> nn.Module:
    """The model ``weights`` names, run by ``runtime`` (see the module doc). ``config``: the
    ``MODEL`` section for checkpoints without metadata (official, study); ``image_size``: the
    size a checkpoint is exported at for another runtime."""
    runtime = resolve_runtime(weights, runtime)
    if Path(weights).suffix.lower() in FILE_FORMATS:
        exported = open_export(weights, runtime, threads)
        note = stale_export_note(weights, exported.info)
        if note is not None and echo is not None:
            echo(note)
        return exported
    from ssformer.models import load_model

    model = load_model(weights, config)
    if runtime == "torch":
        return model
    return export_for_runtime(
        model, runtime, image_size, source=str(weights), threads=threads, echo=echo
    )
