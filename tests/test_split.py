"""`ssformer split` equals splitfolders.ratio, keeps originals, is idempotent and checkable."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import pytest

from ssformer.commands import split as split_command
from ssformer.data.split import MANIFEST_NAME, check_split, split_dataset
from ssformer.errors import DataError


def _make_dataset(root: Path, names: list[str], mask_suffix: str | None = None) -> Path:
    for kind in ("images", "masks"):
        (root / kind).mkdir(parents=True)
        for name in names:
            target = (
                name if kind == "images" or mask_suffix is None else (Path(name).stem + mask_suffix)
            )
            (root / kind / target).write_bytes(f"{kind}:{name}".encode())
    return root


def _kvasir_like_names(n: int) -> list[str]:
    return [hashlib.sha1(str(i).encode()).hexdigest()[:25] + ".jpg" for i in range(n)]


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    split_command.register(parser.add_subparsers())
    args = parser.parse_args(["split", *argv])
    return args.func(args)


@pytest.mark.parametrize(
    ("names", "counts"),
    [
        (_kvasir_like_names(1000), (800, 100, 100)),
        ([f"{i}.png" for i in range(1, 613)], (489, 61, 62)),  # CVC-ClinicDB, sorted as strings
    ],
    ids=["kvasir-1000", "clinicdb-612"],
)
def test_equals_splitfolders(tmp_path: Path, names: list[str], counts: tuple[int, ...]) -> None:
    splitfolders = pytest.importorskip("splitfolders")
    source = _make_dataset(tmp_path / "data", names)
    splitfolders.ratio(str(source), output=str(tmp_path / "sf"), seed=1337, ratio=(0.8, 0.1, 0.1))
    result = split_dataset(source, tmp_path / "ours", ratio=(0.8, 0.1, 0.1), seed=1337)
    for split, count in zip(("train", "val", "test"), counts, strict=True):
        expected = _listing(tmp_path / "sf" / split / "images")
        assert len(expected) == count
        assert _listing(tmp_path / "ours" / split / "images") == expected
        assert _listing(tmp_path / "ours" / split / "masks") == expected
        assert sorted(result.files[split]) == expected
    # originals stay where they were
    assert len(_listing(source / "images")) == len(names)
    assert len(_listing(source / "masks")) == len(names)


def test_masks_with_other_extension_follow_their_image(tmp_path: Path) -> None:
    source = _make_dataset(tmp_path / "d", [f"{i}.jpg" for i in range(20)], mask_suffix=".png")
    split_dataset(source, tmp_path / "out")
    for split in ("train", "val", "test"):
        images = [Path(n).stem for n in _listing(tmp_path / "out" / split / "images")]
        masks = [Path(n).stem for n in _listing(tmp_path / "out" / split / "masks")]
        assert images == masks


def test_idempotent_and_refuses_other_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _make_dataset(tmp_path / "d", _kvasir_like_names(30))
    out = source  # default output: ROOT itself, beside images/ and masks/ (as in the study)
    assert _cli([str(source)]) == 0
    assert (out / MANIFEST_NAME).is_file()
    assert len(_listing(source / "images")) == 30  # the originals stay
    assert len(_listing(source / "masks")) == 30
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["counts"] == {"train": 24, "val": 3, "test": 3}
    record = manifest["pairs"]["train"][0]
    assert (
        record["image_sha256"]
        == hashlib.sha256((source / "images" / record["image"]).read_bytes()).hexdigest()
    )
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()
    assert _cli([str(source)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    with pytest.raises(DataError) as error:
        split_dataset(source, out, ratio=(0.7, 0.2, 0.1), seed=1337)
    message = str(error.value)
    assert MANIFEST_NAME in message and "0.8" in message and "0.7" in message


def test_check_names_each_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _make_dataset(tmp_path / "d", _kvasir_like_names(20))
    out = tmp_path / "split"
    result = split_dataset(source, out)
    assert check_split(out) == []
    assert _cli([str(source), "--output", str(out), "--check"]) == 0
    changed = out / "val" / "masks" / result.files["val"][0]
    changed.unlink()  # a hard link: write a new file rather than editing the source
    changed.write_bytes(b"edited")
    missing = out / "test" / "images" / result.files["test"][0]
    missing.unlink()
    extra = out / "train" / "images" / "stray.jpg"
    extra.write_bytes(b"x")
    capsys.readouterr()
    assert _cli([str(source), "--output", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert str(changed) in err and str(missing) in err and str(extra) in err
    # the source was not touched by the edits above
    assert (source / "masks" / changed.name).read_bytes() != b"edited"


def test_unpaired_source_is_refused(tmp_path: Path) -> None:
    source = _make_dataset(tmp_path / "d", ["a.jpg", "b.jpg"])
    (source / "images" / "c.jpg").write_bytes(b"c")
    with pytest.raises(DataError, match=r"c\.jpg"):
        split_dataset(source, tmp_path / "out")


def test_bad_ratio(tmp_path: Path) -> None:
    source = _make_dataset(tmp_path / "d", ["a.jpg"])
    with pytest.raises(DataError, match="sum to 1"):
        split_dataset(source, tmp_path / "out", ratio=(0.5, 0.1, 0.1))


def test_interrupted_split_resumes(tmp_path: Path) -> None:
    source = _make_dataset(tmp_path / "d", _kvasir_like_names(10))
    out = tmp_path / "out"
    split_dataset(source, out)
    manifest = (out / MANIFEST_NAME).read_text()
    (out / MANIFEST_NAME).unlink()  # as if interrupted before the manifest was written
    (out / ".split-in-progress.json").write_text(
        json.dumps({"ratio": [0.8, 0.1, 0.1], "seed": 1337, "source": os.path.relpath(source, out)})
    )
    assert split_dataset(source, out).created
    assert json.loads((out / MANIFEST_NAME).read_text()) == json.loads(manifest)
    assert not (out / ".split-in-progress.json").exists()
    (out / MANIFEST_NAME).unlink()
    with pytest.raises(DataError, match="not made by"):
        split_dataset(source, out)
