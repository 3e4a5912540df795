"""Inference on an image, a folder and a tiny video; outputs never overwrite files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from ssformer.engine.predict import Predictor, collect_inputs, predict_paths
from ssformer.errors import DataError
from ssformer.models import build_model, save_checkpoint_file

REPO = Path(__file__).resolve().parents[1]


class Oracle(nn.Module):
    """Bright pixels are polyp (one logit channel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 8.0 * x.mean(dim=1, keepdim=True)


def _disc_image(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (w // 2, h // 2), min(h, w) // 4, 255, -1)
    rgb = np.full((h, w, 3), 25, np.uint8)
    rgb[mask > 0] = (240, 200, 190)
    return rgb, mask > 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _read_mask(path: Path) -> np.ndarray:
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert array is not None and array.ndim == 2
    assert set(np.unique(array)) <= {0, 255}
    return array > 127


def _write_video(path: Path, frames: int) -> Path:
    """A 64x48 mp4 of ``frames`` identical disc frames at 5 FPS."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (64, 48))
    frame, _ = _disc_image(48, 64)
    for _ in range(frames):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_image_folder_and_video_with_the_oracle(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    (inputs / "folder").mkdir(parents=True)
    single, single_gt = _disc_image(70, 90)
    cv2.imwrite(str(inputs / "single.jpg"), cv2.cvtColor(single, cv2.COLOR_RGB2BGR))
    truths = {}
    for index, (h, w) in enumerate([(40, 60), (64, 48)]):
        rgb, gt = _disc_image(h, w)
        cv2.imwrite(str(inputs / "folder" / f"f{index}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        truths[f"f{index}"] = gt
    video = _write_video(inputs / "clip.mp4", 4)

    predictor = Predictor(Oracle(), (64, 64), torch.device("cpu"))
    out = tmp_path / "out"
    result = predict_paths(
        predictor, [inputs / "single.jpg", inputs / "folder", video], out, echo=None
    )
    assert result.out_dir == out and result.images == 3 and result.frames == 4
    mask = _read_mask(out / "single_mask.png")
    assert mask.shape == (70, 90) and _iou(mask, single_gt) > 0.9
    for name, gt in truths.items():
        assert _iou(_read_mask(out / f"{name}_mask.png"), gt) > 0.9
        overlay = cv2.imread(str(out / f"{name}_overlay.png"))
        assert overlay.shape == (*gt.shape, 3)
    for suffix in ("mask", "overlay"):
        capture = cv2.VideoCapture(str(out / f"clip_{suffix}.mp4"))
        frames = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            assert image.shape == (48, 64, 3)
            frames += 1
        capture.release()
        assert frames == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    # a second run into the same folder goes to out-2 and leaves the first results alone
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = predict_paths(predictor, [inputs / "single.jpg"], out, overlay=False, echo=None)
    assert again.out_dir == tmp_path / "out-2"
    assert sorted(p.name for p in again.out_dir.iterdir()) == ["single_mask.png"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        cv2.imwrite(str(tmp_path / folder / "same.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="share the name"):
        collect_inputs([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(DataError, match="does not exist"):
        collect_inputs([tmp_path / "missing.jpg"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="neither an image"):
        collect_inputs([tmp_path / "notes.txt"])


@pytest.mark.slow
def test_predict_cli_and_infer_tool_with_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = save_checkpoint_file(
        tmp_path / "w.pth", build_model("SSFormer", "MiT-B0", num_classes=1)
    )
    rgb, _ = _disc_image(50, 70)
    image = tmp_path / "frame.jpg"
    cv2.imwrite(str(image), rgb)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "pred"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "ssformer", "predict", "--weights", str(weights)),
            *(str(image), "--out", str(out), "--size", "32", "--device", "cpu"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _read_mask(out / "frame_mask.png").shape == (50, 70)
    assert (out / "frame_overlay.png").is_file()
    # the study's tools/infer.py --cfg F: TEST section, output in SAVE_DIR/test_results
    result = subprocess.run(
        [
            *(sys.executable, str(REPO / "tools" / "infer.py"), "--cfg"),
            *(str(REPO / "configs" / "kvasir-seg.yaml"), "--set", "DEVICE=cpu"),
            *(f"SAVE_DIR={tmp_path / 'save'}", f"TEST.MODEL_PATH={weights}"),
            *(f"TEST.FILE={image}", "TEST.IMAGE_SIZE=[32,32]", "TEST.OVERLAY=false"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(p.name for p in (tmp_path / "save" / "test_results").iterdir())
    assert written == ["frame_mask.png"]


def test_video_prints_progress_and_fps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = _write_video(tmp_path / "clip.mp4", 6)
    lines: list[str] = []
    predictor = Predictor(Oracle(), (64, 64), torch.device("cpu"))
    result = predict_paths(predictor, [video], tmp_path / "out", echo=lines.append, progress=True)
    assert result.frames == 6 and result.seconds > 0 and result.per_second > 0
    (line,) = lines
    assert re.search(r"\(6 frames in [0-9.]+ s: [0-9.]+ FPS\)$", line), line
    err = capsys.readouterr().err
    assert "clip.mp4" in err and "/6" in err and "frame/s" in err  # the frame bar


def test_predict_cfg_uses_the_weights_train_cfg_wrote(tmp_path: Path) -> None:
    """The study's kvasir-seg.yaml trains SegFormer, but its TEST section names a PLDSegFormer
    file: ``predict --cfg`` takes the weights ``train --cfg`` of that config wrote."""
    from ssformer.commands.train import config_weights
    from ssformer.config import load_config
    from ssformer.errors import ConfigError

    config = load_config("kvasir-seg", ["DATASET.ROOT=data/x", f"SAVE_DIR={tmp_path}"])
    assert config.model.name == "SegFormer" and "PLDSegFormer" in str(config.test.model_path)
    with pytest.raises(ConfigError, match="train first"):
        config_weights(config)
    trained = config.best_checkpoint_path
    trained.write_bytes(b"")
    assert config_weights(config) == trained
