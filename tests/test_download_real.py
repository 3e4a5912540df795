"""Data set downloads against the publishers' real layouts, built at test time from real frames.

The archives are made in ``tmp_path`` from the files of ``SSFORMER_REAL_DATA`` (never committed;
the tests skip and say why without it), in the layouts their publishers ship:

- Simula's ``kvasir-seg.zip``: top folder ``Kvasir-SEG/`` with ``images/``, ``masks/`` and
  ``kavsir_bboxes.json``; the whole release (1000 pairs, so the published count is checked as
  the code checks it), served over loopback HTTP;
- Kaggle's ``cvcclinicdb.zip``: ``PNG/Original``, ``PNG/Ground Truth``, ``TIF/Original``,
  ``TIF/Ground Truth`` (the TIF halves hold the two original TIFF frames), put in place by hand
  as a user without Kaggle credentials does;
- the PraNet benchmark's archive: ``TrainDataset/{image,mask}`` and
  ``TestDataset/<set>/{images,masks}`` (PNG, as PraNet ships Kvasir's frames), from PraNet's id
  lists, fetched through gdown from loopback.

After each download the files in place are compared byte for byte with the archive's members.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_http import FileRoute, LoopbackServer
from PIL import Image
from realdata import CVC_STEMS, KVASIR_STEMS, real_data_root

from ssformer.data import download
from ssformer.errors import DataError


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(max_requests=12) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # gdown's cookie file


def _digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` by its relative path."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _member_digests(archive: bytes, prefix: str) -> dict[str, str]:
    """SHA-256 of the archive members under ``prefix``, by their path below it."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return {
            info.filename[len(prefix) :]: hashlib.sha256(opened.read(info)).hexdigest()
            for info in opened.infolist()
            if info.filename.startswith(prefix) and not info.is_dir()
        }


def _zip(members: dict[str, Path | bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of real files or bytes, with folder entries (deflated, as the publishers' are)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method, compresslevel=1) as archive:
        folders = sorted({name.rsplit("/", 1)[0] + "/" for name in members})
        for folder in folders:
            archive.writestr(folder, b"")
        for name, content in members.items():
            if isinstance(content, Path):
                archive.write(content, name)
            else:
                archive.writestr(name, content)
    return buffer.getvalue()


def _png(path: Path, mode: str) -> bytes:
    """A real frame re-encoded as PNG (PraNet ships every frame as PNG)."""
    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------- Kvasir-SEG from Simula


def kvasir_release(real: Path) -> bytes:
    """Simula's ``kvasir-seg.zip``: ``Kvasir-SEG/{images,masks}/*.jpg`` + the bounding boxes."""
    source = real / "Kvasir-SEG"
    members: dict[str, Path | bytes] = {
        "Kvasir-SEG/kavsir_bboxes.json": source / "kavsir_bboxes.json"
    }
    for folder in ("images", "masks"):
        for path in sorted((source / folder).glob("*.jpg")):
            members[f"Kvasir-SEG/{folder}/{path.name}"] = path
    return _zip(members, zipfile.ZIP_STORED)  # JPEGs barely deflate: the test stays fast


def test_simula_kvasir_release_over_http_gives_the_1000_pairs_byte_for_byte(
    tmp_path: Path, server: LoopbackServer
) -> None:
    real = real_data_root()
    body = kvasir_release(real)
    server.routes["/downloads/kvasir-seg.zip"] = FileRoute(body, drop_after=len(body) // 3)
    root = tmp_path / "data"
    target = download.download_kvasir(
        root, url=server.url("/downloads/kvasir-seg.zip"), backoff=0.001, timeout=30, quiet=True
    )  # the published count (1000) is checked
    assert target == root / "Kvasir-SEG"
    got = _digests(target)
    expected = _member_digests(body, "Kvasir-SEG/")
    del expected["kavsir_bboxes.json"]  # the data set folder holds the pairs only
    assert len(got) == 2000
    assert got == expected
    assert got == {
        name: digest
        for name, digest in _digests(real / "Kvasir-SEG").items()
        if name.startswith(("images/", "masks/"))
    }
    # the connection was cut a third of the way: resumed with Range, not started over
    route = server.routes["/downloads/kvasir-seg.zip"]
    assert route.ranges[0] is None and route.ranges[1] and route.ranges[1].startswith("bytes=")
    assert sorted(p.name for p in root.iterdir()) == ["Kvasir-SEG"]  # archive removed


def test_kvasir_release_missing_a_pair_is_refused_with_the_counts(
    tmp_path: Path, server: LoopbackServer
) -> None:
    source = real_data_root() / "Kvasir-SEG"
    members: dict[str, Path | bytes] = {}
    for stem in KVASIR_STEMS[:-1]:
        members[f"Kvasir-SEG/images/{stem}.jpg"] = source / "images" / f"{stem}.jpg"
        members[f"Kvasir-SEG/masks/{stem}.jpg"] = source / "masks" / f"{stem}.jpg"
    server.routes["/kvasir-seg.zip"] = FileRoute(_zip(members))
    root = tmp_path / "data"
    with pytest.raises(DataError, match=rf"found {len(KVASIR_STEMS) - 1} .*expected 1000"):
        download.download_kvasir(root, url=server.url("/kvasir-seg.zip"), quiet=True)
    assert not (root / "Kvasir-SEG").exists()
    assert not (root / "kvasir-seg.zip").exists()  # ours, broken: deleted for the next run


# ------------------------------------------------------------------ CVC-ClinicDB from Kaggle


def test_kaggle_cvc_archive_put_in_place_by_hand_installs_the_png_half(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = real_data_root()
    tif = real / "CVC-ClinicDB-tif-sample"
    if not tif.is_dir():
        pytest.skip(f"{real} has no CVC-ClinicDB-tif-sample/ (the TIF half of the archive)")
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    source = real / "CVC-ClinicDB"
    members: dict[str, Path | bytes] = {}
    for stem in CVC_STEMS:
        members[f"PNG/Original/{stem}.png"] = source / "images" / f"{stem}.png"
        members[f"PNG/Ground Truth/{stem}.png"] = source / "masks" / f"{stem}.png"
    for path in sorted((tif / "Original").glob("*.tif")):
        members[f"TIF/Original/{path.name}"] = path
        members[f"TIF/Ground Truth/{path.name}"] = tif / "Ground Truth" / path.name
    root = tmp_path / "data"
    root.mkdir()
    archive = _zip(members)
    (root / "cvcclinicdb.zip").write_bytes(archive)
    with pytest.raises(DataError, match=rf"found {len(CVC_STEMS)} .*expected 612"):
        download.download_cvc_clinicdb(root, quiet=True)  # the published count by default
    assert sorted(p.name for p in root.iterdir()) == ["cvcclinicdb.zip"]  # the user's: kept
    target = download.download_cvc_clinicdb(root, expected=len(CVC_STEMS), quiet=True)
    images = _member_digests(archive, "PNG/Original/")
    masks = _member_digests(archive, "PNG/Ground Truth/")
    expected = {f"images/{k}": v for k, v in images.items()} | {
        f"masks/{k}": v for k, v in masks.items()
    }
    assert _digests(target) == expected  # the PNG half, byte for byte; no TIFF taken
    assert len(expected) == 2 * len(CVC_STEMS)
    assert (root / "cvcclinicdb.zip").read_bytes() == archive


# ------------------------------------------------------------------ the PraNet benchmark


def _ids(real: Path, name: str, count: int) -> list[str]:
    path = real / "splits" / name
    if not path.is_file():
        pytest.skip(f"{real} has no splits/{name} (PraNet's id lists)")
    return path.read_text().split()[:count]


def pranet_archive(real: Path) -> tuple[bytes, dict[str, int]]:
    """PraNet's layout from its id lists (a few of each), every frame as PNG."""
    kvasir, cvc = real / "Kvasir-SEG", real / "CVC-ClinicDB"
    members: dict[str, Path | bytes] = {}
    train = [(kvasir, stem, ".jpg") for stem in _ids(real, "pranet_kvasir_train_ids.txt", 2)]
    train += [(cvc, stem, ".png") for stem in _ids(real, "pranet_cvc_clinicdb_train_ids.txt", 2)]
    for folder, stem, suffix in train:
        members[f"TrainDataset/image/{stem}.png"] = _png(
            folder / "images" / f"{stem}{suffix}", "RGB"
        )
        members[f"TrainDataset/mask/{stem}.png"] = _png(folder / "masks" / f"{stem}{suffix}", "L")
    tests = {
        "Kvasir": (kvasir, _ids(real, "pranet_kvasir_test_ids.txt", 2), ".jpg"),
        "CVC-ClinicDB": (cvc, _ids(real, "pranet_cvc_clinicdb_test_ids.txt", 3), ".png"),
    }
    for name, (folder, stems, suffix) in tests.items():
        for stem in stems:
            image, mask = (
                folder / "images" / f"{stem}{suffix}",
                folder / "masks" / f"{stem}{suffix}",
            )
            members[f"TestDataset/{name}/images/{stem}.png"] = _png(image, "RGB")
            members[f"TestDataset/{name}/masks/{stem}.png"] = _png(mask, "L")
    return _zip(members), {name: len(stems) for name, (_, stems, _) in tests.items()}


def test_pranet_layout_from_real_frames_through_gdown_keeps_layout_and_bytes(
    tmp_path: Path, server: LoopbackServer
) -> None:
    real = real_data_root()
    body, test_counts = pranet_archive(real)
    server.routes["/pranet.zip"] = FileRoute(body, content_type="application/zip")
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"PraNet TrainDataset: found 4 .*expected 1450"):
        download.download_pranet(root, url=server.url("/pranet.zip"), quiet=True)
    assert not root.exists() or list(root.iterdir()) == []
    with pytest.raises(DataError, match=r"test sets \['CVC-300', 'CVC-ColonDB', 'ETIS"):
        download.download_pranet(root, url=server.url("/pranet.zip"), train_count=4, quiet=True)
    target = download.download_pranet(
        root, url=server.url("/pranet.zip"), train_count=4, test_counts=test_counts, quiet=True
    )
    assert target == root / "PraNet"
    assert _digests(target) == _member_digests(body, "")
    with Image.open(target / "TestDataset" / "CVC-ClinicDB" / "images" / "14.png") as frame:
        assert frame.size == (384, 288) and frame.mode == "RGB"
