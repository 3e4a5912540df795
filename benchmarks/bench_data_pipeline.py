"""Throughput of the training data pipeline: cached vs uncached vs the official PIL pipeline.

Writes Kvasir-sized synthetic JPEGs (half 1920x1072, half 622x529 by default) to a temporary
folder and runs, on the same images, the same number of worker processes and the same batch size:

- ``ours (cache)``: :class:`ssformer.data.datasets.PolypDataset` with ``cache=True`` (the cache is
  filled once before timing; that fill is reported separately) and the official recipe;
- ``ours (no cache)``: the same with ``cache=False`` (decode + resize every sample);
- ``official (PIL)``: a re-implementation of the per-sample work of the official SSFormer
  training loader (``CustomDataSet`` + ``utils/custom_transforms.py`` with ``configs/train.yaml``):
  PIL open, convert RGB / L, resize 352 bilinear, random scale-crop, flips via numpy, rotation
  with expand + centre crop, contrast/brightness/sharpness enhancement, dilation/erosion,
  float conversion, normalisation, tensors.

Prints samples/s and the ratios. Usage::

    python benchmarks/bench_data_pipeline.py [--n 40] [--epochs 3] [--workers 0] [--size 352]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance

from ssformer.data.datasets import PolypDataset, find_pairs
from ssformer.data.synthetic import render_sample
from ssformer.data.transforms import build_train_transform

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def write_images(root: Path, n: int, sizes: list[tuple[int, int]], seed: int) -> Path:
    """``n`` synthetic pairs cycling through ``sizes`` ((h, w)), as Kvasir-like JPEGs.

    Rendered at a quarter of the size and upscaled, with sensor-like noise so that the JPEGs
    are about as costly to decode as camera frames (rendering 1920x1072 directly is slow).
    """
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        rng = np.random.default_rng([seed, i])
        sample = render_sample(rng, max(32, h // 4), max(32, w // 4))
        image = cv2.resize(sample.image, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        image += rng.normal(0.0, 3.0, size=image.shape).astype(np.float32)
        image = np.clip(image, 0, 255).astype(np.uint8)
        mask = cv2.resize(sample.mask.astype(np.uint8) * 255, (w, h), cv2.INTER_LINEAR) > 127
        Image.fromarray(image).save(root / "images" / f"img{i:03d}.jpg", quality=90)
        Image.fromarray(mask.astype(np.uint8) * 255).save(
            root / "masks" / f"img{i:03d}.jpg", quality=90
        )
    return root


class OfficialStyleDataset(torch.utils.data.Dataset):
    """Per-sample steps of the official training loader, written from its description."""

    def __init__(self, root: Path, size: int = 352) -> None:
        self.pairs = find_pairs(root)
        self.size = size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = Image.open(image_path).convert("RGB")
        gt = Image.open(mask_path).convert("L")
        size = (self.size, self.size)
        image, gt = image.resize(size, Image.BILINEAR), gt.resize(size, Image.BILINEAR)
        # random scale-crop (scale drawn always, applied with p=0.5; PIL's default BICUBIC)
        scale = np.random.random() * 0.5 + 0.75
        if np.random.random() < 0.5:
            scaled = tuple((np.array(size) * scale).round().astype(int))
            box = (
                (scaled[0] - size[0]) // 2,
                (scaled[1] - size[1]) // 2,
                (scaled[0] + size[0]) // 2,
                (scaled[1] + size[1]) // 2,
            )
            image = image.resize(scaled, Image.BICUBIC).crop(box)
            gt = gt.resize(scaled, Image.BICUBIC).crop(box)
        # flips through numpy arrays
        lr, ud = np.random.random() < 0.5, np.random.random() < 0.5
        arrays = []
        for item in (image, gt):
            array = np.array(item)
            if lr:
                array = np.fliplr(array)
            if ud:
                array = np.flipud(array)
            arrays.append(Image.fromarray(array))
        image, gt = arrays
        # rotation: integer angle in [0, 359), p=0.5, expand then centre crop
        angle = int(np.random.randint(0, 359))
        if np.random.random() < 0.5:
            rotated = []
            for item in (image, gt):
                big = item.rotate(angle, expand=True)
                box = (
                    (big.size[0] - size[0]) // 2,
                    (big.size[1] - size[1]) // 2,
                    (big.size[0] + size[0]) // 2,
                    (big.size[1] + size[1]) // 2,
                )
                rotated.append(big.crop(box))
            image, gt = rotated
        # enhancement: random order, each p=0.5, factor 1 + U(0, 0.1)
        methods = [ImageEnhance.Contrast, ImageEnhance.Brightness, ImageEnhance.Sharpness]
        np.random.shuffle(methods)
        for method in methods:
            if np.random.random() > 0.5:
                image = method(image).enhance(float(1 + np.random.random() / 10))
        # dilation / erosion with an elliptic kernel of size 2..4
        gt_array = np.array(gt)
        key = np.random.random()
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (np.random.randint(2, 5),) * 2)
        if key < 1 / 3:
            gt_array = cv2.dilate(gt_array, kernel)
        elif key < 2 / 3:
            gt_array = cv2.erode(gt_array, kernel)
        # to float, normalise, tensors
        image_array = np.array(image, dtype=np.float32)
        image_array = (image_array / 255 - MEAN) / STD
        gt_float = gt_array.astype(np.float32) / 255
        return (
            torch.from_numpy(image_array.transpose(2, 0, 1)).float(),
            torch.from_numpy(gt_float).unsqueeze(0),
        )


def throughput(dataset: torch.utils.data.Dataset, epochs: int, workers: int, batch: int) -> float:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=False
    )
    seen = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for item in loader:
            images = item["image"] if isinstance(item, dict) else item[0]
            seen += images.shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="number of image/mask pairs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader workers (0: the main process)"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.workers == 0:
        # As inside a DataLoader worker: one torch thread (and one OpenCV thread). Several
        # threads per sample only add synchronisation cost, badly so on a busy machine.
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="ssformer-bench-data-") as tmp:
        start = time.perf_counter()
        root = write_images(Path(tmp) / "data", args.n, [(1072, 1920), (529, 622)], args.seed)
        elapsed = time.perf_counter() - start
        print(f"wrote {args.n} pairs (1920x1072 and 622x529 JPEGs) in {elapsed:.1f} s")
        transform = build_train_transform(args.size, "official")
        cached = PolypDataset(root, args.size, transform=transform, cache=True)
        start = time.perf_counter()
        for i in range(len(cached)):
            cached.resized_pair(i)
        fill = time.perf_counter() - start
        uncached = PolypDataset(root, args.size, transform=transform, cache=False)
        official = OfficialStyleDataset(root, args.size)
        rates = {}
        for name, dataset in (
            ("official (PIL)", official),
            ("ours (no cache)", uncached),
            ("ours (cache)", cached),
        ):
            throughput(dataset, 1, args.workers, args.batch)  # warm-up: page cache, workers
            rates[name] = throughput(dataset, args.epochs, args.workers, args.batch)
        print(
            f"cache fill: {fill:.2f} s for {len(cached)} pairs "
            f"({len(cached) / fill:.1f} pairs/s, once per image size)"
        )
        print(
            f"torch threads {torch.get_num_threads()}, workers {args.workers}, "
            f"batch {args.batch}, {args.epochs} epochs, size {args.size}"
        )
        base = rates["official (PIL)"]
        for name, rate in rates.items():
            print(f"{name:18s} {rate:8.1f} samples/s   x{rate / base:5.2f} vs official")


if __name__ == "__main__":
    main()
