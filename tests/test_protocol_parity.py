"""End-to-end parity of ``ssformer val`` with ports of the original evaluation pipelines.

Each port below is written from the public code of its original (cited per function), line for
line where it matters: data reading, resize, label rule, forward, post-processing, metric. They
run on the same weights and the same Kvasir-like images as ``ssformer val``: non-square frames at
the real datasets' sizes (530x622 and 1072x1350 as Kvasir-SEG, 288x384 as CVC-ClinicDB), JPEG
masks with soft edges (so that many edge pixels are neither 0 nor 255) and PNG masks.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ssformer.config import Config, load_config
from ssformer.data.study_resize import study_eval_size
from ssformer.engine.evaluate import run_evaluation
from ssformer.models import build_model, save_checkpoint_file

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
# (height, width, mask format): Kvasir-SEG frames with JPEG masks, CVC-ClinicDB with PNG masks
FRAMES = [(530, 622, "jpg"), (1072, 1350, "jpg"), (530, 622, "jpg"), (288, 384, "png")]


def _frame(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB frame with one bright blob, and its soft-edged grey mask."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    radius = rng.uniform(0.15, 0.3) * min(height, width)
    inside = ((yy - cy) ** 2 + ((xx - cx) * 1.2) ** 2) < radius**2
    mask = cv2.GaussianBlur(inside.astype(np.float32) * 255, (0, 0), 2.0)
    image = np.stack([90 + 60 * np.sin(xx / 17), 60 + 40 * np.cos(yy / 23), 50 + 0 * xx], -1)
    image = image + inside[..., None] * np.array([120, 90, 60]) + rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), np.clip(np.round(mask), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def kvasir_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parity") / "split"
    rng = np.random.default_rng(11)
    for split in ("train", "val", "test"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
    for index, (height, width, mask_format) in enumerate(FRAMES):
        image, mask = _frame(rng, height, width)
        name = f"cju{index:04d}frame"
        Image.fromarray(image).save(root / "val" / "images" / f"{name}.jpg", quality=90)
        if mask_format == "jpg":  # Kvasir: RGB JPEG masks, edges blurred by the compression
            rgb = Image.fromarray(mask).convert("RGB")
            rgb.save(root / "val" / "masks" / f"{name}.jpg", quality=75)
        else:
            Image.fromarray(mask).save(root / "val" / "masks" / f"{name}.png")
    return root


def _weights(tmp: Path, name: str, num_classes: int, root: Path) -> Path:
    """A seeded model whose logits straddle 0 on these frames (both classes predicted)."""
    torch.manual_seed(5)
    model = build_model(name, "MiT-B0", num_classes=num_classes).eval()
    image = np.asarray(Image.open(next((root / "val" / "images").iterdir())).resize((352, 352)))
    x = torch.from_numpy(((image / 255.0 - MEAN) / STD).astype(np.float32)).permute(2, 0, 1)
    with torch.no_grad():
        logits = model(x[None])[0]
        head = model.decode_head
        pred = head.linear_pred if hasattr(head, "linear_pred") else head.pred
        polyp = logits[0] if num_classes == 1 else logits[1] - logits[0]
        pred.bias[-1] -= float(polyp.median())
    return save_checkpoint_file(tmp / f"{name}.pth", model)


def _config(name: str, root: Path, save_dir: Path, recipe: str) -> Config:
    overrides = [
        "DEVICE=cpu",
        f"SAVE_DIR={save_dir}",
        f"DATASET.ROOT={root}",
        "MODEL.NAME=" + name,
        "MODEL.BACKBONE=MiT-B0",
        "MODEL.PRETRAINED=null",
        f"EVAL.RECIPE={recipe}",
        "TRAIN.BATCH_SIZE=2",
        "TRAIN.WORKERS=0",
    ]
    if name == "SSFormer":
        overrides += ["LOSS.NAME=DiceBCE", "MODEL.NUM_CLASSES=1"]
    return load_config("kvasir-seg", overrides)


def _val(config: Config, weights: Path, out: Path) -> dict[str, float]:
    outputs = run_evaluation(config, weights=weights, split="val", out_dir=out, echo=lambda _: None)
    return outputs["val"].metrics


# ----------------------------------------------------------------------------- the study


def study_val_port(model: torch.nn.Module, folder: Path) -> tuple[float, float]:
    """The reproduction study's ``tools/val.py`` with ``semseg/augmentations.py``
    (``get_val_augmentation``: ``Resize``, ``Normalize``), ``semseg/datasets/kvasir.py`` and
    ``semseg/metrics.py`` (RahulSinghalChicago/Reprod_scformer), ported: ``(mIoU, mF1)``."""
    from torchvision.io import read_image
    from torchvision.transforms import functional as TF

    hist = torch.zeros(2, 2)
    for image_path in sorted((folder / "images").iterdir()):
        mask_path = next((folder / "masks").glob(image_path.stem + ".*"))
        image, label = read_image(str(image_path)), read_image(str(mask_path))
        # Resize.__call__
        H, W = image.shape[1:]
        scale_factor = 352 / min(H, W)
        nH, nW = round(H * scale_factor), round(W * scale_factor)
        image = TF.resize(image, (nH, nW), TF.InterpolationMode.BILINEAR, antialias=False)
        label = TF.resize(label, (nH, nW), TF.InterpolationMode.NEAREST)
        alignH, alignW = int(np.ceil(nH / 32)) * 32, int(np.ceil(nW / 32)) * 32
        image = TF.resize(image, (alignH, alignW), TF.InterpolationMode.BILINEAR, antialias=False)
        label = TF.resize(label, (alignH, alignW), TF.InterpolationMode.NEAREST)
        # Normalize.__call__
        image = TF.normalize(image.float() / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        target = (label[0, :, :].squeeze() / 255).long()
        with torch.no_grad():
            logits = model(image[None])
        if logits.shape[1] == 1:  # a sigmoid model: background / polyp as two logits
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        pred = logits.softmax(dim=1).argmax(dim=1)[0]
        keep = target != 255
        hist += torch.bincount(target[keep] * 2 + pred[keep], minlength=4).view(2, 2).float()
    ious = hist.diag() / (hist.sum(0) + hist.sum(1) - hist.diag())
    f1 = 2 * hist.diag() / (hist.sum(0) + hist.sum(1))
    return round(ious[~ious.isnan()].mean().item() * 100, 2), round(
        f1[~f1.isnan()].mean().item() * 100, 2
    )


def test_study_eval_sizes_are_the_studys() -> None:
    assert study_eval_size(530, 622)[1] == (352, 416)
    assert study_eval_size(1072, 1350)[1] == (352, 448)
    assert study_eval_size(288, 384)[1] == (352, 480)


@pytest.mark.parametrize("name", ["SegFormer", "SSFormer"])
def test_study_recipe_equals_the_study_pipeline(
    kvasir_like: Path, tmp_path: Path, name: str
) -> None:
    num_classes = 1 if name == "SSFormer" else 2
    weights = _weights(tmp_path, name, num_classes, kvasir_like)
    ours = _val(_config(name, kvasir_like, tmp_path, "study"), weights, tmp_path)
    model = build_model(name, "MiT-B0", num_classes=num_classes)
    model.load_state_dict(torch.load(weights, weights_only=True)["model"])
    miou, mf1 = study_val_port(model.eval(), kvasir_like / "val")
    assert 10.0 < miou < 90.0  # both classes predicted: the comparison means something
    assert abs(ours["mIoU_2cls"] - miou) <= 0.01 + 1e-9
    assert abs(ours["mDice_2cls"] - mf1) <= 0.01 + 1e-9
    recorded = json.loads((tmp_path / "eval_val.json").read_text())
    assert recorded["recipe"] == "study"


# ----------------------------------------------------------------------------- official test.py


def fmeasure_calu(pred: np.ndarray, gt: np.ndarray, threshold: float) -> tuple[float, float]:
    """``Fmeasure_calu`` of the official ``utils/tools.py`` (a port of PraNet's MATLAB one):
    ``(Dice, IoU)``."""
    label3 = np.zeros_like(gt)
    label3[pred >= threshold] = 1
    num_rec = np.sum(label3 == 1)
    num_and = np.sum((label3 == 1) & (gt == 1))
    num_obj = np.sum(gt)
    num_pred = np.sum(label3)
    if num_and == 0:
        return 0.0, 0.0
    fn = num_obj - num_and
    return 2 * num_and / (num_obj + num_pred), num_and / (fn + num_rec)


def official_test_port(model: torch.nn.Module, folder: Path) -> float:
    """The official SSFormer ``test.py`` with ``utils/test_dataset.py`` and
    ``utils/test_transforms.py`` (Qiming-Huang/ssformer), ported: mean Dice."""
    dices = []
    for image_path in sorted((folder / "images").iterdir()):
        mask_path = next((folder / "masks").glob(image_path.stem + ".*"))
        img = Image.open(image_path).convert("RGB")
        label = Image.open(mask_path).convert("L")
        width, height = img.size
        image = np.array(img.resize((352, 352), Image.BILINEAR), dtype=np.float32)
        gt = np.array(label, dtype=np.float32)
        image /= 255
        image -= MEAN
        image /= STD
        gt /= 255
        x = torch.from_numpy(image.transpose((2, 0, 1)))[None]
        with torch.no_grad():
            pred = torch.sigmoid(model(x))
        pred = F.interpolate(pred, size=(height, width), mode="bilinear", align_corners=False)
        pred = (pred > torch.tensor([0.5])).float() * 1
        pred = pred.numpy().squeeze()
        label_ = np.array(gt).astype(np.uint8).squeeze()
        pred = (pred - pred.min()) / (pred.max() - pred.min() + 1e-8)
        thresholds = np.linspace(1, 0, 256)
        dices.append(np.mean([fmeasure_calu(pred, label_, t)[0] for t in thresholds]))
    return float(np.mean(dices))


def test_official_recipe_equals_the_official_test_py(kvasir_like: Path, tmp_path: Path) -> None:
    weights = _weights(tmp_path, "SSFormer", 1, kvasir_like)
    ours = _val(_config("SSFormer", kvasir_like, tmp_path, "official"), weights, tmp_path)
    model = build_model("SSFormer", "MiT-B0", num_classes=1)
    model.load_state_dict(torch.load(weights, weights_only=True)["model"])
    reference = official_test_port(model.eval(), kvasir_like / "val")
    assert 0.05 < reference < 0.95
    assert abs(ours["official_dice"] - reference) < 1e-3


# ----------------------------------------------------------------------------- PraNet toolbox


def pranet_save_port(model: torch.nn.Module, folder: Path, out: Path) -> None:
    """PraNet's ``MyTest.py`` / Polyp-PVT's ``Test.py``: logits resized to the GT size, sigmoid,
    min-max with ``+ 1e-8``, written as an 8-bit PNG with ``cv2.imwrite(res * 255)``. The input
    is the official ``test.py``'s (PIL bilinear to 352, as PraNet's ``transforms.Resize``)."""
    out.mkdir(parents=True, exist_ok=True)
    for image_path in sorted((folder / "images").iterdir()):
        mask_path = next((folder / "masks").glob(image_path.stem + ".*"))
        gt = np.asarray(Image.open(mask_path).convert("L"), np.float32)
        img = Image.open(image_path).convert("RGB").resize((352, 352), Image.BILINEAR)
        image = (np.asarray(img, np.float32) / 255 - MEAN) / STD
        with torch.no_grad():
            res = model(torch.from_numpy(image.transpose(2, 0, 1))[None])
        res = F.interpolate(res, size=gt.shape, mode="bilinear", align_corners=False)
        res = res.sigmoid().data.cpu().numpy().squeeze()
        res = (res - res.min()) / (res.max() - res.min() + 1e-8)
        cv2.imwrite(str(out / f"{image_path.stem}.png"), res * 255)


def toolbox_port(maps: Path, folder: Path) -> tuple[float, float, float]:
    """PraNet's ``eval/main.m`` with ``Fmeasure_calu.m`` (DengPingFan/PraNet), ported:
    ``(meanDic, meanIoU, MAE)``. ``Thresholds = 1:-1/255:0`` is taken as ``k / 255``."""
    thresholds = np.arange(255, -1, -1) / 255.0
    dice, iou, mae = [], [], []
    for map_path in sorted(maps.glob("*.png")):
        mask_path = next((folder / "masks").glob(map_path.stem + ".*"))
        gt = np.asarray(Image.open(mask_path))
        if gt.ndim > 2:  # rgb2gray
            gt = np.round(
                gt[..., :3] @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
            )
        gt = gt > 128
        resmap = cv2.imread(str(map_path), cv2.IMREAD_GRAYSCALE) / 255.0  # im2double
        if resmap.max() > resmap.min():  # mapminmax(resmap, 0, 1)
            resmap = (resmap - resmap.min()) / (resmap.max() - resmap.min())
        mae.append(np.mean(np.abs(gt.astype(np.float64) - resmap)))
        pairs = [fmeasure_calu(resmap, gt.astype(np.float64), t) for t in thresholds]
        dice.append(np.mean([p[0] for p in pairs]))
        iou.append(np.mean([p[1] for p in pairs]))
    return float(np.mean(dice)), float(np.mean(iou)), float(np.mean(mae))


def test_toolbox_recipe_equals_the_toolbox_on_saved_maps(kvasir_like: Path, tmp_path: Path) -> None:
    weights = _weights(tmp_path, "SSFormer", 1, kvasir_like)
    ours = _val(_config("SSFormer", kvasir_like, tmp_path, "pranet-toolbox"), weights, tmp_path)
    model = build_model("SSFormer", "MiT-B0", num_classes=1)
    model.load_state_dict(torch.load(weights, weights_only=True)["model"])
    pranet_save_port(model.eval(), kvasir_like / "val", tmp_path / "maps")
    dice, iou, mae = toolbox_port(tmp_path / "maps", kvasir_like / "val")
    assert 0.05 < dice < 0.95
    assert abs(ours["mDice"] - dice) < 1e-4
    assert abs(ours["mIoU"] - iou) < 1e-4
    assert abs(ours["MAE"] - mae) < 1e-4
    # the float map (official recipe) differs from the 8-bit one: the recipes are distinct
    float_map = _val(_config("SSFormer", kvasir_like, tmp_path, "official"), weights, tmp_path)
    assert float_map["mDice"] != ours["mDice"]


@pytest.mark.parametrize("mode", ["1", "P", "L", "RGB"])
def test_mask_modes_give_one_label_in_training_and_evaluation(tmp_path: Path, mode: str) -> None:
    """1-bit, palette, grey and colour masks: the study's label (== 255 after its Resize) is the
    same in the evaluation recipe and in the training cache."""
    from ssformer.data.cache import load_study_pair
    from ssformer.data.recipes import RecipeEvalDataset

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    grey = np.zeros((96, 128), np.uint8)
    grey[20:70, 30:90] = 255
    Image.fromarray(np.full((96, 128, 3), 90, np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(grey).convert(mode).save(tmp_path / "masks" / "a.png")
    item = RecipeEvalDataset(tmp_path, "study", (352, 352))[0]
    _, cached = load_study_pair(
        tmp_path / "images" / "a.png", tmp_path / "masks" / "a.png", (352, 352)
    )
    assert item["mask"].sum() > 0
    assert torch.equal(item["mask"][0], torch.from_numpy(cached == 255).float())


def test_subset_rows_keep_the_subset_order(kvasir_like: Path, tmp_path: Path) -> None:
    from torch.utils.data import Subset

    from ssformer.data.recipes import RecipeEvalDataset
    from ssformer.engine.evaluate import evaluate

    dataset = RecipeEvalDataset(kvasir_like / "val", "study", (352, 352))
    model = build_model("SSFormer", "MiT-B0", num_classes=1).eval()
    order = [3, 0, 2, 1]
    output = evaluate(model, Subset(dataset, order), torch.device("cpu"), batch_size=2)
    assert [row["name"] for row in output.per_image] == [dataset.names[i] for i in order]
