"""Evaluation: original-resolution scoring, 1- and 2-class models, MSF, ``ssformer val``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from ssformer.config import MSFConfig, load_config
from ssformer.data.datasets import PolypDataset
from ssformer.engine.evaluate import evaluate, predict_probability, run_evaluation
from ssformer.metrics import SegmentationEvaluator, resize_probability
from ssformer.models import build_model, load_model, save_checkpoint_file
from ssformer.models.layouts import export_state_dict

REPO = Path(__file__).resolve().parents[1]
KVASIR_CFG = REPO / "configs" / "kvasir-seg.yaml"


def write_disc_pairs(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    """White discs on a dark background at varied, non-square original sizes (PNG masks)."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir(parents=True)
    for index, (h, w) in enumerate(sizes):
        mask = np.zeros((h, w), np.uint8)
        centre = (int(rng.integers(w // 3, 2 * w // 3)), int(rng.integers(h // 3, 2 * h // 3)))
        cv2.circle(mask, centre, int(min(h, w) * rng.uniform(0.15, 0.3)), 255, -1)
        image = np.full((h, w, 3), 30, np.uint8)
        image[mask > 0] = 230
        cv2.imwrite(str(folder / "images" / f"disc{index}.png"), image)
        cv2.imwrite(str(folder / "masks" / f"disc{index}.png"), mask)
    return folder


class Oracle(nn.Module):
    """Bright pixels are polyp: logits from the normalised image, 1 or 2 channels."""

    def __init__(self, num_classes: int = 1, invert: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.sign = -1.0 if invert else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logit = self.sign * 8.0 * x.mean(dim=1, keepdim=True)
        return logit if self.num_classes == 1 else torch.cat([-logit, logit], dim=1)


@pytest.fixture(scope="module")
def discs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("discs")
    sizes = [(48, 64), (70, 50), (64, 64), (33, 90)]
    for split in ("train", "val", "test"):
        write_disc_pairs(base / "split" / split, sizes)
    return base / "split"


@pytest.mark.parametrize("num_classes", [1, 2])
def test_oracle_scores_perfectly_at_original_size(discs: Path, num_classes: int) -> None:
    dataset = PolypDataset(discs / "test", 32, cache=False)
    output = evaluate(Oracle(num_classes), dataset, torch.device("cpu"), metrics=None)
    assert output.num_images == 4
    assert output.metrics["Dice@0.5"] > 0.95
    assert output.metrics["mDice"] > 0.9
    assert output.metrics["mIoU_2cls"] > 95.0
    assert [row["name"] for row in output.per_image] == dataset.names
    inverted = evaluate(Oracle(num_classes, invert=True), dataset, torch.device("cpu"))
    assert inverted.metrics["Dice@0.5"] < 0.05


def test_msf_and_flip_keep_the_oracle_right(discs: Path) -> None:
    dataset = PolypDataset(discs / "test", 64, cache=False)
    msf = MSFConfig(enable=True, flip=True, scales=(0.5, 1.0, 1.5))
    output = evaluate(Oracle(1), dataset, torch.device("cpu"), msf=msf)
    assert output.metrics["Dice@0.5"] > 0.9
    images = torch.stack([dataset[i]["image"] for i in range(2)])
    prob = predict_probability(Oracle(2), images, msf=msf)
    assert prob.shape == (2, 64, 64) and float(prob.min()) >= 0 and float(prob.max()) <= 1


@pytest.mark.parametrize(("batch_size", "workers"), [(1, 0), (3, 2)])
def test_evaluate_equals_a_hand_written_loop(discs: Path, batch_size: int, workers: int) -> None:
    torch.manual_seed(0)
    model = build_model("SSFormer", "MiT-B0", num_classes=1).eval()
    dataset = PolypDataset(discs / "test", 32, cache=False)
    output = evaluate(
        model, dataset, torch.device("cpu"), metrics=None, batch_size=batch_size, workers=workers
    )
    assert [row["name"] for row in output.per_image] == dataset.names
    reference = SegmentationEvaluator()
    with torch.no_grad():
        for index in range(len(dataset)):
            item = dataset[index]
            prob = torch.sigmoid(model(item["image"][None]))[0, 0]
            reference.update_pooled(prob > 0.5, item["mask"][0] > 0.5)
            gt = dataset.original_mask(index)
            reference.update(resize_probability(prob, gt.shape).clamp(0, 1), gt)
    expected = reference.compute()
    assert output.metrics.keys() == expected.keys()
    # A batched forward rounds differently (~1e-7 in a probability), which can move a pixel
    # across one of the 256 thresholds of the threshold-averaged metrics: about 1e-6 there.
    tolerance = 1e-9 if batch_size == 1 else 1e-5
    for key, value in expected.items():
        assert output.metrics[key] == pytest.approx(value, rel=1e-6, abs=tolerance), key


def test_run_evaluation_loads_official_layout_like_ours(discs: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_model("SSFormer", "MiT-B0", num_classes=1)
    ours = save_checkpoint_file(tmp_path / "ours.pth", model)
    official = tmp_path / "official.pth"
    torch.save(export_state_dict(model, "official"), official)
    overrides = [
        "DEVICE=cpu",
        f"SAVE_DIR={tmp_path / 'out'}",
        f"DATASET.ROOT={discs}",
        "MODEL.NAME=SSFormer",
        "MODEL.BACKBONE=MiT-B0",
        "MODEL.PRETRAINED=null",
        "LOSS.NAME=DiceBCE",
        "MODEL.NUM_CLASSES=1",
        "EVAL.IMAGE_SIZE=[32,32]",
    ]
    config = load_config(KVASIR_CFG, overrides)
    lines: list[str] = []
    a = run_evaluation(config, weights=ours, echo=lines.append)["test"]
    b = run_evaluation(config, weights=official, echo=lines.append)["test"]
    assert a.metrics == b.metrics
    written = sorted((tmp_path / "out" / "eval").glob("*.json"))
    assert [p.name for p in written] == ["official_test.json", "ours_test.json"]
    report = json.loads(written[1].read_text())
    assert report["split"] == "test" and report["dataset"] == "Kvasir"
    assert "PraNet toolbox" in report["conventions"]["mDice"]
    assert any("PraNet toolbox" in line for line in lines)  # the table names conventions
    with pytest.raises(Exception, match="does not exist"):
        load_model(tmp_path / "missing.pth", config)


@pytest.mark.slow
def test_val_cli_pranet_protocol_scores_every_test_set(tmp_path: Path) -> None:
    root = tmp_path / "PraNet"
    write_disc_pairs(root / "TrainDataset", [(40, 40)] * 4)
    for name in ("Kvasir", "CVC-300"):
        write_disc_pairs(root / "TestDataset" / name, [(50, 60), (60, 50)])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("# a run folder\n")
    torch.manual_seed(2)
    save_checkpoint_file(run / "best.pth", build_model("SegFormer", "MiT-B0", num_classes=2))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        str(REPO / "tools" / "val.py"),
        "--cfg",
        str(KVASIR_CFG),
        "--weights",
        str(run / "best.pth"),
        "--set",
        "DEVICE=cpu",
        f"DATASET.ROOT={root}",
        "DATASET.PROTOCOL=pranet",
        "EVAL.IMAGE_SIZE=[32,32]",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("Kvasir", "CVC-300"):
        report = json.loads((run / f"eval_test_{name}.json").read_text())
        assert report["dataset"] == name and report["num_images"] == 2
        assert set(report["metrics"]) >= {"mDice", "Dice@0.5", "mIoU_2cls", "S_alpha"}
    assert (
        "Kvasir test (2 images, recipe study at 32x32)" in result.stdout
        and "CVC-300 test" in result.stdout
    )


def test_per_image_rows_hold_each_images_values(discs: Path) -> None:
    torch.manual_seed(0)
    model = build_model("SSFormer", "MiT-B0", num_classes=1).eval()
    dataset = PolypDataset(discs / "test", 32, cache=False)
    output = evaluate(model, dataset, torch.device("cpu"), metrics=None)
    averaged = ("mDice", "mIoU", "MAE", "official_dice", "official_iou", "Dice@0.5", "IoU@0.5")
    for key in averaged:
        rows = [row[key] for row in output.per_image]
        assert len(rows) == len(dataset)
        assert sum(rows) / len(rows) == pytest.approx(output.metrics[key], rel=1e-9), key
    # Asked for one metric: the table holds it alone, the rows still carry Dice@0.5 / IoU@0.5.
    only = evaluate(model, dataset, torch.device("cpu"), metrics=("mDice",))
    assert set(only.metrics) == {"mDice"}
    assert {"name", "mDice", "Dice@0.5", "IoU@0.5"} <= set(only.per_image[0])
    assert only.metrics["mDice"] == pytest.approx(output.metrics["mDice"], rel=1e-9)
