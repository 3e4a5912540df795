"""Exported CPU inference: ``ssformer export`` (ONNX, OpenVINO fp32/bf16/int8), the sidecar,
parity with torch, ``--runtime`` in predict and val, and the refusals."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_predict import _disc_image, _write_video

from ssformer.cli import main
from ssformer.config import load_config
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.deploy.check import FP32_LIMIT, max_logit_difference, require_fp32_parity
from ssformer.deploy.export import output_path
from ssformer.deploy.runtimes import open_export, resolve_runtime
from ssformer.deploy.sessions import ExportedModel, runtime_label
from ssformer.deploy.sidecar import ExportInfo, read_sidecar, sidecar_path, write_sidecar
from ssformer.engine.evaluate import polyp_probability, run_evaluation
from ssformer.engine.predict import Predictor
from ssformer.errors import ExportError
from ssformer.io.digest import sha256_file
from ssformer.models import build_model, load_model, save_checkpoint_file
from ssformer.registry import IMAGENET_MEAN, IMAGENET_STD

REPO = Path(__file__).resolve().parents[1]
SIZE = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random SSFormer (MiT-B0) checkpoint, its ONNX export (from the checkpoint) and its
    OpenVINO export (converted from the ONNX file), all made by the CLI."""
    folder = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    model = build_model("SSFormer", "MiT-B0", num_classes=1)
    with torch.no_grad():  # logits of a few units, not all near 0: masks with polyp and not
        model.decode_head.linear_pred.weight.mul_(40.0)
    weights = save_checkpoint_file(folder / "w.pth", model)
    size = ["--image-size", str(SIZE), str(SIZE)]
    assert main(["export", "--weights", str(weights), "--format", "onnx", *size]) == 0
    onnx = folder / "w.onnx"
    assert main(["export", "--weights", str(onnx), "--format", "openvino"]) == 0
    return {"weights": weights, "onnx": onnx, "xml": folder / "w.xml", "folder": folder}


@pytest.mark.slow
def test_sidecar_makes_the_file_usable_alone(exported: dict[str, Path]) -> None:
    side = json.loads(sidecar_path(exported["onnx"]).read_text())
    assert side["model"] == {"name": "SSFormer", "backbone": "MiT-B0", "num_classes": 1}
    assert side["file_format"] == "onnx" and side["precision"] == "fp32"
    assert side["input"]["size"] == [SIZE, SIZE] and side["input"]["channels"] == "RGB"
    assert side["input"]["dynamic"] == {"batch": True, "height": True, "width": True}
    assert side["input"]["mean"] == list(IMAGENET_MEAN)
    assert side["input"]["std"] == list(IMAGENET_STD)
    assert side["output"]["kind"] == "logits" and side["output"]["channels"] == 1
    assert side["output"]["size"] == "the input's height and width"
    assert side["source"]["sha256"] == sha256_file(exported["weights"])
    assert side["files"] == {"w.onnx": sha256_file(exported["onnx"])}
    assert side["check"]["max_abs_logit_diff"] <= FP32_LIMIT
    assert side["check"]["inputs"] == [[2, 3, SIZE, SIZE], [1, 3, SIZE + 32, SIZE + 64]]
    assert side["versions"]["ssformer"] and side["versions"]["torch"]
    ov = read_sidecar(exported["xml"])
    assert ov.file_format == "openvino" and set(ov.files) == {"w.xml", "w.bin"}
    assert ov.source["converted_from"]["sha256"] == sha256_file(exported["weights"])
    assert ov.dynamic_size and ov.check["max_abs_logit_diff"] <= FP32_LIMIT


@pytest.mark.slow
@pytest.mark.parametrize(("key", "runtime"), [("onnx", "onnxruntime"), ("xml", "openvino")])
def test_exports_match_torch_at_other_batches_and_sizes(
    exported: dict[str, Path], key: str, runtime: str
) -> None:
    model = load_model(exported["weights"]).eval()
    session = open_export(exported[key], runtime)
    assert runtime_label(session) == f"{runtime} fp32"
    generator = torch.Generator().manual_seed(5)
    inputs = [torch.randn(3, 3, SIZE, SIZE, generator=generator)]
    inputs.append(torch.randn(1, 3, 48, 80, generator=generator))
    inputs.append(inputs[0][:1].contiguous(memory_format=torch.channels_last))
    difference = max_logit_difference(model, session, inputs)
    assert difference <= FP32_LIMIT
    if runtime == "openvino":  # the model's own logits are not flat: the check can fail
        assert max_logit_difference(model, lambda x: session(x) * 1.01, inputs) > FP32_LIMIT


@pytest.mark.slow
def test_bench_times_an_export(
    exported: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "--weights", str(exported["onnx"]), "--size", str(SIZE), "--warmup", "0"]
    assert main([*args, "--repeats", "1", "--runtime", "openvino", "onnxruntime"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    rows = [row for row in rows if row and row[0] == "inference"]
    assert [(row[2], row[-1]) for row in rows] == [("fp32", "openvino"), ("fp32", "onnxruntime")]
    assert all(float(row[5]) > 0 for row in rows)
    assert main([*args, "--runtime", "torch"]) == 2  # an export is not a checkpoint


def _frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.mark.slow
def test_predict_with_openvino_gives_torchs_masks(
    exported: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    images = {}
    for name, (h, w) in {"a": (40, 60), "b": (70, 50)}.items():
        images[name], _ = _disc_image(h, w)
        cv2.imwrite(str(inputs / f"{name}.png"), cv2.cvtColor(images[name], cv2.COLOR_RGB2BGR))
    video = _write_video(tmp_path / "clip.mp4", 3)
    outs = {}
    for runtime, weights in (("openvino", exported["xml"]), ("torch", exported["weights"])):
        outs[runtime] = tmp_path / f"out-{runtime}"
        args = ["predict", "--weights", str(weights), str(inputs), str(video)]
        assert main([*args, "--out", str(outs[runtime]), "--size", str(SIZE)]) == 0
    printed = capsys.readouterr().out
    assert "openvino fp32, input 64x64" in printed and "FPS)" in printed
    assert "end to end, on cpu, openvino fp32)" in printed
    frames = [cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in _frames(video)]
    torch_model, ov_model = (
        load_model(exported["weights"]),
        open_export(exported["xml"], "openvino"),
    )
    masks = {}
    for runtime, model in (("torch", torch_model), ("openvino", ov_model)):
        predictor = Predictor(model, (SIZE, SIZE), torch.device("cpu"))
        masks[runtime] = [predictor.mask(rgb) for rgb in [*images.values(), *frames]]
    reference = Predictor(torch_model, (SIZE, SIZE), torch.device("cpu"))
    edge = [
        np.abs(reference.probability(rgb) - 0.5) < 2.5e-5 for rgb in [*images.values(), *frames]
    ]
    assert any(m.any() for m in masks["torch"]) and not all(m.all() for m in masks["torch"])
    for ov, ref, near in zip(masks["openvino"], masks["torch"], edge, strict=True):
        # masks differ only where the probability is within 1e-4 / 4 of 0.5 (|logit| < 1e-4)
        assert not (ov != ref)[~near].any()
    for index, name in enumerate(images):  # the files written are those masks
        for runtime in ("openvino", "torch"):
            written = cv2.imread(str(outs[runtime] / f"{name}_mask.png"), cv2.IMREAD_GRAYSCALE)
            assert np.array_equal(written > 127, masks[runtime][index])
    ov_frames = _frames(outs["openvino"] / "clip_mask.mp4")
    assert len(ov_frames) == len(frames) == 3
    if all(np.array_equal(a, b) for a, b in zip(masks["openvino"], masks["torch"], strict=True)):
        for ov, ref in zip(ov_frames, _frames(outs["torch"] / "clip_mask.mp4"), strict=True):
            assert np.array_equal(ov, ref)  # same masks, same encoder: same frames


@pytest.mark.slow
def test_val_with_onnxruntime_scores_as_torch(exported: dict[str, Path], tmp_path: Path) -> None:
    data = generate_synthetic_dataset(tmp_path / "data", n=3, size=56, seed=1, size_jitter=0.3)
    overrides = ["DEVICE=cpu", f"SAVE_DIR={tmp_path / 'save'}", f"DATASET.ROOT={data}"]
    overrides += ["EVAL.IMAGE_SIZE=[64,64]", "TRAIN.BATCH_SIZE=2"]
    config = load_config(REPO / "configs" / "kvasir-seg.yaml", overrides)
    assert config.eval.recipe == "study"  # aspect kept: batches of several sizes
    metrics = ["Dice@0.5", "mDice", "mIoU_2cls"]
    lines: list[str] = []
    ours = run_evaluation(config, weights=exported["onnx"], metrics=metrics, echo=lines.append)
    ref = run_evaluation(config, weights=exported["weights"], metrics=metrics, echo=lines.append)
    for key in metrics:
        assert ours["test"].metrics[key] == pytest.approx(ref["test"].metrics[key], abs=1e-4)
    assert any("w.onnx, onnxruntime fp32\n" in line for line in lines)
    written = tmp_path / "save" / "eval" / "w_onnxruntime_test_subset.json"
    report = json.loads(written.read_text())
    assert (report["runtime"], report["precision"]) == ("onnxruntime", "fp32")
    torch_report = json.loads((tmp_path / "save" / "eval" / "w_test_subset.json").read_text())
    assert (torch_report["runtime"], torch_report["precision"]) == ("torch", "fp32")


@pytest.mark.slow
def test_int8_and_bf16_state_their_precision_and_difference(
    exported: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    calibration = exported["folder"] / "calibration"
    generate_synthetic_dataset(calibration, n=6, size=SIZE, seed=2)
    args = ["export", "--weights", str(exported["onnx"]), "--format", "openvino"]
    assert main([*args, "--precision", "int8", "--calibration", str(calibration)]) == 0
    assert main([*args, "--precision", "bf16"]) == 0
    printed = capsys.readouterr().out
    int8 = read_sidecar(exported["folder"] / "w-int8.xml")
    assert int8.precision == "int8" and not int8.dynamic_size  # NNCF fixes the token count
    assert int8.calibration["images"] == 6 and 0 <= int8.calibration["mask_dice_vs_fp32"] <= 1
    assert int8.check["limit"] is None and int8.check["max_abs_logit_diff"] > 0
    assert "mask Dice vs fp32" in printed and "precision int8" in printed
    session = open_export(exported["folder"] / "w-int8.xml", "openvino")
    x = torch.randn(2, 3, SIZE, SIZE)
    assert polyp_probability(session(x)).shape == (2, SIZE, SIZE)
    assert session.precision == "int8 (other ops fp32)"
    with pytest.raises(ExportError, match="static size"):
        session(torch.randn(1, 3, SIZE, SIZE + 32))
    bf16 = read_sidecar(exported["folder"] / "w-bf16.xml")
    assert bf16.precision == "bf16" and bf16.check["computed_in"] in ("bf16", "fp32")
    assert "INFERENCE_PRECISION_HINT=bf16" in printed


# ----------------------------------------------------------------- refusals (no export needed)


def _fake_export(folder: Path, name: str = "m.onnx", *, static: bool = False) -> Path:
    """A file that is not a model, with a sidecar that describes it (checksums right)."""
    path = folder / name
    path.write_bytes(b"<html>quota exceeded</html>")
    info = ExportInfo(
        file_format="onnx",
        precision="fp32",
        model="SSFormer",
        backbone="MiT-B0",
        num_classes=1,
        image_size=(SIZE, SIZE),
        dynamic={"batch": True, "height": not static, "width": not static},
    )
    write_sidecar(path, info)
    return path


def test_a_file_without_sidecar_or_changed_since_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fake_export(tmp_path)
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ExportError, match="ONNX Runtime cannot load"):
        open_export(path, "onnxruntime")
    path.write_bytes(b"changed")
    with pytest.raises(ExportError, match="SHA-256 differs"):
        read_sidecar(path)
    sidecar_path(path).unlink()
    assert main(["predict", "--weights", str(path), str(image), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert f"{path} has no sidecar" in error and "Traceback" not in error
    with pytest.raises(ExportError, match="not an exported model"):
        read_sidecar(tmp_path / "x.png")


def test_exports_never_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "best.pth"
    weights.write_bytes(b"never read: the output is refused first")
    taken = tmp_path / "mine.onnx"
    taken.write_bytes(b"a user's file")
    args = ["export", "--weights", str(weights), "--format", "onnx", "--out", str(taken)]
    assert main(args) == 2
    assert f"{taken} already exists" in capsys.readouterr().err
    assert taken.read_bytes() == b"a user's file"
    (tmp_path / "best.onnx").write_bytes(b"an earlier export")
    lines: list[str] = []
    assert output_path(weights, "onnx", "fp32", None, lines.append) == tmp_path / "best-2.onnx"
    assert lines == [f"{tmp_path / 'best.onnx'} exists; writing {tmp_path / 'best-2.onnx'} instead"]
    assert output_path(weights, "openvino", "int8", None) == tmp_path / "best-int8.xml"


def test_requests_that_cannot_work_are_refused(tmp_path: Path) -> None:
    assert main(["export", "--weights", "w.pth", "--format", "onnx", "--precision", "int8"]) == 2
    with pytest.raises(ExportError, match="the torch runtime runs checkpoints"):
        resolve_runtime("m.onnx", "torch")
    with pytest.raises(ExportError, match="ONNX Runtime cannot run"):
        resolve_runtime("m.xml", "onnxruntime")
    assert resolve_runtime("m.xml", None) == "openvino"
    assert resolve_runtime("m.onnx", "openvino") == "openvino"
    with pytest.raises(ExportError, match="above the fp32 limit"):
        require_fp32_parity(2e-4, "an export")
    with pytest.raises(ExportError, match="above the fp32 limit"):
        require_fp32_parity(float("nan"), "an export")
    static = ExportedModel(_fake_export(tmp_path, static=True), read_sidecar(tmp_path / "m.onnx"))
    with pytest.raises(ExportError, match="exported for 64x64 inputs only"):
        static(torch.zeros(1, 3, 64, 96))


def test_a_missing_optional_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    path = _fake_export(tmp_path)
    with pytest.raises(ExportError, match=r"pip install 'ssformer\[deploy\]'"):
        open_export(path, "openvino")


def test_exported_files_travel_with_their_sidecar(tmp_path: Path) -> None:
    path = _fake_export(tmp_path)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for part in (path, sidecar_path(path)):
        shutil.copy(part, moved / part.name)
    assert read_sidecar(moved / "m.onnx").image_size == (SIZE, SIZE)
