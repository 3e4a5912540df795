"""``ssformer demo`` end to end, shrunk to seconds with --set (the full demo is `make demo`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssformer.cli import main


@pytest.mark.slow
def test_demo_runs_every_step_and_says_where_outputs_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--no-progress", "--set", "TRAIN.EPOCHS=1", "SCHEDULER.WARMUP=0", "DEVICE=cpu"]
    args += [f"{key}=[32,32]" for key in ("TRAIN.IMAGE_SIZE", "EVAL.IMAGE_SIZE", "TEST.IMAGE_SIZE")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Demo finished" in out and "test Dice@0.5" in out

    data = tmp_path / "data" / "synthetic"
    assert len(list((data / "images").iterdir())) == 200  # the originals stay beside the split
    manifest = json.loads((data / "split.json").read_text())
    assert manifest["counts"] == {"train": 160, "val": 20, "test": 20}
    (run_dir,) = (tmp_path / "output" / "demo" / "SSFormer_MiT-B0_Synthetic").iterdir()
    for name in ("config.yaml", "train.log", "metrics.jsonl", "best.pth", "eval_test.json"):
        assert (run_dir / name).is_file(), name
    assert len(list((run_dir / "predictions").glob("*_overlay.png"))) == 4
    assert (run_dir / "report" / "results.png").is_file()

    # a second demo reuses the data and never overwrites the first run
    assert main(args) == 0
    assert len(list((tmp_path / "output" / "demo" / "SSFormer_MiT-B0_Synthetic").iterdir())) == 2
