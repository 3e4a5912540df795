"""A table drawn as a text grid with matplotlib (Agg): multi-level headers, coloured cells.

Column widths are measured from the rendered text (``TextPath``), so nothing overlaps whatever
the labels are. Used for ``results.png`` and ``model-sizes.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

FONT_SIZE = 10.0
TITLE_SIZE = 12.5
ROW_HEIGHT = 0.30  # inches
PAD = 0.12  # inches, left+right padding inside a cell, each side
MARGIN = 0.25  # inches around the figure

STYLES: dict[str, dict[str, str]] = {
    "normal": {"color": "#1a1a1a", "weight": "normal"},
    "ours": {"color": "#0b3d91", "weight": "bold"},
    "pos": {"color": "#1b7a2f", "weight": "normal"},
    "neg": {"color": "#b3261e", "weight": "normal"},
    "muted": {"color": "#8a8a8a", "weight": "normal"},
    "label": {"color": "#1a1a1a", "weight": "bold"},
    "flag": {"color": "#b35c00", "weight": "bold"},
}
HEADER_FILL = ("#dfe6ee", "#e9eef3", "#f2f5f8")
STRIPE_FILL = ("#ffffff", "#f6f7f9")


BAR_WIDTH = 1.1  # inches, the drawing area of an error bar


@dataclass(frozen=True)
class ErrorBar:
    """An error bar drawn in a cell; every position is a fraction (0..1) of the cell's width:
    the value (a dot), its interval (a thin line with caps), optionally ± sd (a thick line) and a
    reference value (a red tick, the published number)."""

    value: float
    low: float
    high: float
    sd: tuple[float, float] | None = None
    reference: float | None = None


@dataclass
class Cell:
    text: str
    style: str = "normal"
    align: str = "center"
    bar: ErrorBar | None = None


@dataclass
class Block:
    """One table: a title line, header rows of (text, colspan), body rows of cells, notes."""

    title: str
    header_rows: list[list[tuple[str, int]]]
    body: list[list[Cell]]
    notes: list[str] = field(default_factory=list)
    group_rows: list[int] = field(default_factory=list)  # body indices that start a new group


@lru_cache(maxsize=8)
def _font(size: float, bold: bool) -> Any:
    from matplotlib.font_manager import FontProperties, findfont, get_font

    props = FontProperties(size=size, weight="bold" if bold else "normal")
    font = get_font(findfont(props))
    return font


@lru_cache(maxsize=4096)
def text_width(text: str, size: float = FONT_SIZE, bold: bool = False) -> float:
    """Rendered width of ``text`` in inches (measured with the font matplotlib will use)."""
    if not text:
        return 0.0
    font = _font(size, bold)
    font.set_size(size, 72)
    font.set_text(text, 0.0)
    width, _ = font.get_width_height()  # in 1/64 points
    return width / 64.0 / 72.0


def _column_widths(block: Block) -> list[float]:
    n = len(block.body[0]) if block.body else sum(span for _, span in block.header_rows[-1])
    widths = [0.0] * n
    for row in block.body:
        for index, cell in enumerate(row):
            bold = STYLES[cell.style]["weight"] == "bold"
            widths[index] = max(widths[index], text_width(cell.text, bold=bold) + 2 * PAD)
            if cell.bar is not None:
                widths[index] = max(widths[index], BAR_WIDTH + 2 * PAD)
    for header in block.header_rows:
        column = 0
        for text, span in header:
            needed = text_width(text, bold=True) + 2 * PAD
            have = sum(widths[column : column + span])
            if needed > have:
                extra = (needed - have) / span
                for index in range(column, column + span):
                    widths[index] += extra
            column += span
    return widths


def render_blocks(path: Path, blocks: list[Block], title: str, footnotes: list[str]) -> None:
    """Draw ``blocks`` one below the other and save a PNG at ``path`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = [_column_widths(block) for block in blocks]
    note_lines = [line for block in blocks for line in block.notes]
    text_widths = [text_width(title, TITLE_SIZE, bold=True)]
    text_widths += [text_width(block.title, FONT_SIZE + 0.5, bold=True) for block in blocks]
    text_widths += [text_width(line, FONT_SIZE - 1) for line in [*note_lines, *footnotes]]
    fig_width = max([sum(w) for w in widths] + text_widths) + 2 * MARGIN
    height = MARGIN + 0.45
    for block in blocks:
        height += 0.40 + ROW_HEIGHT * (len(block.header_rows) + len(block.body))
        height += 0.22 * len(block.notes) + 0.25
    height += 0.22 * len(footnotes) + MARGIN

    fig = plt.figure(figsize=(fig_width, height), dpi=150)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, fig_width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    y = MARGIN
    ax.text(MARGIN, y + 0.2, title, fontsize=TITLE_SIZE, weight="bold", va="center")
    y += 0.45
    for block, column_widths in zip(blocks, widths, strict=True):
        ax.text(MARGIN, y + 0.2, block.title, fontsize=FONT_SIZE + 0.5, weight="bold", va="center")
        y += 0.40
        edges = [MARGIN]
        for width in column_widths:
            edges.append(edges[-1] + width)
        y = _draw_header(ax, block, edges, y)
        y = _draw_body(ax, block, edges, y)
        ax.plot([edges[0], edges[-1]], [y, y], color="#6b7b8c", lw=1.0)
        y += 0.1
        for line in block.notes:
            ax.text(MARGIN, y + 0.11, line, fontsize=FONT_SIZE - 1, color="#444444", va="center")
            y += 0.22
        y += 0.25
    for line in footnotes:
        ax.text(MARGIN, y + 0.11, line, fontsize=FONT_SIZE - 1, color="#444444", va="center")
        y += 0.22
    save_figure(fig, path)
    plt.close(fig)


def _draw_header(ax: Any, block: Block, edges: list[float], y: float) -> float:
    """The header rows of ``block`` from height ``y``; returns the height below them."""
    from matplotlib.patches import Rectangle

    for level, header in enumerate(block.header_rows):
        column = 0
        fill = HEADER_FILL[min(level, len(HEADER_FILL) - 1)]
        for text, span in header:
            x0, x1 = edges[column], edges[column + span]
            ax.add_patch(
                Rectangle((x0, y), x1 - x0, ROW_HEIGHT, facecolor=fill, edgecolor="white", lw=1.5)
            )
            ax.text(
                (x0 + x1) / 2,
                y + ROW_HEIGHT / 2,
                text,
                ha="center",
                va="center",
                fontsize=FONT_SIZE,
                weight="bold",
            )
            column += span
        y += ROW_HEIGHT
    return y


def _draw_body(ax: Any, block: Block, edges: list[float], y: float) -> float:
    """The body rows of ``block`` (striped by group) from ``y``; returns the height below."""
    from matplotlib.patches import Rectangle

    stripe = 0
    for index, row in enumerate(block.body):
        if index in block.group_rows and index:
            ax.plot([edges[0], edges[-1]], [y, y], color="#6b7b8c", lw=1.0)
            stripe += 1
        ax.add_patch(
            Rectangle(
                (edges[0], y),
                edges[-1] - edges[0],
                ROW_HEIGHT,
                facecolor=STRIPE_FILL[stripe % 2],
                edgecolor="none",
            )
        )
        for column, cell in enumerate(row):
            style = STYLES[cell.style]
            if cell.bar is not None:
                _draw_bar(ax, cell.bar, edges[column] + PAD, edges[column + 1] - PAD, y)
            if cell.align == "left":
                x, ha = edges[column] + PAD, "left"
            else:
                x, ha = (edges[column] + edges[column + 1]) / 2, "center"
            ax.text(
                x,
                y + ROW_HEIGHT / 2,
                cell.text,
                ha=ha,
                va="center",
                fontsize=FONT_SIZE,
                color=style["color"],
                weight=style["weight"],
            )
        y += ROW_HEIGHT
    return y


def _draw_bar(ax: Any, bar: ErrorBar, x0: float, x1: float, y: float) -> None:
    """``bar`` across ``x0``..``x1`` in the row starting at height ``y``."""
    middle = y + ROW_HEIGHT / 2

    def at(fraction: float) -> float:
        return x0 + min(max(fraction, 0.0), 1.0) * (x1 - x0)

    ax.plot([x0, x1], [middle, middle], color="#e3e7ec", lw=0.8)
    ax.plot([at(bar.low), at(bar.high)], [middle, middle], color="#5a6b7d", lw=1.0)
    for end in (bar.low, bar.high):
        ax.plot([at(end), at(end)], [middle - 0.05, middle + 0.05], color="#5a6b7d", lw=1.0)
    if bar.sd is not None:
        ax.plot([at(bar.sd[0]), at(bar.sd[1])], [middle, middle], color="#0b3d91", lw=3.0)
    if bar.reference is not None:
        ref = at(bar.reference)
        ax.plot([ref, ref], [middle - 0.09, middle + 0.09], color="#b3261e", lw=1.4)
    ax.plot([at(bar.value)], [middle], marker="o", markersize=3.5, color="#0b3d91")


def save_figure(fig: object, path: Path) -> None:
    """Save a matplotlib figure as PNG through a temporary file and ``os.replace``."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.png")
    fig.savefig(tmp, format="png", facecolor="white")  # type: ignore[attr-defined]
    os.replace(tmp, path)
