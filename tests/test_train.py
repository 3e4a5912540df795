"""Training end to end on a tiny synthetic split: the seed configs, run folders, failures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssformer.config import load_config, load_configs, save_config
from ssformer.data.split import split_dataset
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.engine.epoch import NonFiniteLossError, train_one_epoch
from ssformer.engine.train import run_training
from ssformer.engine.training_state import load_training_state
from ssformer.errors import CheckpointError, ConfigError, DataError
from ssformer.io.checkpoint_file import read_checkpoint
from ssformer.models import build_model, model_from_checkpoint

REPO = Path(__file__).resolve().parents[1]
KVASIR_CFG = REPO / "configs" / "kvasir-seg.yaml"
SWEEP_CFG = REPO / "configs" / "cvc-clinicdb-auto.yaml"


def tiny_overrides(root: Path, save_dir: Path, size: int = 32) -> list[str]:
    """Overrides that turn a seed config into a seconds-long CPU run."""
    return [
        "DEVICE=cpu",
        f"SAVE_DIR={save_dir}",
        f"DATASET.ROOT={root}",
        f"TRAIN.IMAGE_SIZE=[{size},{size}]",
        f"EVAL.IMAGE_SIZE=[{size},{size}]",
        "TRAIN.EPOCHS=1",
        "TRAIN.BATCH_SIZE=4",
        "TRAIN.AMP=false",
        "TRAIN.WORKERS=0",
        "MODEL.PRETRAINED=null",
    ]


@pytest.fixture(scope="module")
def split_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("data")
    generate_synthetic_dataset(base / "synth", n=12, size=(40, 48), seed=3, size_jitter=0.2)
    return split_dataset(base / "synth", base / "split", (0.67, 0.17, 0.16), 1337).output


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def test_typo_in_override_fails_fast_naming_the_key(tmp_path: Path) -> None:
    start = time.monotonic()
    result = _cli(
        str(REPO / "tools" / "train.py"), "--cfg", str(KVASIR_CFG), "--set", "TRAIN.BATCH_SZE=4"
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    assert "TRAIN.BATCH_SZE" in result.stderr and "TRAIN.BATCH_SIZE" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 2.0, f"config error took {elapsed:.2f} s"


def test_typo_in_file_fails_fast_naming_the_key(tmp_path: Path) -> None:
    text = KVASIR_CFG.read_text().replace("EPOCHS        :", "EPOCS :")
    assert "EPOCS" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    start = time.monotonic()
    result = _cli("-m", "ssformer", "train", "--cfg", str(bad))
    elapsed = time.monotonic() - start
    assert result.returncode == 2
    assert "TRAIN.EPOCS" in result.stderr
    assert elapsed < 2.0, f"config error took {elapsed:.2f} s"


def test_sweep_file_points_to_sweep_command(tmp_path: Path) -> None:
    result = _cli("-m", "ssformer", "train", "--cfg", str(SWEEP_CFG), "--set", "DEVICE=cpu")
    assert result.returncode == 2
    assert "ssformer sweep" in result.stderr


@pytest.mark.slow
def test_seed_config_trains_one_epoch_from_the_cli(split_root: Path, tmp_path: Path) -> None:
    save = tmp_path / "output"
    result = _cli(
        str(REPO / "tools" / "train.py"),
        "--cfg",
        str(KVASIR_CFG),
        "--set",
        *tiny_overrides(split_root, save),
        "MODEL.BACKBONE=MiT-B0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((save / "SegFormer_MiT-B0_Kvasir").iterdir())
    assert len(runs) == 1
    run = runs[0]
    for name in ("config.yaml", "train.log", "metrics.jsonl", "metrics.csv", "last.pth"):
        assert (run / name).is_file(), name
    merged = load_config(run / "config.yaml")
    assert merged.train.image_size == (32, 32) and merged.model.backbone == "MiT-B0"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]
    assert {"lr", "train_loss", "val/mIoU_2cls", "val/Dice@0.5"} <= rows[0].keys()
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")
    assert "epoch 1/1 done" in (run / "train.log").read_text()
    shared = (save / "logs_txt" / "Kvasir.log").read_text()
    assert str(run) in shared and "epoch 1/1 done" in shared
    state = load_training_state(run / "last.pth")
    assert state["epoch"] == 1 and state["global_step"] == 2
    assert {"optimizer", "scheduler", "scaler", "rng_states", "config", "history"} <= state.keys()
    # torch >= 2.4 has a fused CPU AdamW, and the trainer uses it
    assert all(group["fused"] for group in state["optimizer"]["param_groups"])
    # best weights: our format in the run and at the seed's EVAL.MODEL_PATH
    model = model_from_checkpoint(run / "best.pth")
    assert (model.name, model.backbone_name, model.num_classes) == ("SegFormer", "MiT-B0", 2)
    compat = save / "SegFormer_MiT-B0_Kvasir.pth"
    assert read_checkpoint(compat)["meta"]["run_dir"] == str(run)
    assert compat.read_bytes() == (run / "best.pth").read_bytes()  # one file, two places
    log_text = (run / "train.log").read_text()
    assert re.search(r"\(best \d+\.\d{4} at epoch 1\)", log_text)
    assert re.search(r"run finished in [\d.]+ s: best \S+ \d+\.\d{4} at epoch 1;", log_text)
    report = json.loads((run / "eval_test.json").read_text())
    assert report["split"] == "test" and "mDice" in report["metrics"]


@pytest.mark.slow
def test_sweep_combination_via_api_and_runs_never_overwrite(
    split_root: Path, tmp_path: Path
) -> None:
    save = tmp_path / "output"
    configs = load_configs(SWEEP_CFG, tiny_overrides(split_root, save))
    assert len(configs) == 12
    config = configs[0]  # PLDSegFormer on MiT-B0
    assert config.run_name == "PLDSegFormer_MiT-B0_CVCClinicDB"
    compat = save / "PLDSegFormer_MiT-B0_CVCClinicDB.pth"
    compat.parent.mkdir(parents=True)
    compat.write_bytes(b"an older file that must survive")
    first = run_training(config, echo=None)
    second = run_training(config, echo=None)
    assert first.run_dir != second.run_dir
    assert first.best_path is not None and first.best_path.is_file()
    assert second.compat_path == compat
    assert read_checkpoint(compat)["meta"]["run_dir"] == str(second.run_dir)
    kept = sorted(p for p in save.glob("PLDSegFormer_MiT-B0_CVCClinicDB.*.pth"))
    assert len(kept) == 2  # the foreign file and the first run's weights, both renamed aside
    foreign = [p for p in kept if p.read_bytes() == b"an older file that must survive"]
    assert len(foreign) == 1
    (first_weights,) = set(kept) - set(foreign)  # renamed names sort by time stamp, not by age
    assert read_checkpoint(first_weights)["meta"].get("run_dir") == str(first.run_dir)
    assert 0.0 <= first.best_metric <= 100.0 and first.best_metric_name == "mIoU_2cls"


def test_missing_pretrained_file_points_to_download(split_root: Path, tmp_path: Path) -> None:
    import re

    from ssformer.cli import build_parser

    overrides = [*tiny_overrides(split_root, tmp_path), "MODEL.PRETRAINED=nowhere/mit_b1.pth"]
    config = load_config(KVASIR_CFG, overrides)
    with pytest.raises(CheckpointError, match="ssformer download weights") as raised:
        run_training(config, echo=None)
    (command,) = re.findall(r"`ssformer ([^`]+)`", str(raised.value))
    args = build_parser().parse_args(command.split())  # the command it names parses as written
    assert args.names == [config.model.backbone.lower()]
    # PVTv2-B0's weights come from the Hub only: the command names it too
    config = load_config(KVASIR_CFG, [*overrides, "MODEL.BACKBONE=PVTv2-B0"])
    with pytest.raises(CheckpointError, match="ssformer download weights pvtv2-b0"):
        run_training(config, echo=None)


def test_broken_dataset_refused_before_training(tmp_path: Path) -> None:
    generate_synthetic_dataset(tmp_path / "synth", n=10, size=32, seed=1)
    root = split_dataset(tmp_path / "synth", tmp_path / "split", (0.6, 0.2, 0.2), 1337).output
    victim = next((root / "train" / "masks").iterdir())
    victim.write_bytes(b"not an image")
    config = load_config(KVASIR_CFG, tiny_overrides(root, tmp_path / "out"))
    with pytest.raises(DataError, match=victim.name):
        run_training(config, echo=None)
    assert not (tmp_path / "out" / config.run_name).exists() or not any(
        (tmp_path / "out" / config.run_name).glob("*/last.pth")
    )


def test_unsplit_root_is_refused_with_the_split_command(tmp_path: Path) -> None:
    generate_synthetic_dataset(tmp_path / "synth", n=4, size=32, seed=1)
    config = load_config(KVASIR_CFG, tiny_overrides(tmp_path / "synth", tmp_path / "out"))
    with pytest.raises(DataError, match="ssformer split"):
        run_training(config, echo=None)


class _NaNOnSecondCall(torch.nn.Module):
    """A real loss (BCE with logits) that returns NaN from its second call on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        return loss * float("nan") if self.calls >= 2 else loss


def test_non_finite_loss_stops_before_the_bad_step() -> None:
    from ssformer.engine.distributed import DistContext

    torch.manual_seed(0)
    model = build_model("SSFormer", "MiT-B0", num_classes=1)
    batches = [
        {"image": torch.randn(2, 3, 32, 32), "mask": (torch.rand(2, 1, 32, 32) > 0.5).float()}
        for _ in range(3)
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    snapshots: list[dict[str, torch.Tensor]] = []

    class Recorder(list):
        def __iter__(self):
            for batch in super().__iter__():
                snapshots.append({k: v.detach().clone() for k, v in model.named_parameters()})
                yield batch

    loss_fn = _NaNOnSecondCall()
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 2"):
        train_one_epoch(
            model,
            Recorder(batches),
            loss_fn,
            optimizer,
            scheduler,
            scaler,
            DistContext(),
            epoch=1,
            epochs=1,
            log=lambda _: None,
        )
    after = dict(model.named_parameters())
    # the weights after the error are those before the NaN step: no NaN was applied
    assert all(torch.equal(after[k], snapshots[1][k]) for k in after)
    assert all(torch.isfinite(v).all() for v in after.values())


def test_resume_without_last_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    from ssformer.engine.training_state import find_resume_run

    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match=r"last\.pth"):
        find_resume_run(str(tmp_path / "run"), None)
    with pytest.raises(CheckpointError, match="no runs"):
        find_resume_run("last", tmp_path / "missing")


def test_cli_without_cfg_or_resume_is_a_config_error() -> None:
    import argparse

    from ssformer.commands.train import _load

    args = argparse.Namespace(cfg=None, resume=None, overrides=[])
    with pytest.raises(ConfigError, match="--cfg"):
        _load(args)


def test_bare_resume_picks_the_newest_run_under_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse
    import os

    from ssformer.commands.train import _load

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(cfg=None, resume="last", overrides=[])
    with pytest.raises(ConfigError, match=r"none with a last\.pth"):
        _load(args)
    for stamp, age in (("20260101-000000", 100), ("20260102-000000", 10)):
        run = tmp_path / "output" / "SSFormer_MiT-B0_Kvasir" / stamp
        run.mkdir(parents=True)
        (run / "last.pth").write_bytes(b"")
        os.utime(run / "last.pth", (age, age))
        overrides = ["DATASET.ROOT=data/x", "MODEL.NAME=SSFormer", "MODEL.BACKBONE=MiT-B0"]
        save_config(load_config(KVASIR_CFG, overrides), run / "config.yaml")
    config = _load(args)
    assert (
        Path(args.resume).resolve()
        == tmp_path / "output" / "SSFormer_MiT-B0_Kvasir" / "20260101-000000"
    )
    assert config.model.name == "SSFormer"


def test_cli_prints_a_training_error_once_and_logs_it(
    split_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssformer.cli import main

    overrides = [*tiny_overrides(split_root, tmp_path), "MODEL.PRETRAINED=nowhere/mit_b1.pth"]
    assert main(["train", "--cfg", str(KVASIR_CFG), "--set", *overrides]) == 2
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("MODEL.PRETRAINED=nowhere/mit_b1.pth") == 1
    assert "error" in captured.err
    config = load_config(KVASIR_CFG, overrides)
    # a failed start leaves no run folder; the data set's shared log keeps the error
    assert not (tmp_path / config.run_name).exists()
    shared = (config.resolved_log_dir / f"{config.dataset.name}.log").read_text()
    assert "error: MODEL.PRETRAINED=nowhere/mit_b1.pth" in shared
    assert "its folder is removed" in shared


def test_more_epochs_on_resume_stretch_the_schedule_and_say_so(
    split_root: Path, tmp_path: Path
) -> None:
    overrides = [
        *tiny_overrides(split_root, tmp_path),
        "MODEL.NAME=SegFormer",
        "MODEL.BACKBONE=MiT-B0",
        "SCHEDULER.NAME=warmuppolylr",
        "SCHEDULER.WARMUP=0",
    ]
    first = run_training(load_config(KVASIR_CFG, [*overrides, "TRAIN.EPOCHS=2"]), echo=None)
    assert first.history[-1]["lr"] > 0
    longer = load_config(KVASIR_CFG, [*overrides, "TRAIN.EPOCHS=4"])
    resumed = run_training(longer, resume=first.run_dir, echo=None)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    lrs = [row["lr"] for row in resumed.history]
    assert lrs[2] > 0 and lrs[3] > 0 and lrs[3] < lrs[2]  # it goes on decaying, not at lr 0
    log = (first.run_dir / "train.log").read_text()
    assert "TRAIN.EPOCHS changed from 2 to 4 on resume" in log
    assert list((first.run_dir / "tensorboard").glob("events.out.tfevents.*"))  # on by default
    # a run-level ETA in the epoch lines and in the step lines that tail -f shows
    assert re.search(r"epoch 1/2 done: .*; run ETA \d+m\d\ds", log)
    assert re.search(r"epoch 2/2 \(run ETA \d+m\d\ds\) step 1/", log)


def test_eval_metrics_all_reports_the_whole_table_at_every_validation(
    split_root: Path, tmp_path: Path
) -> None:
    overrides = [
        *tiny_overrides(split_root, tmp_path),
        "MODEL.NAME=SegFormer",
        "MODEL.BACKBONE=MiT-B0",
        "EVAL.METRICS=all",
    ]
    result = run_training(load_config(KVASIR_CFG, overrides), echo=None)
    row = result.history[-1]
    for key in (
        "val/S_alpha",
        "val/E_phi_mean",
        "val/E_phi_adp",
        "val/Fw_beta",
        "val/MAE",
        "val/mIoU_2cls",
        "val/official_dice",
    ):
        assert key in row and row[key] == row[key], key  # present and not NaN
