"""Real Kvasir-SEG and CVC-ClinicDB frames through every command: the decoding rules,
``check-data``, ``split`` (and the identity it records), a training step for each head, training,
``val`` under every ``EVAL.RECIPE``, ``predict`` on images, a folder and a video made from real
frames, ``export`` and the exported model's ``predict``, and ``report`` with predictions.

The frames come from ``SSFORMER_REAL_DATA`` (see ``tests/realdata.py``: skipped, saying why,
without it); a subset of 12 pairs of each set is copied into a temporary folder. Everything runs
on MiT-B0 at 64 px for one epoch so that the module takes well under a minute on two cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from realdata import CVC_STEMS, KVASIR_STEMS, real_subset

from ssformer.cli import main
from ssformer.data.datasets import PolypDataset, find_pairs
from ssformer.data.decode import decode_image, decode_mask, read_image_size, read_mask_grey
from ssformer.data.transforms import build_train_transform
from ssformer.losses import build_loss
from ssformer.models import build_model
from ssformer.registry import EVAL_RECIPES

SIZE = 64
TINY = [
    "DEVICE=cpu",
    f"TRAIN.IMAGE_SIZE=[{SIZE},{SIZE}]",
    f"EVAL.IMAGE_SIZE=[{SIZE},{SIZE}]",
    "TRAIN.EPOCHS=1",
    "TRAIN.BATCH_SIZE=4",
    "TRAIN.AMP=false",
    "TRAIN.WORKERS=0",
    "MODEL.PRETRAINED=null",
    "MODEL.BACKBONE=MiT-B0",
]


@pytest.fixture(scope="module")
def subsets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """12 real Kvasir-SEG pairs (JPEG, several sizes) and 12 CVC-ClinicDB pairs (PNG)."""
    base = tmp_path_factory.mktemp("real")
    return {
        "Kvasir-SEG": real_subset("Kvasir-SEG", KVASIR_STEMS, base / "Kvasir-SEG"),
        "CVC-ClinicDB": real_subset("CVC-ClinicDB", CVC_STEMS, base / "CVC-ClinicDB"),
    }


@pytest.fixture(scope="module")
def kvasir_split(subsets: dict[str, Path]) -> Path:
    out = subsets["Kvasir-SEG"].parent / "Kvasir-SEG-split"
    assert main(["split", str(subsets["Kvasir-SEG"]), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def trained(kvasir_split: Path) -> dict[str, Path]:
    """PLDSegFormer (the study's PLD variant, 2 classes) trained for one epoch on the split."""
    save_dir = kvasir_split.parent / "runs"
    sets = [
        *TINY,
        f"SAVE_DIR={save_dir}",
        f"DATASET.ROOT={kvasir_split}",
        "MODEL.NAME=PLDSegFormer",
    ]
    assert main(["train", "--cfg", "kvasir-seg", "--set", *sets]) == 0
    (run,) = (save_dir / "PLDSegFormer_MiT-B0_Kvasir").iterdir()
    return {"run": run, "weights": run / "best.pth", "split": kvasir_split}


def test_decode_rules_on_real_frames(subsets: dict[str, Path]) -> None:
    sizes = set()
    for image_path, mask_path in find_pairs(subsets["Kvasir-SEG"]):
        with Image.open(image_path) as img:
            width, height = img.size
        image = decode_image(image_path)
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert read_image_size(image_path) == (height, width)
        grey, rule = read_mask_grey(mask_path)
        assert rule == "grey-rgb"  # Kvasir-SEG ships its masks as RGB JPEGs
        assert grey.shape == (height, width)
        noisy = (grey > 0) & (grey < 255)
        assert noisy.any()  # JPEG compression noise: neither 0 nor 255
        assert decode_mask(mask_path).any()
        drafted = decode_image(image_path, (SIZE, SIZE))  # reduced-size JPEG decode
        assert SIZE <= drafted.shape[0] <= height and SIZE <= drafted.shape[1] <= width
        sizes.add((height, width))
    assert len(sizes) >= 4  # frames of several sizes
    for image_path, mask_path in find_pairs(subsets["CVC-ClinicDB"]):
        assert decode_image(image_path).shape == (288, 384, 3)
        grey, rule = read_mask_grey(mask_path)
        assert rule == "grey" and grey.shape == (288, 384)
        assert decode_mask(mask_path).any()


def test_check_data_passes_the_real_frames(
    subsets: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in subsets.values():
        assert main(["check-data", str(folder)]) == 0
        out = capsys.readouterr().out
        assert "12 readable pairs, 0 error(s)" in out, out


def test_split_equals_split_folders_and_records_the_identity(
    subsets: dict[str, Path], kvasir_split: Path, tmp_path: Path
) -> None:
    splitfolders = pytest.importorskip("splitfolders")
    cvc_split = tmp_path / "cvc-split"
    assert main(["split", str(subsets["CVC-ClinicDB"]), "--out", str(cvc_split)]) == 0
    for source, ours in (
        (subsets["Kvasir-SEG"], kvasir_split),
        (subsets["CVC-ClinicDB"], cvc_split),
    ):
        reference = tmp_path / f"sf-{source.name}"
        splitfolders.ratio(str(source), output=str(reference), seed=1337, ratio=(0.8, 0.1, 0.1))
        for part in ("train", "val", "test"):
            for folder in ("images", "masks"):
                expected = sorted(p.name for p in (reference / part / folder).iterdir())
                assert sorted(p.name for p in (ours / part / folder).iterdir()) == expected
        record = json.loads((ours / "split.json").read_text(encoding="utf-8"))
        assert record["counts"] == {"train": 9, "val": 1, "test": 2}
        identity = record["identity"]
        assert identity["count"] == 12 and identity["verified_as"] is None  # a subset
    kvasir = json.loads((kvasir_split / "split.json").read_text(encoding="utf-8"))
    assert "Kvasir-SEG ids but 12 frames" in kvasir["identity"]["reason"]


@pytest.mark.parametrize(
    ("model_name", "classes", "loss_name"),
    [("SSFormer", 1, "DiceBCE"), ("PLDSegFormer", 2, "DiceLoss"), ("SegFormer", 2, "DiceLoss")],
)
def test_a_training_step_for_each_head_on_real_frames(
    kvasir_split: Path, model_name: str, classes: int, loss_name: str
) -> None:
    dataset = PolypDataset(
        kvasir_split / "train", SIZE, transform=build_train_transform(SIZE), resize="square"
    )
    items = [dataset[i] for i in range(2)]
    images = torch.stack([item["image"] for item in items])
    masks = torch.stack([item["mask"] for item in items])
    assert masks.any() and not masks.all()
    torch.manual_seed(0)
    model = build_model(model_name, "MiT-B0", num_classes=classes)
    loss_fn = build_loss(loss_name, classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.decode_head.state_dict()
    before = {k: v.clone() for k, v in before.items()}
    model.train()
    logits = model(images)
    assert logits.shape == (2, classes, SIZE, SIZE)
    loss = loss_fn(logits, masks)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    optimizer.step()
    after = model.decode_head.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if after[k].is_floating_point())


def test_training_on_real_frames_writes_a_run(trained: dict[str, Path]) -> None:
    run = trained["run"]
    assert trained["weights"].is_file() and (run / "config.yaml").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(np.isfinite(row["train_loss"]) for row in rows if "train_loss" in row)
    evaluation = json.loads((run / "eval_test.json").read_text(encoding="utf-8"))
    assert evaluation["num_images"] == 2


def _val(trained: dict[str, Path], recipe: str, out: Path) -> dict[str, Any]:
    args = ["val", "--cfg", str(trained["run"] / "config.yaml"), "--weights"]
    args += [str(trained["weights"]), "--out", str(out), "--set", f"EVAL.RECIPE={recipe}"]
    assert main(args) == 0
    return json.loads((out / "eval_test.json").read_text(encoding="utf-8"))


def test_every_eval_recipe_scores_the_real_test_frames(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    results = {recipe: _val(trained, recipe, tmp_path / recipe) for recipe in EVAL_RECIPES}
    names = sorted(p.stem for p in (trained["split"] / "test" / "images").iterdir())
    for recipe, result in results.items():
        assert result["recipe"] == recipe and result["num_images"] == 2
        assert sorted(row["name"] for row in result["per_image"]) == names
        for key in ("mDice", "mIoU", "Dice@0.5", "official_dice", "mIoU_2cls", "S_alpha", "MAE"):
            assert 0.0 <= result["metrics"][key] <= (100.0 if key.endswith("_2cls") else 1.0)
    # official and pranet-toolbox feed the model the same input (the official test.py's)
    official, toolbox = results["official"]["metrics"], results["pranet-toolbox"]["metrics"]
    assert official["official_dice"] == pytest.approx(toolbox["official_dice"], abs=1e-6)


def _write_video(path: Path, frames: list[Path], size: tuple[int, int]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, size)
    for frame in frames:
        writer.write(cv2.resize(cv2.imread(str(frame)), size, interpolation=cv2.INTER_AREA))
    writer.release()
    return path


def _frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_predict_images_a_folder_and_a_video_of_real_frames(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    test_images = sorted((trained["split"] / "test" / "images").iterdir())
    folder = trained["split"] / "val" / "images"
    video = _write_video(tmp_path / "clip.mp4", [*test_images, *test_images], (96, 80))
    out = tmp_path / "pred"
    args = ["predict", "--weights", str(trained["weights"]), str(test_images[0])]
    assert main([*args, str(folder), str(video), "--out", str(out), "--size", str(SIZE)]) == 0
    for image in [test_images[0], *folder.iterdir()]:
        mask = np.asarray(Image.open(out / f"{image.stem}_mask.png"))
        assert mask.shape == read_image_size(image)  # at the real frame's own size
        assert set(np.unique(mask)) <= {0, 255}
        assert (out / f"{image.stem}_overlay.png").is_file()
    assert _frame_count(out / "clip_mask.mp4") == 4
    assert _frame_count(out / "clip_overlay.mp4") == 4


@pytest.mark.slow
def test_export_and_the_exported_model_predict_as_torch(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    onnx = tmp_path / "model.onnx"
    args = ["export", "--weights", str(trained["weights"]), "--format", "onnx"]
    assert main([*args, "--image-size", str(SIZE), str(SIZE), "--out", str(onnx)]) == 0
    images = sorted((trained["split"] / "test" / "images").iterdir())
    masks = {}
    for label, weights in (("torch", trained["weights"]), ("onnx", onnx)):
        out = tmp_path / label
        cmd = ["predict", "--weights", str(weights), *map(str, images), "--out", str(out)]
        assert main([*cmd, "--size", str(SIZE), "--no-overlay"]) == 0
        masks[label] = [np.asarray(Image.open(out / f"{p.stem}_mask.png")) for p in images]
    for ours, exported in zip(masks["torch"], masks["onnx"], strict=True):
        assert ours.shape == exported.shape
        assert np.mean(ours == exported) > 0.999  # fp32 export: only threshold ties may differ


def test_report_with_predictions_of_real_frames(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", str(trained["run"]), "--out", str(out), "--skip-model-sizes"]) == 0
    grids = list(out.glob("predictions-*.png"))
    assert len(grids) == 1
    with Image.open(grids[0]) as grid:
        assert grid.width > 200 and grid.height > 200
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "No predictions grid" not in text
    rows = list(csv_rows(out / "results.csv"))
    assert rows and all(row["published"] == "" for row in rows)  # a 12-frame subset: unverified
    assert all("unverified" in row["train_data"] for row in rows)


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
