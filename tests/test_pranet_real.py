"""The PraNet protocol end to end on real frames: the PraNet benchmark layout is built at test
time from the real Kvasir-SEG and CVC-ClinicDB frames with PraNet's id lists
(``TrainDataset/{image,mask}`` as PNG, ``TestDataset/{Kvasir,CVC-ClinicDB}/{images,masks}``),
then ``train``, ``val`` on every test set present (the three absent ones are named) and
``report`` with predictions. Skipped, saying why, without ``SSFORMER_REAL_DATA``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from realdata import real_data_root

from ssformer.cli import main
from ssformer.data.decode import decode_image, decode_mask_grey

TRAIN_PER_SET = 5
TEST_PER_SET = 3
SIZE = 64
PRESENT = ("Kvasir", "CVC-ClinicDB")
ABSENT = ("CVC-ColonDB", "ETIS-LaribPolypDB", "CVC-300")


def _ids(root: Path, name: str) -> list[str]:
    path = root / "splits" / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: PraNet's id lists live in the real data's splits/")
    return path.read_text(encoding="utf-8").split()


def _copy_as_png(source: Path, stem: str, images: Path, masks: Path) -> None:
    """One real pair written as PraNet's PNGs: RGB image, grey mask (as the decoding rule
    reads it; Kvasir-SEG's RGB JPEG masks become grey)."""
    (image_path,) = (source / "images").glob(f"{stem}.*")
    (mask_path,) = (source / "masks").glob(f"{stem}.*")
    Image.fromarray(decode_image(image_path)).save(images / f"{stem}.png")
    Image.fromarray(decode_mask_grey(mask_path)).save(masks / f"{stem}.png")


def build_pranet_layout(target: Path) -> Path:
    """A PraNet benchmark folder made of real frames: a few TrainDataset pairs of each set and
    TestDataset/Kvasir and TestDataset/CVC-ClinicDB (the other three sets absent)."""
    root = real_data_root()
    sets = {"Kvasir": ("Kvasir-SEG", "kvasir"), "CVC-ClinicDB": ("CVC-ClinicDB", "cvc_clinicdb")}
    train_images, train_masks = target / "TrainDataset" / "image", target / "TrainDataset" / "mask"
    train_images.mkdir(parents=True)
    train_masks.mkdir(parents=True)
    for test_name, (folder, key) in sets.items():
        train_ids = _ids(root, f"pranet_{key}_train_ids.txt")
        test_ids = _ids(root, f"pranet_{key}_test_ids.txt")
        assert not set(train_ids) & set(test_ids)  # PraNet's test frames are never trained on
        for stem in train_ids[:TRAIN_PER_SET]:
            _copy_as_png(root / folder, stem, train_images, train_masks)
        images = target / "TestDataset" / test_name / "images"
        masks = target / "TestDataset" / test_name / "masks"
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for stem in test_ids[:TEST_PER_SET]:
            _copy_as_png(root / folder, stem, images, masks)
    return target


def test_pranet_id_lists_are_the_test_sets_and_their_complements() -> None:
    root = real_data_root()
    for folder, key, total, test in (
        ("Kvasir-SEG", "kvasir", 1000, 100),
        ("CVC-ClinicDB", "cvc_clinicdb", 612, 62),
    ):
        train_ids = _ids(root, f"pranet_{key}_train_ids.txt")
        test_ids = _ids(root, f"pranet_{key}_test_ids.txt")
        stems = {p.stem for p in (root / folder / "images").iterdir()}
        assert len(test_ids) == test and len(train_ids) == total - test
        assert set(train_ids) | set(test_ids) == stems and not set(train_ids) & set(test_ids)


def test_the_pranet_protocol_end_to_end_on_real_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = build_pranet_layout(tmp_path / "PraNet")
    sets = [
        "DEVICE=cpu",
        f"SAVE_DIR={tmp_path / 'runs'}",
        f"DATASET.ROOT={data}",
        "MODEL.NAME=SSFormer",
        "MODEL.BACKBONE=MiT-B0",
        "MODEL.PRETRAINED=null",
        f"TRAIN.IMAGE_SIZE=[{SIZE},{SIZE}]",
        f"EVAL.IMAGE_SIZE=[{SIZE},{SIZE}]",
        "TRAIN.EPOCHS=1",
        "TRAIN.BATCH_SIZE=4",
        "TRAIN.AMP=false",
        "TRAIN.WORKERS=0",
    ]
    assert main(["train", "--cfg", "ssformer-s-pranet", "--set", *sets]) == 0
    trained = capsys.readouterr().out
    assert f"{2 * TRAIN_PER_SET - 1} training images" in trained  # 10 less the held-out one
    assert "missing from TestDataset/ (not scored): " + ", ".join(ABSENT) in trained
    (run,) = (tmp_path / "runs" / "SSFormer_MiT-B0_PraNet").iterdir()

    out = tmp_path / "val"
    args = ["val", "--cfg", str(run / "config.yaml"), "--weights", str(run / "best.pth")]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert ", ".join(ABSENT) in printed and "scoring Kvasir, CVC-ClinicDB" in printed
    for name in PRESENT:
        result = json.loads((out / f"eval_test_{name}.json").read_text(encoding="utf-8"))
        assert result["recipe"] == "pranet-toolbox" and result["num_images"] == TEST_PER_SET
        assert result["dataset"] == name
        assert 0.0 <= result["metrics"]["mDice"] <= 1.0
        assert np.isfinite(result["metrics"]["official_dice"])
    assert not [p for p in out.iterdir() if any(a in p.name for a in ABSENT)]

    report = tmp_path / "report"
    assert main(["report", str(run), "--out", str(report), "--skip-model-sizes"]) == 0
    text = (report / "results.md").read_text(encoding="utf-8")
    assert "No predictions grid" not in text
    (grid,) = report.glob("predictions-*.png")
    assert grid.stat().st_size > 0
    with (report / "results.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["test_set"] for row in rows} == set(PRESENT)
    assert all(row["published"] == "" for row in rows)  # a few frames: not the benchmark
