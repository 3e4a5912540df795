"""Real polyp frames for the tests: the folder named by ``SSFORMER_REAL_DATA``.

The folder holds ``Kvasir-SEG/{images,masks}`` (the official release: RGB JPEG images in many
sizes, RGB JPEG masks), ``CVC-ClinicDB/{images,masks}`` (384x288 PNG) and, optionally,
``CVC-ClinicDB-tif-sample/`` (frames of the original TIFF release) and ``splits/`` (PraNet's id
lists). `.ci/run` points it at the project's shared copy; a user with the data sets can do the
same. Without it, every test that asks for real frames is skipped and says why. The files are
only read here, never copied into the repository; tests copy the few they need into ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ENV_VAR = "SSFORMER_REAL_DATA"


def real_data_root() -> Path:
    """The real-data folder, or a skip that names the variable and what it must hold."""
    value = os.environ.get(ENV_VAR, "")
    if not value:
        pytest.skip(
            f"{ENV_VAR} is not set: point it at a folder holding Kvasir-SEG/ and CVC-ClinicDB/ "
            "(each with images/ and masks/) to run the tests on real frames"
        )
    root = Path(value)
    missing = [name for name in ("Kvasir-SEG", "CVC-ClinicDB") if not (root / name).is_dir()]
    if missing:
        pytest.skip(f"{ENV_VAR}={value} has no {', '.join(missing)}/ folder")
    return root


def real_subset(dataset: str, stems: list[str], target: Path) -> Path:
    """Copy the named pairs of a real data set into ``target/{images,masks}``; returns target."""
    source = real_data_root() / dataset
    for folder in ("images", "masks"):
        (target / folder).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            matches = sorted((source / folder).glob(f"{stem}.*"))
            if len(matches) != 1:
                raise FileNotFoundError(f"{source / folder}: expected one file named {stem}.*")
            shutil.copy2(matches[0], target / folder / matches[0].name)
    return target


# A Kvasir-SEG subset of several sizes (JPEG images and JPEG masks) and a CVC-ClinicDB one (PNG).
KVASIR_STEMS = [
    "cju0qkwl35piu0993l0dewei2",
    "cju0qoxqj9q6s0835b43399p4",
    "cju0roawvklrq0799vmjorwfv",
    "cju0rx1idathl0835detmsp84",
    "cju0s2a9ekvms080138tjjpxr",
    "cju0s690hkp960855tjuaqvv0",
    "cju0sr5ghl0nd08789uzf1raf",
    "cju0sxqiclckk08551ycbwhno",
    "cju0t4oil7vzk099370nun5h9",
    "cju0qx73cjw570799j4n5cjze",
    "cju0u2g7pmnux0801vkk47ivj",
    "cju0u82z3cuma0835wlxrnrjv",
]
CVC_STEMS = [str(n) for n in (1, 4, 7, 25, 60, 100, 150, 200, 300, 400, 500, 612)]
