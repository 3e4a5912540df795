"""``ssformer report``: our results beside the published ones, curves and predictions.

:func:`build_report` reads run folders (see :mod:`ssformer.report.runs` for the files it
reads), compares each test number with the published number of the same protocol and metric
convention (:mod:`ssformer.report.published_conventions` holds the mapping table), and writes into the
output folder:

- ``results.md``, ``results.csv``, ``results.png``: the table, laid out like the reproduction
  study's (rows dataset x backbone, columns metric x head, ours / published / difference);
- ``model-sizes.md``, ``model-sizes.png``: our parameter counts beside the study's sizes;
- ``curves-<run>.png``: training loss, validation scores and learning rate per epoch;
- ``predictions-<run>.png``: image, ground truth, prediction and overlay of the best and worst
  test images (needs ``best.pth`` and the test data; otherwise ``results.md`` says why not).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ssformer.io.atomic import copy_file_atomic, write_text_atomic
from ssformer.io.fresh import fresh_file, fresh_folder
from ssformer.report.curves import write_curves_png
from ssformer.report.model_sizes import size_rows, write_model_sizes
from ssformer.report.predictions import PredictionsUnavailable, write_predictions_png
from ssformer.report.published_conventions import load_published, withdrawn_note
from ssformer.report.results import (
    FLAG,
    conventions_markdown,
    results_csv_text,
    section_markdown,
    write_results_png,
)
from ssformer.report.runs import RunRecord, best_epoch, read_runs
from ssformer.report.tables import Section, build_sections, compare_runs, unusable_runs

__all__ = ["ReportOutput", "build_report"]

TITLE = "SSFormer polyp segmentation: our test results beside the published ones"


@dataclass
class ReportOutput:
    """What :func:`build_report` wrote and what it could not do."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "run"


def _best_summary(run: RunRecord) -> str:
    """``epoch 12: val/Dice@0.5 0.91, val/mDice_2cls 93.2``: the epoch the run kept as best
    (its logged ``best_epoch``; else the epoch with the highest ``val/mDice_2cls``)."""
    selected = None
    for record in reversed(run.epochs):
        if isinstance(record.get("best_epoch"), int):
            selected = next((r for r in run.epochs if r.get("epoch") == record["best_epoch"]), None)
            break
    if selected is None:
        for key in ("val/mDice_2cls", "val/Dice@0.5", "val/mDice"):
            selected = best_epoch(run, key)
            if selected is not None:
                break
    if selected is None:
        return "—"
    shown = [
        f"{key} {float(selected[key]):.4g}"
        for key in (
            "val/Dice@0.5",
            "val/mDice",
            "val/mDice_2cls",
            "test/Dice@0.5",
            "test/mDice_2cls",
        )
        if isinstance(selected.get(key), int | float)
    ]
    return f"epoch {selected['epoch']}: " + (", ".join(shown) or "no validation scores")


def _run_table(runs: list[RunRecord]) -> list[str]:
    lines = [
        "| run | model | backbone | dataset | protocol | epochs | best validation | test evaluations "
        "| weights | problems |",
        "|---|---|---|---|---|---:|---|---|---|---|",
    ]
    for run in runs:
        best = _best_summary(run)
        evals = ", ".join(f"{r.path.name} ({r.split}, {r.test_set})" for r in run.evals) or "none"
        dataset = "synthetic (generated, not Kvasir)" if run.is_synthetic else run.dataset
        lines.append(
            f"| {run.name} | {run.model} | {run.backbone} | {dataset} | {run.protocol} | "
            f"{len(run.epochs)} | {best} | {evals} | "
            f"{run.checkpoint.name if run.checkpoint else 'none'} | "
            f"{'; '.join(run.problems) or '—'} |"
        )
    return lines


def _all_metrics(runs: list[RunRecord]) -> list[str]:
    from ssformer.metrics import METRIC_CONVENTIONS

    keys: list[str] = []
    for run in runs:
        for result in run.test_evals():
            keys.extend(k for k in result.metrics if k not in keys)
    known = [k for k in METRIC_CONVENTIONS if k in keys]
    keys = known + [k for k in keys if k not in known]
    if not keys:
        return ["No test evaluations."]
    lines = [
        "| run | test set | " + " | ".join(keys) + " |",
        "|---|---|" + "---:|" * len(keys),
    ]
    for run in runs:
        for result in run.test_evals():
            values = [f"{result.metrics[k]:.4f}" if k in result.metrics else "—" for k in keys]
            lines.append(f"| {run.name} | {result.test_set} | " + " | ".join(values) + " |")
    lines += ["", "Conventions of these keys (from `ssformer.metrics`):", ""]
    lines += [f"- `{k}`: {METRIC_CONVENTIONS[k]}" for k in keys if k in METRIC_CONVENTIONS]
    return lines


def _figures(out: ReportOutput, predictions: bool, samples: int, device: str) -> list[str]:
    """Training curves and predictions grid of every run (files into ``out``), as markdown."""
    figure_lines: list[str] = []
    for run in out.runs:
        stem = _file_stem(run.name)
        curves = out.out_dir / f"curves-{stem}.png"
        figure_lines += [f"### {run.name}", ""]
        if write_curves_png(run, curves):
            out.files.append(curves)
            figure_lines += [f"![training curves of {run.name}]({curves.name})", ""]
        else:
            figure_lines += ["No training curves: metrics.jsonl is missing or empty.", ""]
        if not predictions:
            figure_lines += ["Predictions grid skipped (--no-predictions).", ""]
            continue
        grid = out.out_dir / f"predictions-{stem}.png"
        try:
            how = write_predictions_png(run, grid, count=samples, device=device)
        except PredictionsUnavailable as reason:
            note = f"{run.name}: no predictions grid: {reason}"
            out.notes.append(note)
            figure_lines += [f"No predictions grid: {reason}.", ""]
        else:
            out.files.append(grid)
            figure_lines += [
                f"![best and worst test images of {run.name}]({grid.name})",
                "",
                f"Predictions: {how}.",
                "",
            ]

    return figure_lines


def _model_sizes(out: ReportOutput, compute: bool) -> list[str]:
    """The model-size table and figure (files into ``out``), as markdown."""
    extra = [
        (r.model, r.backbone) for r in out.runs if r.model != "unknown" and r.backbone != "unknown"
    ]
    rows, note = size_rows(compute=compute, extra=extra)
    out.files += write_model_sizes(out.out_dir, rows, note)
    size_lines = [
        "## Model sizes",
        "",
        "![model sizes](model-sizes.png)",
        "",
        "Table: [model-sizes.md](model-sizes.md).",
        "",
    ]
    if not compute or note.startswith("ours not"):
        out.notes.append(note)
    return size_lines


def _markdown(
    out: ReportOutput,
    sections: list[Section],
    unusable: list[RunRecord],
    size_lines: list[str],
    figure_lines: list[str],
    withdrawn: str = "",
) -> list[str]:
    """The lines of ``results.md``; ``withdrawn`` says which withdrawn tables are (not)
    compared."""
    md = [
        "# Results",
        "",
        f"Generated by `ssformer report` from {len(out.runs)} run folder(s). Every number names its "
        "metric convention; ours are only compared with published numbers of the same protocol, "
        "convention, training data, test set, model and backbone. Δ = ours − published.",
        "",
        "![results](results.png)",
        "",
        "## Our numbers beside the published ones",
        "",
    ]
    for section in sections:
        md += [section_markdown(section)]
    if not sections:
        md += ["No run has a test evaluation yet: run `ssformer val RUN_FOLDER` first.", ""]
    if unusable:
        md += ["### Runs not in the table", ""]
        md += [
            f"- {FLAG} `{run.name}` ({run.path.name}): {'; '.join(run.problems)}"
            for run in unusable
        ]
        md += [""]
    md += ["## Metric conventions", "", conventions_markdown()]
    md += [withdrawn, ""] if withdrawn else []
    md += ["## Runs", "", *_run_table(out.runs), ""]
    md += ["## All test metrics", "", *_all_metrics(out.runs), ""]
    md += size_lines
    md += ["## Training curves and predictions", "", *figure_lines]
    return md


def build_report(
    runs: Sequence[Path | str],
    out_dir: Path | str = Path("output/report"),
    *,
    png: Path | str | None = None,
    predictions: bool = True,
    model_sizes: bool = True,
    compute_model_sizes: bool = True,
    samples: int = 2,
    device: str = "cpu",
    published_csv: Path | None = None,
    include_withdrawn: bool = False,
) -> ReportOutput:
    """Write the report for the run folders found under ``runs`` into ``out_dir``.

    ``png``: also copy ``results.png`` there (the repository's README image). Nothing is
    overwritten: an ``out_dir`` that holds files gives way to ``out_dir-N``, an existing
    ``png`` to ``<stem>-N.png`` (each said in ``notes``). ``include_withdrawn``: also compare
    with tables their authors withdrew (labelled so). Raises
    :class:`ssformer.errors.ConfigError` when no run folder is found; broken run folders are
    flagged in the output, not raised.
    """
    out = ReportOutput(out_dir=fresh_folder(Path(out_dir)))
    if out.out_dir != Path(out_dir):
        out.notes.append(f"{out_dir} already holds files; wrote to {out.out_dir} instead")
    out.runs = read_runs([Path(p) for p in runs])
    published = load_published(published_csv)
    comparisons = compare_runs(out.runs, published, include_withdrawn)
    sections = build_sections(comparisons)
    unusable = unusable_runs(out.runs)

    csv_path = out.out_dir / "results.csv"
    write_text_atomic(csv_path, results_csv_text(comparisons, unusable))
    png_path = out.out_dir / "results.png"
    write_results_png(png_path, sections, unusable, TITLE)
    out.files += [csv_path, png_path]

    figure_lines = _figures(out, predictions, samples, device)
    size_lines = _model_sizes(out, compute_model_sizes) if model_sizes else []
    withdrawn = withdrawn_note(published, include_withdrawn)
    md = _markdown(out, sections, unusable, size_lines, figure_lines, withdrawn)
    md_path = out.out_dir / "results.md"
    write_text_atomic(md_path, "\n".join(md).rstrip() + "\n")
    out.files.insert(0, md_path)

    if png is not None:
        target = fresh_file(Path(png))
        if target != Path(png):
            out.notes.append(
                f"{png} exists; wrote {target} beside it (move it over {png} yourself to "
                "replace the old image)"
            )
        out.files.append(copy_file_atomic(png_path, target))
    return out
