"""``--resume`` continues exactly: a run killed (SIGKILL) in the middle of epoch 2 and resumed
ends with the same weights as an uninterrupted run (``torch.equal`` on every tensor)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssformer.data.split import split_dataset
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.engine.training_state import load_training_state

REPO = Path(__file__).resolve().parents[1]
KVASIR_CFG = REPO / "configs" / "kvasir-seg.yaml"


def _overrides(root: Path, save_dir: Path) -> list[str]:
    return [
        "DEVICE=cpu",
        f"SAVE_DIR={save_dir}",
        f"DATASET.ROOT={root}",
        "MODEL.NAME=SSFormer",
        "MODEL.BACKBONE=MiT-B0",
        "MODEL.PRETRAINED=null",
        "LOSS.NAME=DiceBCE",
        "MODEL.NUM_CLASSES=1",
        "TRAIN.IMAGE_SIZE=[32,32]",
        "EVAL.IMAGE_SIZE=[32,32]",
        "TRAIN.EPOCHS=3",
        "TRAIN.BATCH_SIZE=4",
        "TRAIN.AMP=false",
        "TRAIN.WORKERS=0",
    ]


def _train(args: list[str], stall: tuple[str, Path] | None = None) -> subprocess.Popen[str]:
    """``tools/train.py ARGS``; with ``stall=("EPOCH:STEP", marker)`` through the test-only
    stalling entry point (``tests/stalling_cli.py``), which writes the marker and sleeps there."""
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [str(REPO / "tools" / "train.py")]
    if stall is not None:
        command = [str(REPO / "tests" / "stalling_cli.py"), stall[0], str(stall[1]), "train"]
    return subprocess.Popen(
        [sys.executable, *command, *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout: float = 600) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def _only_run(save_dir: Path) -> Path:
    runs = list((save_dir / "SSFormer_MiT-B0_Kvasir").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    generate_synthetic_dataset(tmp_path / "synth", n=16, size=64, seed=7)
    root = split_dataset(tmp_path / "synth", tmp_path / "split", (0.75, 0.125, 0.125), 1337).output

    # the interrupted run: it stalls after step 2 of epoch 2 (of 3 steps) and is killed there
    killed_dir = tmp_path / "killed"
    victim = _train(
        ["--cfg", str(KVASIR_CFG), "--set", *_overrides(root, killed_dir)],
        stall=("2:2", tmp_path / "stalled"),
    )
    # meanwhile the uninterrupted run
    full_dir = tmp_path / "full"
    reference = _train(["--cfg", str(KVASIR_CFG), "--set", *_overrides(root, full_dir)])
    deadline = time.monotonic() + 600
    while not (tmp_path / "stalled").exists():
        assert victim.poll() is None, victim.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never reached epoch 2, step 2"
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    run = _only_run(killed_dir)
    assert load_training_state(run / "last.pth")["epoch"] == 1  # killed mid-epoch 2

    output = _finish(_train(["--resume", str(run), "--set", f"SAVE_DIR={killed_dir}"]))
    assert "resumed from" in output
    _finish(reference)

    resumed = load_training_state(run / "last.pth")
    uninterrupted = load_training_state(_only_run(full_dir) / "last.pth")
    assert resumed["epoch"] == uninterrupted["epoch"] == 3
    assert resumed["global_step"] == uninterrupted["global_step"]
    assert resumed["model"].keys() == uninterrupted["model"].keys()
    for key, value in uninterrupted["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    for a, b in zip(
        resumed["optimizer"]["state"].values(),
        uninterrupted["optimizer"]["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(a[k], b[k]) for k in a)
    # the metrics log holds each epoch once, with the same numbers
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    ref_rows = [
        json.loads(x) for x in (_only_run(full_dir) / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for row, ref in zip(rows, ref_rows, strict=True):
        assert row["train_loss"] == ref["train_loss"]
        assert row["val/Dice@0.5"] == ref["val/Dice@0.5"]


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    import random

    import numpy as np

    from ssformer.engine.training_state import (
        Progress,
        TrainingState,
        capture_rng_state,
        restore_rng_state,
    )

    generator = torch.Generator().manual_seed(3)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    progress = Progress(epoch=2, global_step=7, best_metric=0.5, best_epoch=1, history=[{"a": 1}])
    state = TrainingState(model, optimizer, scheduler, scaler, generator, progress)
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(4)
    np.random.normal()  # leaves a cached Gaussian in NumPy's legacy state

    def draw() -> tuple[float, ...]:
        return (
            random.random(),
            float(np.random.normal()),
            float(torch.rand(1)),
            float(torch.rand(1, generator=generator)),
        )

    state.save(
        tmp_path / "last.pth",
        rng_states=[capture_rng_state(generator)],
        config={"SEED": 1},
        selection_metric="Dice@0.5",
    )
    first = draw()
    loaded = load_training_state(tmp_path / "last.pth")
    restore_rng_state(loaded["rng_states"][0], generator)
    assert draw() == first
    # the whole state comes back through TrainingState.restore (random states included)
    fresh = TrainingState(torch.nn.Linear(2, 1), optimizer, scheduler, scaler, generator)
    assert fresh.restore(loaded, rank=0, world_size=1)
    assert fresh.progress == progress
    assert all(
        torch.equal(a, b)
        for a, b in zip(fresh.model.state_dict().values(), model.state_dict().values(), strict=True)
    )
    assert draw() == first
    assert not fresh.restore(loaded, rank=0, world_size=2)  # one state per process, or none
    assert not list(tmp_path.glob(".*"))  # the atomic write left no temporary file


def test_foreign_file_is_not_a_training_state(tmp_path: Path) -> None:
    from ssformer.errors import CheckpointError

    torch.save({"model": {}}, tmp_path / "last.pth")
    with pytest.raises(CheckpointError, match="not an ssformer training state"):
        load_training_state(tmp_path / "last.pth")
    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_training_state(tmp_path / "cut.pth")
