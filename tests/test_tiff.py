"""TIFFs in the form of the original CVC-ClinicDB release (3 samples per pixel declared with a
BlackIsZero photometric tag, which Pillow refuses) go through the one decoding rule: the real
frames read as the same pixels as their PNG copies, and TIFFs written here in the same form read
as the pixels written."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from realdata import real_data_root

from ssformer.data.check import check_dataset
from ssformer.data.datasets import PolypDataset
from ssformer.data.decode import decode_image, decode_mask_grey, read_image_size, read_mask_grey
from ssformer.errors import DataError

_SHORT, _LONG = 3, 4


def write_blackiszero_tiff(path: Path, pixels: np.ndarray) -> Path:
    """An uncompressed little-endian TIFF of ``pixels`` (``[H, W]`` or ``[H, W, S]``, uint8 or
    uint16) with PhotometricInterpretation = BlackIsZero whatever the sample count and no
    ExtraSamples tag: the form of the original CVC-ClinicDB frames."""
    height, width = pixels.shape[:2]
    samples = 1 if pixels.ndim == 2 else pixels.shape[2]
    bits = pixels.dtype.itemsize * 8
    data = np.ascontiguousarray(pixels.astype(pixels.dtype.newbyteorder("<"))).tobytes()
    bits_offset = 8 + len(data)  # the BitsPerSample values (one per sample) follow the pixels
    bits_bytes = struct.pack(f"<{samples}H", *([bits] * samples))
    ifd_offset = bits_offset + len(bits_bytes) + (len(bits_bytes) % 2)
    bits_value = bits if samples == 1 else bits_offset
    entries = [
        (256, _LONG, 1, width),
        (257, _LONG, 1, height),
        (258, _SHORT, samples, bits_value),
        (259, _SHORT, 1, 1),  # no compression
        (262, _SHORT, 1, 1),  # BlackIsZero
        (273, _LONG, 1, 8),  # one strip, right after the header
        (277, _SHORT, 1, samples),
        (278, _LONG, 1, height),
        (279, _LONG, 1, len(data)),
        (284, _SHORT, 1, 1),  # contiguous samples
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if kind == _SHORT and count == 1 else None
        ifd += struct.pack("<HHI", tag, kind, count) + (packed or struct.pack("<I", value))
    ifd += struct.pack("<I", 0)
    padding = b"\0" * (len(bits_bytes) % 2)
    path.write_bytes(b"II*\0" + struct.pack("<I", ifd_offset) + data + bits_bytes + padding + ifd)
    return path


def test_pillow_refuses_this_form_so_the_test_means_something(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    path = write_blackiszero_tiff(tmp_path / "frame.tif", rgb)
    with pytest.raises(OSError):
        Image.open(path).load()


def test_written_tiffs_read_as_the_pixels_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (18, 30, 3), dtype=np.uint8)
    grey = np.where(rng.random((18, 30)) > 0.5, 255, 0).astype(np.uint8)
    image = write_blackiszero_tiff(tmp_path / "image.tif", rgb)
    mask = write_blackiszero_tiff(tmp_path / "mask.tif", grey)
    np.testing.assert_array_equal(decode_image(image), rgb)
    np.testing.assert_array_equal(decode_image(image, (9, 15)), rgb)  # no draft for TIFF
    assert read_image_size(image) == (18, 30)
    decoded, rule = read_mask_grey(mask)
    np.testing.assert_array_equal(decoded, grey)
    assert rule == "grey"
    # the same pixels declared as RGB colour (a mask saved by a viewer): the colour-mask rules
    coloured = write_blackiszero_tiff(tmp_path / "mask3.tif", np.stack([grey] * 3, axis=-1))
    np.testing.assert_array_equal(decode_mask_grey(coloured), grey)


def test_sixteen_bit_tiffs_give_their_high_byte(tmp_path: Path) -> None:
    rgb16 = np.random.default_rng(2).integers(0, 65536, (8, 10, 3), dtype=np.uint16)
    path = write_blackiszero_tiff(tmp_path / "deep.tif", rgb16)
    np.testing.assert_array_equal(decode_image(path), (rgb16 >> 8).astype(np.uint8))


def test_a_truncated_tiff_is_refused_naming_the_file(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    path = write_blackiszero_tiff(tmp_path / "broken.tif", rgb)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"broken\.tif"):
        decode_image(path)
    two_samples = write_blackiszero_tiff(tmp_path / "two.tif", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(DataError, match=r"two\.tif.*1, 3 or 4 samples"):
        decode_image(two_samples)


def test_a_folder_of_such_tiffs_is_a_dataset(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for folder in ("images", "masks"):
        (tmp_path / "tiffs" / folder).mkdir(parents=True)
    for stem in ("1", "2"):
        rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        grey = np.zeros((24, 32), np.uint8)
        grey[6:18, 8:20] = 255
        write_blackiszero_tiff(tmp_path / "tiffs" / "images" / f"{stem}.tif", rgb)
        write_blackiszero_tiff(tmp_path / "tiffs" / "masks" / f"{stem}.tif", grey)
    report = check_dataset(tmp_path / "tiffs")
    assert report.pairs == 2
    assert not [p for p in report.problems if p.severity == "error"], report.problems
    dataset = PolypDataset(tmp_path / "tiffs", image_size=16)
    assert dataset.original_size(0) == (24, 32)
    item = dataset[1]
    assert tuple(item["image"].shape) == (3, 16, 16)
    assert int(item["mask"].sum()) > 0


@pytest.mark.parametrize("stem", ["4", "7"])
def test_original_cvc_tiffs_equal_their_png_copies(stem: str) -> None:
    root = real_data_root()
    sample = root / "CVC-ClinicDB-tif-sample"
    if not sample.is_dir():
        pytest.skip(f"{sample} is absent: the two original CVC-ClinicDB TIFF frames live there")
    image_tif, mask_tif = (
        sample / "Original" / f"{stem}.tif",
        sample / "Ground Truth" / f"{stem}.tif",
    )
    image_png = root / "CVC-ClinicDB" / "images" / f"{stem}.png"
    mask_png = root / "CVC-ClinicDB" / "masks" / f"{stem}.png"
    with pytest.raises(OSError):  # Pillow refuses the original frame: the tifffile path is used
        Image.open(image_tif).load()
    from_tif = decode_image(image_tif)
    assert from_tif.shape == (288, 384, 3)
    np.testing.assert_array_equal(from_tif, decode_image(image_png))
    np.testing.assert_array_equal(decode_mask_grey(mask_tif), decode_mask_grey(mask_png))
    assert read_image_size(image_tif) == (288, 384)


def test_the_original_tiff_release_layout_is_a_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    """``Original/`` + ``Ground Truth/`` of TIFFs, as the CVC-ClinicDB release ships them."""
    sample = real_data_root() / "CVC-ClinicDB-tif-sample"
    if not sample.is_dir():
        pytest.skip(f"{sample} is absent: the two original CVC-ClinicDB TIFF frames live there")
    from ssformer.cli import main

    assert main(["check-data", str(sample)]) == 0
    assert "2 readable pairs, 0 error(s)" in capsys.readouterr().out
    dataset = PolypDataset(sample, image_size=32, cache=False)  # never write into the data
    assert [p[0].name for p in dataset.pairs] == ["4.tif", "7.tif"]
    assert tuple(dataset[0]["image"].shape) == (3, 32, 32)
    assert dataset.original_size(1) == (288, 384)
    np.testing.assert_array_equal(
        dataset.original_mask(0),
        decode_mask_grey(real_data_root() / "CVC-ClinicDB/masks/4.png"),
    )
