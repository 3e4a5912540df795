"""Synthetic dataset generator: layout, determinism, variety, refusal to overwrite."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssformer.commands import synth as synth_command
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.errors import DataError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def test_layout_and_masks(tmp_path: Path) -> None:
    out = generate_synthetic_dataset(tmp_path / "syn", n=6, size=64, seed=3)
    images = sorted((out / "images").glob("*.jpg"))
    masks = sorted((out / "masks").glob("*.jpg"))
    assert [p.name for p in images] == [p.name for p in masks]
    assert len(images) == 6
    for image_path, mask_path in zip(images, masks, strict=True):
        image = np.asarray(Image.open(image_path).convert("RGB"))
        mask = np.asarray(Image.open(mask_path).convert("L"))
        assert image.shape == (64, 64, 3)
        assert mask.shape == (64, 64)
        foreground = mask > 128
        assert 0 < foreground.mean() < 0.6  # at least one polyp, never the whole frame
        # JPEG masks: nearly all pixels close to 0 or 255, like Kvasir-SEG
        assert np.mean((mask > 40) & (mask < 215)) < 0.1
        # reddish mucosa
        assert image[..., 0].mean() > image[..., 2].mean()


def test_deterministic_per_seed(tmp_path: Path) -> None:
    a = _files(generate_synthetic_dataset(tmp_path / "a", n=3, size=48, seed=7))
    b = _files(generate_synthetic_dataset(tmp_path / "b", n=3, size=48, seed=7))
    c = _files(generate_synthetic_dataset(tmp_path / "c", n=3, size=48, seed=8))
    assert a == b
    assert a != c


def test_size_jitter_gives_varied_non_square_sizes(tmp_path: Path) -> None:
    out = generate_synthetic_dataset(tmp_path / "j", n=5, size=64, seed=0, size_jitter=0.3)
    sizes = {Image.open(p).size for p in (out / "images").glob("*.jpg")}
    assert len(sizes) > 1
    assert any(w != h for w, h in sizes)
    for p in (out / "images").glob("*.jpg"):
        assert Image.open(p).size == Image.open(out / "masks" / p.name).size


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    generate_synthetic_dataset(tmp_path / "s", n=2, size=32, seed=0)
    with pytest.raises(DataError, match="never overwritten"):
        generate_synthetic_dataset(tmp_path / "s", n=2, size=32, seed=1)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    synth_command.register(parser.add_subparsers())
    args = parser.parse_args(["synth", str(tmp_path / "cli"), "--n", "2", "--size", "40"])
    assert args.func(args) == 0
    assert "wrote 2 image/mask pairs" in capsys.readouterr().out
    assert len(list((tmp_path / "cli" / "masks").glob("*.jpg"))) == 2
