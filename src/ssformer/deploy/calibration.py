"""int8 calibration images and the mask agreement of a quantised model with its fp32 source.

Calibration images come from ``--calibration DIR`` (image files in ``DIR`` or in its
``images/`` folder) or from the training images of a config's protocol (the ones
``ssformer train --cfg F`` trains on). They are prepared as the evaluation pipeline prepares
an input (resize to the export size, ImageNet normalisation). A spread-out selection of the
files is used (every k-th in name order), and as many of the remaining files as possible (up to
:data:`DICE_IMAGES`) are held out to compare the int8 masks with the fp32 ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ssformer.data.decode import decode_image
from ssformer.data.layout import image_files
from ssformer.data.transforms import eval_image_tensor
from ssformer.engine.evaluate import polyp_probability
from ssformer.errors import DataError, ExportError
from ssformer.registry import IMAGE_DIR_NAMES

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = ["DICE_IMAGES", "CalibrationSet", "calibration_set", "mask_dice"]

DICE_IMAGES = 32


@dataclass
class CalibrationSet:
    """Normalised ``[1, 3, H, W]`` float32 arrays to calibrate on and to compare masks on
    (``held_out`` empty: compare on the calibration images), and where they came from."""

    source: str
    calibrate: list[np.ndarray]
    held_out: list[np.ndarray]

    @property
    def dice_images(self) -> list[np.ndarray]:
        return self.held_out or self.calibrate


def _folder_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"calibration folder {folder} does not exist")
    files = image_files(folder)
    for name in IMAGE_DIR_NAMES:
        if not files and (folder / name).is_dir():
            files = image_files(folder / name)
    if not files:
        raise DataError(f"calibration folder {folder} holds no images (nor its images/ folder)")
    return files


def _config_images(config: Config) -> list[Path]:
    from ssformer.data.datasets import innermost
    from ssformer.data.protocols import build_datasets

    train = build_datasets(config).train
    if train is None:
        raise DataError(f"{config.source} has no training images to calibrate on")
    base, indices = innermost(train)
    return [base.pairs[index][0] for index in indices]


def _read(path: Path, size: tuple[int, int]) -> np.ndarray:
    rgb = decode_image(path)  # the one decoding rule (raises a DataError naming the file)
    return eval_image_tensor(rgb, size)[None].numpy()


def calibration_set(
    size: Sequence[int],
    count: int,
    *,
    folder: Path | None = None,
    config: Config | None = None,
) -> CalibrationSet:
    """``count`` calibration images (fewer if there are fewer) from ``folder`` or, without
    one, from ``config``'s training images, at ``size``; plus up to :data:`DICE_IMAGES`
    held-out ones."""
    if folder is not None:
        files, source = _folder_images(Path(folder)), str(folder)
    elif config is not None:
        files, source = _config_images(config), f"training images of {config.source}"
    else:
        raise ExportError(
            "int8 needs calibration images: give a folder of training images, e.g. "
            "`ssformer export --weights best.pth --format openvino --precision int8 "
            "--calibration data/Kvasir-SEG/train/images`, or --cfg CONFIG to use its "
            "training images"
        )
    if count < 1:
        raise ExportError(f"--calibration-images must be positive, got {count}")
    step = max(1, len(files) // count)
    chosen = files[::step][:count]
    taken = set(chosen)
    rest = [path for path in files if path not in taken]
    rest = rest[:: max(1, len(rest) // DICE_IMAGES)][:DICE_IMAGES] if rest else []
    shape = (int(size[0]), int(size[1]))
    return CalibrationSet(
        source=source,
        calibrate=[_read(path, shape) for path in chosen],
        held_out=[_read(path, shape) for path in rest],
    )


@torch.inference_mode()
def mask_dice(
    reference: Callable[[torch.Tensor], torch.Tensor],
    candidate: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[np.ndarray],
) -> float:
    """Mean over ``images`` of the Dice between the polyp masks (probability > 0.5) of
    ``candidate`` and of ``reference``; 1 for an image where both masks are empty."""
    scores = []
    for array in images:
        x = torch.from_numpy(array)
        expected = polyp_probability(reference(x)) > 0.5
        got = polyp_probability(candidate(x)) > 0.5
        total = int(expected.sum()) + int(got.sum())
        scores.append(1.0 if total == 0 else 2.0 * int((expected & got).sum()) / total)
    return float(np.mean(scores))
