"""The dependencies as a plain ``pip install`` gets them: the declared ranges hold, and the
library behaviours the package leans on are the same under OpenCV 4 and 5, Pillow 9..13 and
NumPy 1.x..2.x (``make test-newest`` runs this file under the newest releases)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import pytest
from packaging.requirements import Requirement
from PIL import Image
from realdata import real_data_root

from ssformer.data.decode import decode_image, decode_mask


def _declared() -> list[Requirement]:
    """The installed package's own requirements, the optional extras left out."""
    requirements = [Requirement(line) for line in metadata.requires("ssformer") or []]
    return [r for r in requirements if r.marker is None or "extra" not in str(r.marker)]


def test_installed_versions_satisfy_the_declared_ranges() -> None:
    outside = []
    for requirement in _declared():
        installed = metadata.version(requirement.name)
        if not requirement.specifier.contains(installed, prereleases=True):
            outside.append(f"{requirement.name} {installed} (declared {requirement.specifier})")
    assert not outside, "installed outside the declared ranges: " + ", ".join(outside)


def _real_frames() -> list[Path]:
    root = real_data_root()
    kvasir = sorted((root / "Kvasir-SEG" / "images").glob("*.jpg"))
    return kvasir[:60:6] + sorted((root / "CVC-ClinicDB" / "images").glob("*.png"))[:3]


def test_pillow_and_opencv_decode_real_frames_alike() -> None:
    """Images are read through Pillow, video frames through OpenCV: both must give the same
    pixels for the same JPEG or PNG, or a frame would be segmented differently by source."""
    for path in _real_frames():
        ours = decode_image(path)
        bgr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
        assert bgr is not None, path
        theirs = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        assert ours.shape == theirs.shape, path.name
        assert np.array_equal(ours, theirs), (
            f"{path.name}: Pillow {Image.__version__} and OpenCV {cv2.__version__} disagree on "
            f"{int((ours != theirs).any(axis=-1).sum())} pixels"
        )


def test_real_jpeg_masks_binarise_alike_through_either_decoder() -> None:
    """The mask rule (grey > 128 is polyp) on Pillow's decode equals the same rule applied to
    OpenCV's decode of the RGB JPEG masks Kvasir-SEG ships."""
    masks = sorted((real_data_root() / "Kvasir-SEG" / "masks").glob("*.jpg"))[:60:6]
    for path in masks:
        ours = decode_mask(path)
        grey = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_GRAYSCALE)
        disagree = float((ours != (grey > 128)).mean())
        # grey conversion differs by rounding at the 128 edge only: a few edge pixels at most
        assert disagree < 1e-3, f"{path.name}: {disagree:.2%} of the pixels differ"


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (64, 48)])
def test_opencv_point_lists_are_read_in_either_layout(size: tuple[int, int]) -> None:
    """``cv2.findNonZero`` returns [N, 1, 2] in OpenCV 4 and [N, 2] in OpenCV 5; the weighted
    F-measure reads (x, y) from either after ``reshape(-1, 2)``, row by row."""
    rng = np.random.default_rng(sum(size))
    mask = (rng.random(size) > 0.6).astype(np.uint8)
    mask[0, 0] = 1
    points = cv2.findNonZero(mask)
    assert points is not None and points.ndim in (2, 3)
    xy = points.reshape(-1, 2)
    rows, cols = np.nonzero(mask)
    assert np.array_equal(xy[:, 0], cols) and np.array_equal(xy[:, 1], rows)
