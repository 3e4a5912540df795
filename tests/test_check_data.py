"""`ssformer check-data` names every broken file and exits non-zero."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from PIL import Image

from ssformer.commands import check_data as check_data_command
from ssformer.data.check import check_dataset
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.errors import DataError


def _cli(root: Path) -> int:
    parser = argparse.ArgumentParser()
    check_data_command.register(parser.add_subparsers())
    args = parser.parse_args(["check-data", str(root)])
    return args.func(args)


def test_clean_dataset_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = generate_synthetic_dataset(tmp_path / "ok", n=3, size=40, seed=0)
    report = check_dataset(root)
    assert report.ok and report.pairs == 3 and report.problems == []
    assert _cli(root) == 0
    assert "3 readable pairs, 0 error(s)" in capsys.readouterr().out


def test_broken_dataset_names_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = generate_synthetic_dataset(tmp_path / "bad", n=6, size=40, seed=1)
    images, masks = root / "images", root / "masks"
    truncated = images / "synth-0000.jpg"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # Image.verify() accepts this; load() fails
    missing_mask = images / "synth-0001.jpg"
    (masks / "synth-0001.jpg").unlink()
    mismatched = masks / "synth-0002.jpg"
    Image.new("L", (30, 40), 255).save(mismatched)
    empty = masks / "synth-0003.jpg"
    Image.new("L", (40, 40), 0).save(empty)

    report = check_dataset(root)
    assert not report.ok
    by_path = {p.path: p for p in report.problems}
    assert by_path[truncated].severity == "error" and "decoded" in by_path[truncated].message
    assert by_path[missing_mask].severity == "error" and "no mask" in by_path[missing_mask].message
    assert by_path[mismatched].severity == "error" and "differs" in by_path[mismatched].message
    assert by_path[empty].severity == "warning" and "empty" in by_path[empty].message
    assert len(report.errors) == 3
    with pytest.raises(DataError, match=r"synth-0000\.jpg"):
        report.raise_if_broken()

    assert _cli(root) == 1
    err = capsys.readouterr().err
    for path in (truncated, missing_mask, mismatched):
        assert str(path) in err


def test_split_layout_is_walked(tmp_path: Path) -> None:
    for split in ("train", "val"):
        generate_synthetic_dataset(tmp_path / "s" / split, n=2, size=32, seed=2)
    (tmp_path / "s" / "val" / "masks" / "synth-0001.jpg").unlink()
    report = check_dataset(tmp_path / "s")
    assert report.pairs == 3
    assert [p.path.name for p in report.errors] == ["synth-0001.jpg"]
    with pytest.raises(DataError, match="no images"):
        check_dataset(tmp_path)
