"""PolypDataset, its cache and the joint transforms, on real (synthetic) JPEG files."""

from __future__ import annotations

import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssformer.config import Config, load_config
from ssformer.data.cache import PairCache
from ssformer.data.datasets import PolypDataset
from ssformer.data.protocols import build_datasets
from ssformer.data.split import split_dataset
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_eval_transform,
    build_train_transform,
)
from ssformer.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    return generate_synthetic_dataset(root, n=10, size=64, seed=5, size_jitter=0.25)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache"))
    return dst


def test_items(synth: Path, tmp_path: Path) -> None:
    ds = PolypDataset(_copy(synth, tmp_path / "d"), (40, 48))
    assert len(ds) == 10
    assert ds.names == sorted(p.stem for p in (synth / "images").glob("*.jpg"))
    item = ds[3]
    assert item["index"] == 3
    assert item["image"].shape == (3, 40, 48) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (1, 40, 48) and item["mask"].dtype == torch.float32
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert item["mask"].sum() > 0
    # ImageNet normalisation of the resized image
    image, _ = ds.resized_pair(3)
    expected = (image.astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    # original resolution
    w, h = Image.open(synth / "images" / f"{ds.names[3]}.jpg").size
    assert ds.original_size(3) == (h, w)
    full = ds.original_mask(3)  # the grey pixels, as every evaluation dataset gives them
    assert full.dtype == np.uint8 and full.shape == (h, w)
    reference = np.asarray(Image.open(synth / "masks" / f"{ds.names[3]}.jpg").convert("L"))
    assert np.array_equal(full, reference)
    with pytest.raises(IndexError):
        ds[10]


def test_cache_equals_uncached_and_is_reused(synth: Path, tmp_path: Path) -> None:
    root = _copy(synth, tmp_path / "d")
    cached = PolypDataset(root, 32, cache=True)
    plain = PolypDataset(root, 32, cache=False)
    for i in range(len(cached)):
        a, b = cached[i], plain[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    entries = sorted((root / ".cache" / "32x32").glob("*.npy"))
    assert len(entries) == len(cached)
    assert not list((root / ".cache" / "32x32").glob(".*tmp"))  # atomic writes leave nothing
    again = PolypDataset(root, 32)
    again[0]
    assert (again.cache.hits, again.cache.misses) == (1, 0)


def test_cache_invalidated_when_a_file_changes(synth: Path, tmp_path: Path) -> None:
    root = _copy(synth, tmp_path / "d")
    ds = PolypDataset(root, 32)
    _, mask_before = ds.resized_pair(0)
    mask_path = root / "masks" / f"{ds.names[0]}.jpg"
    size = Image.open(mask_path).size
    Image.new("L", size, 255).save(mask_path, quality=95)  # a new, all-polyp mask
    stat = mask_path.stat()
    os.utime(mask_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    fresh = PolypDataset(root, 32)
    _, mask_after = fresh.resized_pair(0)
    assert fresh.cache.misses == 1
    assert mask_after.min() == 255 and not np.array_equal(mask_before, mask_after)
    assert len(list((root / ".cache" / "32x32").glob(f"{ds.names[0]}.*.npy"))) == 1


def test_memory_cache(synth: Path) -> None:
    cache = PairCache(None, (24, 24))
    pair = (synth / "images" / "synth-0000.jpg", synth / "masks" / "synth-0000.jpg")
    first = cache.get(*pair)
    second = cache.get(*pair)
    assert first[0] is second[0] and (cache.hits, cache.misses) == (1, 1)


def test_pairs_by_stem_and_names_unpaired_files(synth: Path, tmp_path: Path) -> None:
    root = tmp_path / "pranet_like"
    (root / "image").mkdir(parents=True)
    (root / "mask").mkdir()
    for i, path in enumerate(sorted((synth / "images").glob("*.jpg"))[:4]):
        shutil.copy(path, root / "image" / path.name)
        mask = Image.open(synth / "masks" / path.name)
        if i < 3:
            mask.save(root / "mask" / f"{path.stem}.png")  # another extension
    with pytest.raises(DataError, match=r"synth-0003\.jpg"):
        PolypDataset(root, 32)
    (root / "image" / "synth-0003.jpg").unlink()
    ds = PolypDataset(root, 32, cache=False)
    assert ds.names == ["synth-0000", "synth-0001", "synth-0002"]
    assert ds[2]["mask"].sum() > 0
    with pytest.raises(DataError, match="does not exist"):
        PolypDataset(tmp_path / "nowhere", 32)
    (tmp_path / "no_masks" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="masks"):
        PolypDataset(tmp_path / "no_masks", 32)


def _config(root: Path, protocol: str) -> Config:
    return load_config(
        "demo",
        [
            f"DATASET.ROOT={root}",
            f"DATASET.PROTOCOL={protocol}",
            "DATASET.VAL_FRACTION=0.2",
            "TRAIN.IMAGE_SIZE=[32,32]",
            "EVAL.IMAGE_SIZE=[32,32]",
        ],
    )


def test_split_and_pranet_layouts(synth: Path, tmp_path: Path) -> None:
    split_dataset(synth, tmp_path / "split", ratio=(0.6, 0.2, 0.2), seed=1)
    sets = build_datasets(_config(tmp_path / "split", "split"))
    assert [len(sets.train), len(sets.val["val"]), len(sets.test["test"])] == [6, 2, 2]
    assert sets.train[0]["image"].shape == (3, 32, 32)
    assert list(build_datasets(_config(tmp_path / "split", "split"), "test").test) == ["test"]
    with pytest.raises(DataError, match="ssformer split"):
        build_datasets(_config(synth, "split"))
    # one images/ + masks/ folder is enough to evaluate on
    assert len(build_datasets(_config(synth, "split"), "val").val["val"]) == 10
    pranet = tmp_path / "polyp"
    _copy(synth, pranet / "TrainDataset")
    (pranet / "TrainDataset" / "images").rename(pranet / "TrainDataset" / "image")
    (pranet / "TrainDataset" / "masks").rename(pranet / "TrainDataset" / "mask")
    _copy(synth, pranet / "TestDataset" / "Kvasir")
    both = build_datasets(_config(pranet, "pranet"))
    assert list(both.test) == ["Kvasir"] and len(both.test["Kvasir"]) == 10
    assert len(both.train) == 8 and len(both.val["val"]) == 2  # 20 % of TrainDataset held out
    train_ids, val_ids = set(both.train.indices), set(both.val["val"].indices)
    assert not train_ids & val_ids and len(train_ids | val_ids) == 10


@pytest.mark.parametrize("recipe", ["official", "study"])
def test_train_transform_moves_image_and_mask_together(recipe: str) -> None:
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    mask = (((yy - 20) ** 2 + (xx - 40) ** 2) < 12**2).astype(np.uint8) * 255
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = 60
    image[mask > 0] = (200, 200, 200)  # the "polyp" is bright
    transform = build_train_transform(size, recipe)
    if recipe == "study":  # geometry only: padding filled as background (the study fills 255)
        transform.seg_fill = 0
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    ious = []
    for _ in range(30):
        image_t, mask_t = transform(image, mask)
        assert image_t.shape == (3, size, size) and mask_t.shape == (1, size, size)
        assert set(mask_t.unique().tolist()) <= {0.0, 1.0}
        bright = image_t[1] > 0  # green channel: only the bright disc is above the mean
        predicted = mask_t[0] > 0.5
        union = (bright | predicted).sum().item()
        if union:
            ious.append((bright & predicted).sum().item() / union)
    # dilation/erosion by up to 4 px changes the border; the disc must still coincide
    assert np.mean(ious) > 0.7


def test_transforms_are_seeded_by_torch() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    mask = (rng.random((48, 48)) > 0.5).astype(np.uint8) * 255
    transform = build_train_transform(48, "official")
    torch.manual_seed(3)
    a = [transform(image, mask) for _ in range(4)]
    torch.manual_seed(3)
    b = [transform(image, mask) for _ in range(4)]
    for (ia, ma), (ib, mb) in zip(a, b, strict=True):
        assert torch.equal(ia, ib) and torch.equal(ma, mb)
    assert not all(torch.equal(a[0][0], x[0]) for x in a[1:])  # it does augment


def test_eval_transform_resizes() -> None:
    image = np.full((30, 50, 3), 128, np.uint8)
    mask = np.zeros((30, 50), np.uint8)
    mask[:, 25:] = 255
    image_t, mask_t = build_eval_transform((20, 40))(image, mask)
    assert image_t.shape == (3, 20, 40) and mask_t.shape == (1, 20, 40)
    assert mask_t.mean().item() == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ConfigError, match="recipe"):
        build_train_transform(32, "fancy")


def test_dataloader_with_workers(synth: Path, tmp_path: Path) -> None:
    ds = PolypDataset(_copy(synth, tmp_path / "d"), 32, transform=build_train_transform(32))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["index"].tolist() == [0, 1, 2, 3]


def test_dataloader_with_spawned_workers(synth: Path, tmp_path: Path) -> None:
    # spawn (macOS, Windows, Python >= 3.14 on Linux) pickles the dataset and its cache.
    ds = PolypDataset(_copy(synth, tmp_path / "d"), 32)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=2, num_workers=1, multiprocessing_context="spawn"
    )
    batch = next(iter(loader))
    assert torch.equal(batch["image"][0], ds[0]["image"])
    memory = pickle.loads(pickle.dumps(PairCache(None, (24, 24))))
    pair = (synth / "images" / "synth-0000.jpg", synth / "masks" / "synth-0000.jpg")
    assert memory.get(*pair)[0].shape == (24, 24, 3)
