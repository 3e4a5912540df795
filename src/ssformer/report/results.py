"""Write the results table: ``results.md``, ``results.csv`` and ``results.png``.

Layout after the reproduction study's table: rows dataset x backbone; for each metric (whose
header names our key and its convention) one column group per head (PLD, SeD) with our number,
the published number of the same protocol and convention, and the difference ours - published.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ssformer.report.error_bars import error_bars
from ssformer.report.grid import Block, Cell, render_blocks
from ssformer.report.published_conventions import CONVENTIONS, METRICS, SOURCE_NAMES
from ssformer.report.runs import RunRecord
from ssformer.report.statistics import DEFAULT_RESAMPLES, DEFAULT_SEED
from ssformer.report.tables import (
    DASH,
    Comparison,
    Section,
    column_label,
    format_difference,
    format_value,
)

SOURCE_SHORT: dict[str, str] = {
    "reproduction-study": "study",
    "ssformer-paper": "paper",
    "ssformer-official-repo": "official repo",
    "ssformer-official-repo (withdrawn)": "official repo (withdrawn)",
    "polyp-pvt-paper": "Polyp-PVT",
    "pranet-paper": "PraNet",
}
FLAG = "(!)"


def published_label(section: Section) -> str:
    """Short name of the section's published source(s), for column headers."""
    sources = {c.source for c in section.cells.values() if c.source}
    if len(sources) == 1:
        source = sources.pop()
        return SOURCE_SHORT.get(source, source)
    return "published"


MEAN_ROW = "mean"
INTERVAL_NOTE = (
    "ours: one run, or mean ± sample sd (n = runs) over the seeds of one entry; 95% CI: "
    f"percentile bootstrap over the test images ({DEFAULT_RESAMPLES} resamples, seed "
    f"{DEFAULT_SEED}) of that number"
)


BAR_NOTE = (
    "error bar (one axis per column): dot = ours, thick line = ± sd over seeds, whiskers = 95% "
    "CI, red tick = the published number"
)


def _ours_text(cell: Comparison | None, ours: float | None, convention: str) -> str:
    """Our number; for an entry of several runs (seeds) ``mean ± sd (n=k)``."""
    if ours is None:
        return "n/a"
    text = format_value(ours, convention)
    if cell is not None and cell.n > 1 and cell.sd is not None:
        text += f" ± {format_value(cell.sd, convention)} (n={cell.n})"
    return text


def interval_text(interval: tuple[float, float] | None, convention: str) -> str:
    """``[low, high]`` in the convention's precision; a dash without an interval."""
    if interval is None:
        return DASH
    low, high = interval
    return f"[{format_value(low, convention)}, {format_value(high, convention)}]"


def _cell_texts(
    cell: Comparison | None, ours: float | None, published: float | None, convention: str
) -> tuple[str, str, str, str, str]:
    """(ours, 95 % interval, published, difference, difference style) of one cell."""
    difference = None if ours is None or published is None else ours - published
    style = "muted" if difference is None else ("pos" if difference >= 0 else "neg")
    return (
        _ours_text(cell, ours, convention),
        interval_text(cell.ci95, convention) if cell is not None else "",
        format_value(published, convention),
        format_difference(difference, convention),
        style,
    )


def _row_cells(section: Section, row: tuple[str, str]) -> list[tuple[str, str, str, str, str]]:
    """(ours, interval, published, difference, diff style) for each metric x column of one
    row; the ``mean`` row averages the group's rows (published only when every one of them
    has one; no interval)."""
    label, backbone = row
    out = []
    for metric in METRICS:
        for head, model in section.columns:
            if backbone == MEAN_ROW:
                cells = [
                    section.cells[key]
                    for key in ((lbl, bb, head, model, metric) for lbl, bb in section.rows)
                    if key[0] == label
                    and key in section.cells
                    and section.cells[key].ours is not None
                ]
                if len(cells) < 2:
                    out.append(("", "", "", "", "muted"))
                    continue
                ours = sum(c.ours for c in cells if c.ours is not None) / len(cells)
                pubs = [c.published_value for c in cells if c.published_value is not None]
                published = sum(pubs) / len(pubs) if len(pubs) == len(cells) else None
                out.append(_cell_texts(None, ours, published, section.convention))
                continue
            cell = section.cells.get((label, backbone, head, model, metric))
            if cell is None:
                out.append(("", "", "", "", "muted"))
                continue
            out.append(_cell_texts(cell, cell.ours, cell.published_value, section.convention))
    return out


def display_rows(section: Section) -> list[tuple[str, str]]:
    """The section's rows; under the split protocol a ``mean`` row follows each dataset with 2+
    backbones (the reproduction study's "Total" rows)."""
    if section.protocol != "split-80-10-10-seed-1337":
        return list(section.rows)
    rows: list[tuple[str, str]] = []
    for index, row in enumerate(section.rows):
        rows.append(row)
        last_of_group = index + 1 == len(section.rows) or section.rows[index + 1][0] != row[0]
        group = [r for r in section.rows if r[0] == row[0]]
        if last_of_group and len(group) >= 2:
            rows.append((row[0], MEAN_ROW))
    return rows


def section_block(section: Section) -> Block:
    """The PNG table of one section."""
    convention = CONVENTIONS[section.convention]
    source = published_label(section)
    groups = len(section.columns)
    bars = error_bars(section)
    spread: list[tuple[str, int]] = [("error bar", 1)] if bars else []
    width = 5 if bars else 4
    header_top: list[tuple[str, int]] = [("", 2)]
    header_mid: list[tuple[str, int]] = [("", 2)]
    header_low: list[tuple[str, int]] = [("Dataset", 1), ("Backbone", 1)]
    for metric in METRICS:
        header_top.append((convention.header(metric), width * groups))
        for head, model in section.columns:
            header_mid.append((column_label(head, model), width))
            header_low += [("ours", 1), ("95% CI", 1), *spread, (source, 1), ("Δ", 1)]
    body: list[list[Cell]] = []
    group_rows = []
    previous = None
    notes = []
    for index, row in enumerate(display_rows(section)):
        label, backbone = row
        if label != previous:
            group_rows.append(index)
        problems = section.flagged(row)
        backbone_text = f"{backbone} {FLAG}" if problems else backbone
        cells = [
            Cell(label if label != previous else "", "label", "left"),
            Cell(
                backbone_text,
                "flag" if problems else ("label" if backbone == MEAN_ROW else "normal"),
                "left",
            ),
        ]
        keys = [(label, backbone, h, m, metric) for metric in METRICS for h, m in section.columns]
        for key, texts in zip(keys, _row_cells(section, row), strict=True):
            ours, interval, published, difference, style = texts
            cells += [Cell(ours, "ours"), Cell(interval, "muted")]
            cells += [Cell("", bar=bars.get(key))] if bars else []
            cells += [
                Cell(published, "muted" if published == DASH else "normal"),
                Cell(difference, style),
            ]
        body.append(cells)
        for problem in problems:
            notes.append(f"{FLAG} {label} / {backbone}: {problem}")
        previous = label
    sources = ", ".join(section.sources()) or "none for these runs"
    notes.insert(0, f"Convention: {convention.description}.")
    notes.insert(1, f"Published numbers: {sources}. Δ = ours − published, same convention.")
    notes.insert(2, INTERVAL_NOTE)
    if bars:
        notes.insert(3, BAR_NOTE)
    return Block(
        title=section.title,
        header_rows=[header_top, header_mid, header_low],
        body=body,
        notes=notes,
        group_rows=group_rows,
    )


def write_results_png(
    path: Path, sections: list[Section], unusable: list[RunRecord], title: str
) -> None:
    """Render every section as one PNG table."""
    footnotes = [
        f"{FLAG} not in the table: {run.name}: {'; '.join(run.problems)}" for run in unusable
    ]
    if not sections:
        footnotes.insert(0, "No run has a test evaluation yet: run `ssformer val RUN` first.")
    footnotes.append(
        "mIoU/mDice conventions differ between papers; a number is only compared with a published "
        "number of the same convention."
    )
    render_blocks(path, [section_block(s) for s in sections], title, footnotes)


def section_markdown(section: Section) -> str:
    """One Markdown table for a section, with a heading that names protocol and convention."""
    convention = CONVENTIONS[section.convention]
    source = published_label(section)
    header = ["Dataset", "Backbone"]
    for metric in METRICS:
        key = convention.our_keys[metric]
        for head, model in section.columns:
            header += [
                f"{head} {key} ours ({model})",
                "95 % CI",
                f"{head} {metric} {source}",
                "Δ",
            ]
    lines = [
        f"### {section.protocol} · {convention.header('mIoU')}, {convention.header('mDice')}",
        "",
        f"Convention `{section.convention}`: {convention.description}. "
        f"Published: {', '.join(section.sources()) or 'none for these runs'}. "
        "Δ = ours − published (same protocol, convention, data, model and backbone). "
        f"{INTERVAL_NOTE[0].upper()}{INTERVAL_NOTE[1:]}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|",
    ]
    notes = []
    for row in display_rows(section):
        label, backbone = row
        problems = section.flagged(row)
        flag = f" {FLAG}" if problems else ""
        cells = [label, backbone + flag]
        for ours, interval, published, difference, _ in _row_cells(section, row):
            bold = f"**{ours}**" if ours not in ("", "n/a") else ours
            cells += [bold, interval, published, difference]
        lines.append("| " + " | ".join(cells) + " |")
        notes += [f"- {FLAG} {label} / {backbone}: {problem}" for problem in problems]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "run",
    "protocol",
    "train_data",
    "test_set",
    "msf",
    "model",
    "head",
    "backbone",
    "metric",
    "our_key",
    "convention",
    "ours",
    "sd",
    "n",
    "seeds",
    "ci95_low",
    "ci95_high",
    "published",
    "published_source",
    "difference",
    "problems",
)


def results_csv_text(comparisons: list[Comparison], unusable: list[RunRecord]) -> str:
    """Long format: one line per (run, test set, convention, metric); unusable runs too."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for c in comparisons:
        writer.writerow(
            {
                "run": c.run,
                "protocol": c.protocol,
                "train_data": c.train_data,
                "test_set": c.test_set,
                "msf": str(c.msf).lower(),
                "model": c.model,
                "head": c.head,
                "backbone": c.backbone,
                "metric": c.metric,
                "our_key": c.our_key,
                "convention": c.convention,
                "ours": "" if c.ours is None else f"{c.ours:.6g}",
                "sd": "" if c.sd is None else f"{c.sd:.6g}",
                "n": c.n,
                "seeds": " ".join("?" if seed is None else str(seed) for seed in c.seeds),
                "ci95_low": "" if c.ci95 is None else f"{c.ci95[0]:.6g}",
                "ci95_high": "" if c.ci95 is None else f"{c.ci95[1]:.6g}",
                "published": "" if c.published_value is None else f"{c.published_value:g}",
                "published_source": c.source,
                "difference": "" if c.difference is None else f"{c.difference:.6g}",
                "problems": "; ".join(c.problems),
            }
        )
    for run in unusable:
        writer.writerow(
            {
                "run": run.name,
                "protocol": run.protocol,
                "train_data": run.dataset,
                "model": run.model,
                "head": run.head,
                "backbone": run.backbone,
                "problems": "; ".join(run.problems),
            }
        )
    return buffer.getvalue()


def conventions_markdown() -> str:
    """The mapping from published conventions to our metric keys, as a Markdown table."""
    lines = [
        "| published convention | our mIoU key | our mDice key | scale | meaning |",
        "|---|---|---|---|---|",
    ]
    for convention in CONVENTIONS.values():
        lines.append(
            f"| `{convention.name}` | `{convention.our_keys['mIoU']}` | "
            f"`{convention.our_keys['mDice']}` | {'×100' if convention.digits == 2 else 'fraction'} | "
            f"{convention.description} |"
        )
    return "\n".join(lines) + "\n"


def source_list_markdown() -> str:
    return ", ".join(f"`{key}` = {value}" for key, value in SOURCE_NAMES.items())
