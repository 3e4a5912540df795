"""Error bars for the results PNG: each cell's number with its 95 % interval over the test
images, ± sd over seeds and the published number, on one axis per column of a section."""

from __future__ import annotations

from ssformer.report.grid import ErrorBar
from ssformer.report.tables import Comparison, Section

__all__ = ["error_bars"]

CellKey = tuple[str, str, str, str, str]  # (dataset label, backbone, head, model, metric)


def _extent(cell: Comparison, ours: float) -> list[float]:
    """Every number a cell's bar shows (``ours``: the cell's number)."""
    points = [ours]
    if cell.ci95 is not None:
        points += list(cell.ci95)
    if cell.sd is not None and cell.n > 1:
        points += [ours - cell.sd, ours + cell.sd]
    if cell.published_value is not None:
        points.append(cell.published_value)
    return points


def _bar(cell: Comparison, ours: float, low: float, high: float) -> ErrorBar:
    def at(value: float) -> float:
        return (value - low) / (high - low)

    interval = cell.ci95 or (ours, ours)
    sd = None
    if cell.sd is not None and cell.n > 1:
        sd = (at(ours - cell.sd), at(ours + cell.sd))
    published = cell.published_value
    return ErrorBar(
        value=at(ours),
        low=at(interval[0]),
        high=at(interval[1]),
        sd=sd,
        reference=None if published is None else at(published),
    )


def error_bars(section: Section) -> dict[CellKey, ErrorBar]:
    """One bar per cell of ``section`` with a number, keyed like ``section.cells``; empty when
    no cell has an interval or several seeds (nothing to draw beyond the numbers)."""
    cells = {key: cell for key, cell in section.cells.items() if cell.ours is not None}
    numbers = {key: float(cell.ours or 0.0) for key, cell in cells.items()}
    if not any(cell.ci95 is not None or cell.n > 1 for cell in cells.values()):
        return {}
    columns: dict[tuple[str, str, str], list[CellKey]] = {}
    for key in cells:
        columns.setdefault(key[2:], []).append(key)
    bars: dict[CellKey, ErrorBar] = {}
    for keys in columns.values():
        points = [point for key in keys for point in _extent(cells[key], numbers[key])]
        low, high = min(points), max(points)
        margin = 0.06 * (high - low) if high > low else max(abs(high), 1.0) * 0.01
        for key in keys:
            bars[key] = _bar(cells[key], numbers[key], low - margin, high + margin)
    return bars
