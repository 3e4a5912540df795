"""The sweep runner on a 2-backbone x 2-head synthetic grid: killed mid-run, started again,
every run finishes exactly once, and the report holds all four."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ssformer.data.split import split_dataset
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.report import build_report
from ssformer.sweep import plan_sweep, read_ledger, run_sweep

REPO = Path(__file__).resolve().parents[1]
HEADS = ["PLDSegFormer", "SegFormer"]
BACKBONES = ["MiT-B0", "PVTv2-B0"]


def _grid_config(tmp: Path, data: Path) -> Path:
    """A seed-style sweep config (lists of names and backbones), tiny enough for a CPU test."""
    config = yaml.safe_load((REPO / "configs" / "cvc-clinicdb-auto.yaml").read_text())
    config["DEVICE"] = "cpu"
    config["SAVE_DIR"] = str(tmp / "output")
    config["MODEL"] = {"NAME": HEADS, "BACKBONE": BACKBONES, "PRETRAINED": [None, None]}
    config["DATASET"].update({"NAME": "Synthetic", "ROOT": str(data)})
    config["TRAIN"].update(
        {"IMAGE_SIZE": [32, 32], "BATCH_SIZE": 4, "EPOCHS": 2, "AMP": False, "WORKERS": 0}
    )
    config["EVAL"] = {"IMAGE_SIZE": [32, 32]}
    del config["TEST"]
    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep") / "synthetic"
    generate_synthetic_dataset(root, n=10, size=40, seed=5)
    split_dataset(root, root, (0.6, 0.2, 0.2), 1337)
    return root


def _sweep_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "ssformer", "sweep", "--cfg", str(config), "--no-progress"]


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


@pytest.mark.slow
def test_sweep_killed_and_restarted_runs_each_entry_once(tmp_path: Path, data: Path) -> None:
    config = _grid_config(tmp_path, data)
    plan = plan_sweep([config])
    assert [entry.key for entry in plan] == [
        f"{head}_{backbone}_Synthetic" for head in HEADS for backbone in BACKBONES
    ]

    # First attempt: the first entry stalls in the middle of epoch 2 (after epoch 1's
    # checkpoint) and is killed there, like a machine that goes away.
    marker = tmp_path / "stalled"
    stalling = [sys.executable, str(REPO / "tests" / "stalling_cli.py"), "2:1", str(marker)]
    first = subprocess.Popen(
        [*stalling, *_sweep_command(config)[3:]],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert first.poll() is None, first.stdout.read().decode() if first.stdout else ""
        assert time.monotonic() < deadline, "the first entry never reached epoch 2"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert read_ledger(plan[0].ledger_path)["status"] == "running"
    assert all(not entry.ledger_path.exists() for entry in plan[1:])

    second = subprocess.run(
        _sweep_command(config), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming" in second.stdout
    assert "4 trained, 0 already finished, 0 failed" in second.stdout

    for entry in plan:
        ledger = read_ledger(entry.ledger_path)
        assert ledger["status"] == "finished", entry.key
        runs = [p for p in entry.experiment_dir.iterdir() if p.is_dir()]
        assert len(runs) == 1, f"{entry.key} ran in {len(runs)} folders: {runs}"
        assert Path(ledger["run_dir"]) == runs[0]
        history = [
            json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()
        ]
        assert [row["epoch"] for row in history] == [1, 2], entry.key

    third = subprocess.run(
        _sweep_command(config), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert third.returncode == 0
    assert "0 trained, 4 already finished, 0 failed" in third.stdout

    report = build_report(
        [tmp_path / "output"], tmp_path / "report", predictions=False, model_sizes=False
    )
    table = (report.out_dir / "results.md").read_text()
    for head in HEADS:
        assert head in table or ("PLD" if head == "PLDSegFormer" else "SeD") in table
    csv_rows = (report.out_dir / "results.csv").read_text().splitlines()
    for backbone in BACKBONES:
        assert sum(backbone in row for row in csv_rows) >= 2, backbone


def test_failed_entry_is_reported_and_the_sweep_goes_on(tmp_path: Path, data: Path) -> None:
    config = _grid_config(tmp_path, data)
    plan = plan_sweep([config])
    trained: list[str] = []

    class Result:
        def __init__(self, run_dir: Path) -> None:
            self.run_dir, self.best_metric, self.best_metric_name = run_dir, 0.5, "mIoU_2cls"

    def trainer(config, *, resume, progress, echo):  # a stand-in for the engine, not under test
        if config.model.backbone == "PVTv2-B0" and config.model.name == "PLDSegFormer":
            raise RuntimeError("out of memory")
        trained.append(config.run_name)
        return Result(Path(config.save_dir) / config.run_name / "run")

    summary = run_sweep(plan, trainer=trainer)
    assert summary.failed == {"PLDSegFormer_PVTv2-B0_Synthetic": "RuntimeError: out of memory"}
    assert len(trained) == 3 and not summary.ok
    failed_ledger = read_ledger(plan[1].ledger_path)
    assert failed_ledger["status"] == "failed" and "out of memory" in failed_ledger["error"]
    again = run_sweep(plan, trainer=trainer)
    assert again.skipped == [e.key for e in plan if e.key != plan[1].key]
    assert list(again.failed) == [plan[1].key]  # a failed entry is retried, not skipped


def test_seeds_and_duplicates(tmp_path: Path, data: Path) -> None:
    config = _grid_config(tmp_path, data)
    plan = plan_sweep([config], seeds=[1, 2])
    assert len(plan) == 8
    assert {e.config.seed for e in plan} == {1, 2}
    assert plan[0].config.save_dir.endswith("seed-1")
    from ssformer.errors import ConfigError

    with pytest.raises(ConfigError, match="twice"):
        plan_sweep([config, config])


def test_dry_run_estimate_names_what_is_missing_on_a_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The study's 12-entry CVC grid, no data and no weights here: every entry gets a cost
    (a reference step timed on this machine, scaled by FLOPs) and the list of what it lacks."""
    from ssformer.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--cfg", "cvc-clinicdb-auto", "--dry-run", "--estimate"]) == 0
    lines = capsys.readouterr().out.splitlines()
    entries = [line for line in lines if "_CVCClinicDB" in line]
    assert len(entries) == 12
    assert all("s/step" in line and "missing: data data/CVC-ClinicDB" in line for line in entries)
    assert all("weights checkpoints/backbones/mit/mit_b" in line for line in entries)
    # no data here: CVC-ClinicDB's published 612 frames give split-folders' 489 training images
    assert all("(data not here: 489 training images assumed)" in line for line in entries)
    assert all(" h (data not here" in line for line in entries)
    total = float(lines[-1].split("what is left: ")[1].split(" h")[0])
    assert total > 0 and "scaled by FLOPs" in lines[-1]
