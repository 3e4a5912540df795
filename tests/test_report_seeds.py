"""``ssformer report`` over seeds: runs of one entry that differ only in ``SEED`` give one row
with mean ± sd (n) and a bootstrap interval over the test images; other variants stay apart.
The run folders are made with the report tests' helpers (config.yaml, metrics.jsonl,
eval_test.json as training and ``ssformer val`` write them)."""

from __future__ import annotations

import json
import statistics as pystats
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_report import STUDY, kvasir_split, read_csv, write_run  # noqa: F401 (fixture)

from ssformer.cli import main
from ssformer.report.error_bars import error_bars
from ssformer.report.published_conventions import load_published
from ssformer.report.runs import read_runs
from ssformer.report.statistics import bootstrap_interval
from ssformer.report.tables import build_sections, compare_runs

NAMES = [f"cju{index:022d}" for index in range(8)]


def _rows(seed: int) -> list[dict[str, object]]:
    """Per-image rows as `val` writes them: per-image metrics and pooled 2x2 counts."""
    rng = np.random.default_rng(seed)
    rows = []
    for name in NAMES:
        tp, fn, fp = (int(v) for v in rng.integers(50, 400, size=3))
        dice = 2 * tp / (2 * tp + fn + fp)
        rows.append(
            {
                "name": name,
                "Dice@0.5": dice,
                "IoU@0.5": tp / (tp + fn + fp),
                "mDice": dice - 0.01,
                "confusion_2cls": [[5000, fp], [fn, tp]],
            }
        )
    return rows


def _seed_run(folder: Path, seed: int, root: str, lr: float = 1e-4) -> Path:
    rows = _rows(seed)
    counts = np.array([row["confusion_2cls"] for row in rows], dtype=float).sum(0)
    diag, sizes = np.diag(counts), counts.sum(0) + counts.sum(1)  # per class: hits, pred + GT
    miou, mdice = np.mean(diag / (sizes - diag)) * 100, np.mean(2 * diag / sizes) * 100
    write_run(folder, "PLDSegFormer", "MiT-B0", scores=(float(miou), float(mdice)), root=root)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["SEED"] = seed
    config["OPTIMIZER"] = {"NAME": "adamw", "LR": lr}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    evaluation = json.loads((folder / "eval_test.json").read_text())
    evaluation["per_image"] = rows
    (folder / "eval_test.json").write_text(json.dumps(evaluation))
    return folder


def test_report_groups_seeds_with_sd_n_and_interval(tmp_path: Path, kvasir_split: str) -> None:  # noqa: F811
    runs = tmp_path / "runs"
    seeds = [_seed_run(runs / f"seed{seed}", seed, kvasir_split) for seed in (1, 2, 3)]
    _seed_run(runs / "lr3e-4", 4, kvasir_split, lr=3e-4)  # a sweep variant, not a seed
    out = tmp_path / "report"
    assert main(["report", str(runs), "--out", str(out), "--skip-model-sizes"]) == 0
    rows = [r for r in read_csv(out / "results.csv") if r["metric"] == "mDice"]
    assert len(rows) == 2
    grouped = next(r for r in rows if r["n"] == "3")
    alone = next(r for r in rows if r["n"] == "1")
    assert grouped["run"] == "seed1, seed2, seed3" and grouped["seeds"] == "1 2 3"
    assert alone["run"] == "lr3e-4" and alone["sd"] == ""

    values = [
        json.loads((s / "eval_test.json").read_text())["metrics"]["mDice_2cls"] for s in seeds
    ]
    assert float(grouped["ours"]) == pytest.approx(pystats.fmean(values), rel=1e-5)
    assert float(grouped["sd"]) == pytest.approx(pystats.stdev(values), rel=1e-5)
    published = STUDY[("PLDSegFormer", "MiT-B0")][1]
    assert float(grouped["published"]) == pytest.approx(published)
    assert float(grouped["difference"]) == pytest.approx(pystats.fmean(values) - published, 1e-4)

    counts = [np.array([r["confusion_2cls"] for r in _rows(seed)]) for seed in (1, 2, 3)]
    low, high = bootstrap_interval(counts, "mDice_2cls")
    assert (float(grouped["ci95_low"]), float(grouped["ci95_high"])) == pytest.approx(
        (low, high), rel=1e-5
    )
    assert low < float(grouped["ours"]) < high
    alone_ci = bootstrap_interval([np.array([r["confusion_2cls"] for r in _rows(4)])], "mDice_2cls")
    assert float(alone["ci95_low"]) == pytest.approx(alone_ci[0], rel=1e-5)

    md = (out / "results.md").read_text(encoding="utf-8")
    mean, sd = pystats.fmean(values), pystats.stdev(values)
    assert f"**{mean:.2f} ± {sd:.2f} (n=3)** | [{low:.2f}, {high:.2f}] | {published:.2f} |" in md
    assert "| Kvasir-SEG | MiT-B0 | **" in md  # the variant keeps a row of its own
    assert "| Kvasir-SEG | MiT-B0 [seed1, seed2, seed3] | **" in md


def test_error_bars_place_interval_sd_and_published_on_one_axis(
    tmp_path: Path,
    kvasir_split: str,  # noqa: F811
) -> None:
    for seed in (1, 2, 3):
        _seed_run(tmp_path / "runs" / f"seed{seed}", seed, kvasir_split)
    _seed_run(tmp_path / "runs" / "lr3e-4", 4, kvasir_split, lr=3e-4)
    runs = read_runs([tmp_path / "runs"])
    (section,) = build_sections(compare_runs(runs, load_published()))
    bars = error_bars(section)
    assert set(bars) == set(section.cells)
    for key, bar in bars.items():
        cell = section.cells[key]
        assert 0.0 <= bar.low <= bar.value <= bar.high <= 1.0
        assert bar.reference is not None and 0.0 <= bar.reference <= 1.0  # the study's number
        assert (bar.sd is not None) == (cell.n == 3)
        if bar.sd is not None:
            assert bar.sd[0] < bar.value < bar.sd[1]
            # one axis per column: the same scale maps the interval and the sd
            scale = (bar.high - bar.low) / (cell.ci95[1] - cell.ci95[0])
            assert bar.sd[1] - bar.sd[0] == pytest.approx(2 * cell.sd * scale)


def test_compare_reads_run_folders(tmp_path: Path, kvasir_split: str, capsys) -> None:  # noqa: F811
    a = [_seed_run(tmp_path / f"a{seed}", seed, kvasir_split) for seed in (1, 2)]
    b = _seed_run(tmp_path / "b", 7, kvasir_split)
    out = tmp_path / "cmp.json"
    cmd = ["compare", "--a", *map(str, a), "--b", str(b), "--metric", "Dice@0.5"]
    assert main([*cmd, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == len(NAMES) and result["test_set"] == "Kvasir"
    side_a = np.mean([[r["Dice@0.5"] for r in _rows(s)] for s in (1, 2)], axis=0)
    side_b = np.array([r["Dice@0.5"] for r in _rows(7)])
    assert result["mean_difference"] == pytest.approx(float(np.mean(side_b - side_a)))
    assert "Kvasir Dice@0.5: B - A =" in capsys.readouterr().out
