"""Weights that know their size: predict, export and val run at the size our checkpoints record,
print it, and warn when told another; weights that record nothing keep the default and say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ssformer.cli import main
from ssformer.commands.predict import split_size_argument
from ssformer.errors import ConfigError
from ssformer.models import build_model, save_checkpoint_file
from ssformer.models.sizes import RecordedSizes, choose_size, recorded_sizes


def _our_checkpoint(path: Path, size: int) -> Path:
    torch.manual_seed(0)
    model = build_model("SSFormer", "MiT-B0")
    config = {"TRAIN": {"IMAGE_SIZE": [size, size]}, "EVAL": {"IMAGE_SIZE": [size, size]}}
    meta = RecordedSizes((size, size), (size, size), "official").as_meta()
    return save_checkpoint_file(path, model, config=config, **meta)


def _a_frame(tmp_path: Path) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "frame.png"
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


def test_choose_size_rules() -> None:
    lines: list[str] = []
    recorded = RecordedSizes((96, 96), (96, 96))
    assert choose_size(recorded, echo=lines.append) == (96, 96)
    assert "input size 96x96 (recorded in the weights (trained at 96x96))" in lines[-1]
    assert choose_size(recorded, told=(352, 352), echo=lines.append) == (352, 352)
    assert lines[-1].startswith("warning: running at 352x352 (--size)")
    assert "evaluated at 96x96" in lines[-1] and "drop --size" in lines[-1]
    assert choose_size(recorded, configured=(352, 352), configured_by="X", echo=lines.append) == (
        96,
        96,
    )
    assert "note: X says 352x352" in lines[-2] and "96x96" in lines[-1]
    assert choose_size(None, echo=lines.append) == (352, 352)
    assert "the weights do not record their size" in lines[-1]
    assert choose_size(None, configured=(128, 160), configured_by="Y", echo=lines.append) == (
        128,
        160,
    )


def test_recorded_sizes_from_meta_and_from_an_older_files_config(tmp_path: Path) -> None:
    ours = _our_checkpoint(tmp_path / "best.pth", 64)
    assert recorded_sizes(ours) == RecordedSizes((64, 64), (64, 64), "official")
    model = build_model("SSFormer", "MiT-B0")
    older = save_checkpoint_file(
        tmp_path / "older.pth",
        model,
        config={"TRAIN": {"IMAGE_SIZE": [96, 128]}, "EVAL": {"IMAGE_SIZE": [96, 96]}},
    )
    assert recorded_sizes(older) == RecordedSizes((96, 128), (96, 96), None)
    torch.save(model.state_dict(), tmp_path / "foreign.pth")  # a bare state dict: no record
    assert recorded_sizes(tmp_path / "foreign.pth") is None
    (tmp_path / "page.pth").write_text("<html>not a checkpoint</html>")
    assert recorded_sizes(tmp_path / "page.pth") is None


def test_size_argument_takes_inputs_after_it() -> None:
    assert split_size_argument(["96", "clip.mp4"]) == ((96, 96), [Path("clip.mp4")])
    assert split_size_argument(["96", "128", "a.jpg", "b"]) == (
        (96, 128),
        [Path("a.jpg"), Path("b")],
    )
    assert split_size_argument(None) == (None, [])
    for bad in (["0"], ["-5"], ["100000"], ["x"]):
        with pytest.raises(ConfigError, match="--size"):
            split_size_argument(bad)


def test_predict_runs_at_the_recorded_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = _our_checkpoint(tmp_path / "best.pth", 64)
    frame = _a_frame(tmp_path)
    common = ["--weights", str(weights), "--device", "cpu", "--no-overlay"]
    assert main(["predict", *common, str(frame), "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "input size 64x64 (recorded in the weights" in out and "input 64x64" in out
    # --size first, the input after it (it used to be read as a second size)
    assert main(["predict", *common, "--out", str(tmp_path / "b"), "--size", "96", str(frame)]) == 0
    out = capsys.readouterr().out
    assert "warning: running at 96x96 (--size), but the weights were evaluated at 64x64" in out
    assert (tmp_path / "b" / "frame_mask.png").is_file()


def test_foreign_weights_keep_the_default_and_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save(build_model("SSFormer", "MiT-B0").state_dict(), tmp_path / "plain.pth")
    frame = _a_frame(tmp_path)
    args = ["predict", "--weights", str(tmp_path / "plain.pth"), str(frame), "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "out"), "--no-overlay"]) == 0
    out = capsys.readouterr().out
    assert "input size 352x352 (the default; the weights do not record their size)" in out


@pytest.mark.slow
def test_export_records_the_weights_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    weights = _our_checkpoint(tmp_path / "best.pth", 64)
    assert main(["export", "--weights", str(weights), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "input size 64x64 (recorded in the weights" in out and "nominal 64x64" in out
    sidecar = json.loads((tmp_path / "best.onnx.json").read_text())
    assert sidecar["input"]["size"] == [64, 64]


def test_run_eta_uses_the_latest_epoch_and_the_time_limit() -> None:
    import time

    from ssformer.engine.train_log import run_eta

    history = [{"train_time_s": 600.0, "eval_time_s": 0.0}, {"train_time_s": 50, "eval_time_s": 10}]
    assert run_eta(history, 3) == "3m00s"  # not the first epoch's cache fill, nor the mean
    assert run_eta([], 3) == "" and run_eta(history, 0) == ""
    capped = run_eta(history, 100, deadline=time.monotonic() + 125)
    assert capped.startswith("2m0") and capped.endswith(", TRAIN.TIME_LIMIT_MIN stops it")
    assert run_eta(history, 2, deadline=time.monotonic() + 3600) == "2m00s"
