"""Check a dataset folder before training: every problem named with its file.

Finds unpaired images or masks, files that do not decode completely (a full ``load()``, which
catches truncated JPEGs that ``Image.verify()`` lets through), image/mask size mismatches,
masks that are not binary-looking, and empty masks (a warning: real datasets rarely have
polyp-free frames, so one usually means a broken mask). Works on one ``images/`` + ``masks/``
folder, a split folder (``train``/``val``/``test``) and the PraNet layout (``TrainDataset`` +
``TestDataset/<set>``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ssformer.errors import DataError
from ssformer.registry import IMAGE_DIR_NAMES, IMAGE_SUFFIXES, MASK_DIR_NAMES

__all__ = ["CheckReport", "Problem", "check_dataset", "dataset_folders"]


@dataclass(frozen=True)
class Problem:
    """One finding: ``severity`` is ``"error"`` or ``"warning"``."""

    severity: str
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.severity.upper()} {self.path}: {self.message}"


@dataclass
class CheckReport:
    """All findings for a dataset; ``ok`` is False when there is at least one error."""

    root: Path
    pairs: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_if_broken(self) -> None:
        """Raise :class:`DataError` naming the first errors, if any."""
        if not self.ok:
            listed = "; ".join(str(p) for p in self.errors[:5])
            more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
            raise DataError(
                f"dataset {self.root} is broken: {listed}{more}; run "
                f"`ssformer check-data {self.root}` for the full list"
            )


def dataset_folders(root: Path) -> list[Path]:
    """The ``images``/``masks`` folders' parents under ``root`` (itself, a split or PraNet)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist")

    def is_pair_dir(folder: Path) -> bool:
        return any((folder / n).is_dir() for n in IMAGE_DIR_NAMES) or any(
            (folder / n).is_dir() for n in MASK_DIR_NAMES
        )

    if is_pair_dir(root):
        return [root]
    found = [d for d in sorted(root.iterdir()) if d.is_dir() and is_pair_dir(d)]
    test_root = root / "TestDataset"
    if test_root.is_dir():
        found += [d for d in sorted(test_root.iterdir()) if d.is_dir() and is_pair_dir(d)]
    if not found:
        raise DataError(
            f"{root} holds no images/ + masks/ folder (nor train/val/test or "
            "TrainDataset/TestDataset sub-folders with them)"
        )
    return found


def _files(folder: Path) -> dict[str, list[Path]]:
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def _decode(path: Path, mode: str) -> tuple[np.ndarray | None, str | None]:
    try:
        with Image.open(path) as img:
            img.load()  # a full decode: catches truncated files
            return np.asarray(img.convert(mode)), None
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBomb...
        return None, f"cannot be decoded ({type(error).__name__}: {error})"


def _check_folder(folder: Path, report: CheckReport) -> None:
    images_dir = next((folder / n for n in IMAGE_DIR_NAMES if (folder / n).is_dir()), None)
    masks_dir = next((folder / n for n in MASK_DIR_NAMES if (folder / n).is_dir()), None)
    if images_dir is None or masks_dir is None:
        missing = "images" if images_dir is None else "masks"
        report.problems.append(Problem("error", folder, f"no {missing} folder"))
        return
    images, masks = _files(images_dir), _files(masks_dir)
    for files, kind in ((images, "image"), (masks, "mask")):
        for paths in files.values():
            for path in paths:
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    report.problems.append(
                        Problem("warning", path, f"not an image file; ignored as a {kind}")
                    )
            if len(paths) > 1:
                names = ", ".join(p.name for p in paths)
                report.problems.append(
                    Problem("error", paths[0], f"several {kind}s share this stem: {names}")
                )
    for stem in sorted(images.keys() - masks.keys()):
        report.problems.append(Problem("error", images[stem][0], f"no mask in {masks_dir}"))
    for stem in sorted(masks.keys() - images.keys()):
        report.problems.append(Problem("error", masks[stem][0], f"no image in {images_dir}"))
    for stem in sorted(images.keys() & masks.keys()):
        image_path, mask_path = images[stem][0], masks[stem][0]
        image, image_error = _decode(image_path, "RGB")
        mask, mask_error = _decode(mask_path, "L")
        if image_error:
            report.problems.append(Problem("error", image_path, image_error))
        if mask_error:
            report.problems.append(Problem("error", mask_path, mask_error))
        if image is None or mask is None:
            continue
        report.pairs += 1
        if image.shape[:2] != mask.shape:
            report.problems.append(
                Problem(
                    "error",
                    mask_path,
                    f"size {mask.shape[1]}x{mask.shape[0]} differs from its image "
                    f"{image_path.name} ({image.shape[1]}x{image.shape[0]})",
                )
            )
        foreground = mask > 128
        if not foreground.any():
            report.problems.append(Problem("warning", mask_path, "empty mask (no pixel > 128)"))
        else:
            ambiguous = float(np.mean((mask > 32) & (mask < 224)))
            if ambiguous > 0.05:
                report.problems.append(
                    Problem(
                        "warning",
                        mask_path,
                        f"{ambiguous:.0%} of the pixels are neither near 0 nor near 255: "
                        "is this a mask?",
                    )
                )


def check_dataset(root: Path) -> CheckReport:
    """Check every image/mask folder under ``root`` (see the module docstring)."""
    root = Path(root)
    report = CheckReport(root=root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for folder in dataset_folders(root):
            _check_folder(folder, report)
    return report
