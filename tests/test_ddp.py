"""Distributed data-parallel training: two Gloo processes on the CPU train one epoch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ssformer.data.split import split_dataset
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.engine.training_state import load_training_state
from ssformer.models import model_from_checkpoint

REPO = Path(__file__).resolve().parents[1]
KVASIR_CFG = REPO / "configs" / "kvasir-seg.yaml"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_process_gloo_epoch_and_rank0_checkpoint_loads(tmp_path: Path) -> None:
    generate_synthetic_dataset(tmp_path / "synth", n=12, size=40, seed=5)
    root = split_dataset(tmp_path / "synth", tmp_path / "split", (0.67, 0.17, 0.16), 1337).output
    save = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(REPO / "tools" / "train.py"),
        "--cfg",
        str(KVASIR_CFG),
        "--set",
        "DEVICE=cpu",
        f"SAVE_DIR={save}",
        f"DATASET.ROOT={root}",
        "MODEL.BACKBONE=MiT-B0",
        "MODEL.PRETRAINED=null",
        "TRAIN.DDP=true",
        "TRAIN.IMAGE_SIZE=[32,32]",
        "EVAL.IMAGE_SIZE=[32,32]",
        "TRAIN.EPOCHS=1",
        "TRAIN.BATCH_SIZE=2",
        "TRAIN.AMP=false",
        "TRAIN.WORKERS=0",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    runs = list((save / "SegFormer_MiT-B0_Kvasir").iterdir())
    assert len(runs) == 1  # rank 0 alone made the run folder
    run = runs[0]
    state = load_training_state(run / "last.pth")
    # 8 training images, 2 ranks x batch 2: 2 steps per epoch on each rank
    assert state["epoch"] == 1 and state["global_step"] == 2
    assert len(state["rng_states"]) == 2  # one random state per rank
    assert "world size 2" in (run / "train.log").read_text()
    model = model_from_checkpoint(run / "best.pth")
    assert model.backbone_name == "MiT-B0" and model.num_classes == 2
