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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ssformer.data.decode import MASK_RULES, decode_image, exif_orientation, read_mask_grey
from ssformer.data.layout import PRANET_PROTOCOL, ignored_files, ignored_reason, image_files
from ssformer.errors import DataError
from ssformer.io.paths import why_not_folder
from ssformer.registry import IMAGE_DIR_NAMES, MASK_DIR_NAMES

__all__ = [
    "CheckReport",
    "Problem",
    "check_dataset",
    "dataset_folders",
    "empty_masks_problem",
    "refuse_empty_masks",
]

EMPTY_SHARE_REFUSED = 0.9
"""A folder in which at least this share of the masks is empty is refused (an error): its
masks are not what they seem (0/128 masks, 0/1 masks saved lossily, inverted files)."""

_EXIF_NOTE = (
    "images carry an EXIF rotation: training and evaluation use their pixels as stored (as the "
    "reference pipelines do), so their masks must be drawn on the stored pixels"
)


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
    notes: dict[str, list[Path]] = field(default_factory=dict)  # rule name -> files read by it

    def note_lines(self) -> list[str]:
        """One line per decoding rule other than plain grey that some files needed
        (:data:`ssformer.data.decode.MASK_RULES`, and EXIF-rotated images)."""
        lines = []
        for rule, paths in sorted(self.notes.items()):
            what = _EXIF_NOTE if rule == "exif" else f"masks {MASK_RULES[rule]}"
            lines.append(f"note: {len(paths)} {what} (e.g. {paths[0]})")
        return lines

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
        raise DataError(
            f"dataset folder {root} {why_not_folder(root)}; give the folder that holds "
            "images/ and masks/ (or train/val/test)"
        )

    def is_pair_dir(folder: Path) -> bool:
        return any((folder / n).is_dir() for n in IMAGE_DIR_NAMES) or any(
            (folder / n).is_dir() for n in MASK_DIR_NAMES
        )

    if is_pair_dir(root):
        return [root]
    found = [d for d in sorted(root.iterdir()) if d.is_dir() and is_pair_dir(d)]
    test_root = root / PRANET_PROTOCOL.test
    if test_root.is_dir():
        found += [d for d in sorted(test_root.iterdir()) if d.is_dir() and is_pair_dir(d)]
    if not found:
        raise DataError(
            f"{root} holds no images/ + masks/ folder (nor train/val/test or "
            "TrainDataset/TestDataset sub-folders with them)"
        )
    return found


def _by_stem(paths: list[Path]) -> dict[str, list[Path]]:
    by_stem: dict[str, list[Path]] = {}
    for path in paths:
        by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def _decode(path: Path, read: Callable[[Path], Any]) -> tuple[Any, str | None]:
    try:
        return read(path), None
    except DataError as error:
        cause = error.__cause__
        if cause is not None:
            return None, f"cannot be decoded ({type(cause).__name__}: {cause})"
        return None, str(error).replace(f"{path}: ", "", 1)


def _check_folder(folder: Path, report: CheckReport) -> None:
    images_dir = next((folder / n for n in IMAGE_DIR_NAMES if (folder / n).is_dir()), None)
    masks_dir = next((folder / n for n in MASK_DIR_NAMES if (folder / n).is_dir()), None)
    if images_dir is None or masks_dir is None:
        missing = "images" if images_dir is None else "masks"
        report.problems.append(Problem("error", folder, f"no {missing} folder"))
        return
    for folder_, kind in ((images_dir, "an image"), (masks_dir, "a mask")):
        for path in ignored_files(folder_):
            report.problems.append(
                Problem("warning", path, f"{ignored_reason(path)}; ignored (not read as {kind})")
            )
    images, masks = _by_stem(image_files(images_dir)), _by_stem(image_files(masks_dir))
    for files, kind in ((images, "image"), (masks, "mask")):
        for paths in files.values():
            if len(paths) > 1:
                names = ", ".join(p.name for p in paths)
                report.problems.append(
                    Problem("error", paths[0], f"several {kind}s share this stem: {names}")
                )
    for stem in sorted(images.keys() - masks.keys()):
        report.problems.append(Problem("error", images[stem][0], f"no mask in {masks_dir}"))
    for stem in sorted(masks.keys() - images.keys()):
        report.problems.append(Problem("error", masks[stem][0], f"no image in {images_dir}"))
    empty: dict[Path, int] = {}
    for stem in sorted(images.keys() & masks.keys()):
        _check_pair(images[stem][0], masks[stem][0], report, empty)
    problem = empty_masks_problem(masks_dir, len(images.keys() & masks.keys()), empty)
    if problem is not None:
        report.problems.append(problem)


def _why_empty(top: int) -> str:
    if top == 0:
        return "every pixel 0"
    return f"highest value {top}, none above the polyp threshold 128"


def empty_masks_problem(folder: Path, total: int, empty: dict[Path, int]) -> Problem | None:
    """An error when at least :data:`EMPTY_SHARE_REFUSED` of a folder's ``total`` masks are
    empty; ``empty`` maps each empty mask to its highest grey value (to say why)."""
    if not total or len(empty) < EMPTY_SHARE_REFUSED * total:
        return None
    listed = ", ".join(f"{p.name} ({_why_empty(top)})" for p, top in list(empty.items())[:5])
    tops = sorted(set(empty.values()))
    hint = (
        "masks stored as 0/128 (or another grey below 129) must be re-saved as 0/255"
        if any(0 < t <= 128 for t in tops)
        else "a 0/1 mask saved as a low-quality JPEG loses its polyp: save masks as PNG"
    )
    return Problem(
        "error",
        folder,
        f"{len(empty)} of {total} masks are empty (no pixel > 128: {listed}"
        f"{', ...' if len(empty) > 5 else ''}); training or scoring on them measures nothing: "
        f"{hint}, or point at the right folder",
    )


def refuse_empty_masks(mask_paths: list[Path], folder: Path) -> None:
    """Raise :class:`DataError` when at least :data:`EMPTY_SHARE_REFUSED` of the masks (of
    ``folder``) are empty, naming them and why (what ``ssformer val`` scores is checked
    as training checks its data)."""
    empty: dict[Path, int] = {}
    for path in mask_paths:
        grey, _ = read_mask_grey(path)
        if not (grey > 128).any():
            empty[path] = int(grey.max()) if grey.size else 0
    problem = empty_masks_problem(folder, len(mask_paths), empty)
    if problem is not None:
        raise DataError(f"{problem} (`ssformer check-data {folder.parent}` lists every mask)")


def _check_pair(
    image_path: Path, mask_path: Path, report: CheckReport, empty: dict[Path, int]
) -> None:
    image, image_error = _decode(image_path, decode_image)
    decoded, mask_error = _decode(mask_path, read_mask_grey)
    if image_error:
        report.problems.append(Problem("error", image_path, image_error))
    if mask_error:
        report.problems.append(Problem("error", mask_path, mask_error))
    if image is None or decoded is None:
        return
    mask, rule = decoded
    report.pairs += 1
    if rule not in ("grey", "grey-rgb"):
        report.notes.setdefault(rule, []).append(mask_path)
    if _stored_rotated(image_path):
        report.notes.setdefault("exif", []).append(image_path)
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
        top = int(mask.max()) if mask.size else 0
        empty[mask_path] = top
        report.problems.append(Problem("warning", mask_path, f"empty mask ({_why_empty(top)})"))
        return
    ambiguous = float(np.mean((mask > 32) & (mask < 224)))
    if ambiguous > 0.05:
        report.problems.append(
            Problem(
                "warning",
                mask_path,
                f"{ambiguous:.0%} of the pixels are neither near 0 nor near 255: is this a mask?",
            )
        )


def _stored_rotated(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            return exif_orientation(img) != 1
    except OSError:
        return False


def check_dataset(root: Path) -> CheckReport:
    """Check every image/mask folder under ``root`` (see the module docstring)."""
    root = Path(root)
    report = CheckReport(root=root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for folder in dataset_folders(root):
            _check_folder(folder, report)
    return report
