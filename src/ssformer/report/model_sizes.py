"""Model sizes: our parameter counts beside the reproduction study's published model sizes.

The study's table (``reference/model-sizes.csv``, transcribed from its ``model-sizes.png``) has
a "Size" column without a unit, "computed via PyTorch". Its values match the size in MB
(10^6 bytes) of a saved float32 state dict of the 2-class model: e.g. our SegFormer + MiT-B0
state dict saved with ``torch.save`` is 14.93 MB against the study's 14.926; the tensors alone
(4 bytes per parameter plus buffers) are 14.86 MB. We show the tensors' size, which does not
depend on the file format; the difference to the study is the container overhead (< 0.2 %).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ssformer.io.atomic import write_text_atomic
from ssformer.report.grid import Block, Cell, render_blocks
from ssformer.report.published_conventions import head_of, reference_path
from ssformer.report.tables import DASH

STUDY_MODELS: tuple[str, ...] = ("PLDSegFormer", "SegFormer")
STUDY_BACKBONES: tuple[str, ...] = tuple(f"MiT-B{i}" for i in range(6))
STUDY_NUM_CLASSES = 2  # the study trained 2-class softmax models


@dataclass
class SizeRow:
    model: str
    backbone: str
    num_classes: int
    params: int | None
    tensor_mb: float | None
    published_mb: float | None

    @property
    def head(self) -> str:
        return head_of(self.model)

    @property
    def difference(self) -> float | None:
        if self.tensor_mb is None or self.published_mb is None:
            return None
        return self.tensor_mb - self.published_mb


def load_published_sizes(path: Path | None = None) -> dict[tuple[str, str], float]:
    """``{(model, backbone): size}`` from ``model-sizes.csv``."""
    path = path or reference_path("model-sizes.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        return {
            (row["model"], row["backbone"]): float(row["size_published"])
            for row in csv.DictReader(handle)
        }


def count_model(model: str, backbone: str, num_classes: int) -> tuple[int, float]:
    """(parameters, MB of parameter and buffer tensors) of a model built on the meta device."""
    import torch

    from ssformer.models import build_model

    with torch.device("meta"):
        built = build_model(model, backbone, num_classes=num_classes)
    params = sum(p.numel() for p in built.parameters())
    nbytes = sum(p.numel() * p.element_size() for p in built.parameters())
    nbytes += sum(b.numel() * b.element_size() for b in built.buffers())
    return params, nbytes / 1e6


def size_rows(
    compute: bool = True, extra: list[tuple[str, str]] | None = None
) -> tuple[list[SizeRow], str]:
    """Rows for the study's models (2 classes) plus ``extra`` (model, backbone) pairs (1 class).

    Returns the rows and a note; with ``compute=False`` or when ``ssformer.models`` cannot be
    imported, only the published sizes are filled in.
    """
    published = load_published_sizes()
    wanted = [(m, b, STUDY_NUM_CLASSES) for b in STUDY_BACKBONES for m in STUDY_MODELS]
    for model, backbone in extra or []:
        if all((model, backbone) != (m, b) for m, b, _ in wanted):
            wanted.append((model, backbone, 1 if model == "SSFormer" else STUDY_NUM_CLASSES))
    note = "ours: parameters of ssformer.build_model (float32 tensors, 10^6 bytes)"
    rows = []
    for model, backbone, classes in wanted:
        params = tensor_mb = None
        if compute:
            try:
                params, tensor_mb = count_model(model, backbone, classes)
            except ImportError as error:
                note = f"ours not computed: ssformer.models unavailable ({error})"
                compute = False
            except Exception as error:  # a model this version cannot build: show the row empty
                note = f"ours not computed for some models: {type(error).__name__}: {error}"
        elif not note.startswith("ours not"):
            note = "ours not computed (--skip-model-sizes): published sizes only"
        rows.append(
            SizeRow(model, backbone, classes, params, tensor_mb, published.get((model, backbone)))
        )
    return rows, note


def _fmt(value: float | None, digits: int, sign: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def size_table(rows: list[SizeRow]) -> list[list[str]]:
    return [
        [
            row.backbone,
            row.head,
            row.model,
            str(row.num_classes),
            _fmt(None if row.params is None else row.params / 1e6, 3),
            _fmt(row.tensor_mb, 3),
            _fmt(row.published_mb, 3),
            _fmt(row.difference, 3, sign=True),
        ]
        for row in rows
    ]


HEADER = (
    "Backbone",
    "Head",
    "Model",
    "classes",
    "params (M, ours)",
    "size MB (ours)",
    "size MB (study)",
    "Δ MB",
)


def write_model_sizes(out_dir: Path, rows: list[SizeRow], note: str) -> list[Path]:
    """``model-sizes.md`` and ``model-sizes.png``; returns their paths."""
    table = size_table(rows)
    explanation = (
        "Study: 'Size' from the reproduction study's model-size table (unit not stated; it "
        "matches MB of a saved float32 state dict, container overhead included)."
    )
    lines = [
        "# Model sizes",
        "",
        f"{note}. {explanation}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table]
    md = out_dir / "model-sizes.md"
    write_text_atomic(md, "\n".join(lines) + "\n")
    body = []
    group_rows = []
    for index, cells in enumerate(table):
        if index == 0 or cells[0] != table[index - 1][0]:
            group_rows.append(index)
        body.append(
            [
                Cell(cells[0], "label", "left"),
                Cell(cells[1]),
                Cell(cells[2], align="left"),
                Cell(cells[3]),
                Cell(cells[4], "ours"),
                Cell(cells[5], "ours"),
                Cell(cells[6], "muted" if cells[6] == DASH else "normal"),
                Cell(cells[7], "muted"),
            ]
        )
    block = Block(
        title="params and size per model x backbone",
        header_rows=[[(h, 1) for h in HEADER]],
        body=body,
        notes=[note + ".", explanation],
        group_rows=group_rows,
    )
    png = out_dir / "model-sizes.png"
    render_blocks(png, [block], "Model sizes: ours vs the reproduction study", [])
    return [md, png]
