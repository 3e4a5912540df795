"""The normalised on-disk layout of each data set, and checks that a folder is complete.

Kvasir-SEG and CVC-ClinicDB become ``<root>/images`` and ``<root>/masks`` with one mask per image
under the same file stem (the layout the reproduction study's notebook builds by hand). The PraNet
benchmark keeps its own layout (``TrainDataset/{image(s),mask(s)}``,
``TestDataset/<set>/{images,masks}``) and only its counts are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ssformer.errors import DataError
from ssformer.registry import IMAGE_DIR_NAMES, IMAGE_SUFFIXES

_IGNORED_DIRS = frozenset({"__MACOSX"})


@dataclass(frozen=True)
class PairedLayout:
    """Where an archive keeps its image and mask folders, and how many pairs it must hold.

    ``images`` and ``masks`` are folder paths relative to some folder of the extracted archive
    (a top-level wrapper folder, if any, is found by :func:`find_folder`).
    """

    name: str
    folder: str
    images: tuple[str, ...]
    masks: tuple[str, ...]
    count: int


KVASIR_SEG = PairedLayout(
    name="Kvasir-SEG",
    folder="Kvasir-SEG",
    images=("images",),
    masks=("masks",),
    count=1000,
)
CVC_CLINICDB = PairedLayout(
    name="CVC-ClinicDB",
    folder="CVC-ClinicDB",
    images=("PNG", "Original"),
    masks=("PNG", "Ground Truth"),
    count=612,
)


@dataclass(frozen=True)
class PraNetLayout:
    """The PraNet benchmark: one training folder and five test sets, with their sizes."""

    folder: str = "PraNet"
    train_count: int = 1450
    test_counts: Mapping[str, int] = field(
        default_factory=lambda: {
            "Kvasir": 100,
            "CVC-ClinicDB": 62,
            "CVC-ColonDB": 380,
            "ETIS-LaribPolypDB": 196,
            "CVC-300": 60,
        }
    )


PRANET = PraNetLayout()


@dataclass(frozen=True)
class Protocol:
    """Where an evaluation protocol's data lies under ``DATASET.ROOT``; training, ``val``, the
    sweep's estimate, ``check-data`` and the report's predictions grid all ask it.

    ``split`` (the reproduction study): ``ROOT/{train,val,test}/{images,masks}``.
    ``pranet`` (the SSFormer paper): ``ROOT/TrainDataset/{image(s),mask(s)}`` (its validation
    set is a held-out part of it) and ``ROOT/TestDataset/<set>/{images,masks}`` per test set.
    """

    name: str
    train: str
    test: str
    val: str | None = None
    test_sets: tuple[str, ...] = ()
    """The named test sets under ``test`` (none: ``test`` is the test set itself)."""

    def train_image_folders(self, root: Path) -> tuple[Path, ...]:
        """Where the training images may lie (the first that exists holds them)."""
        return tuple(Path(root) / self.train / name for name in IMAGE_DIR_NAMES[:2])

    def test_set_folder(self, root: Path, test_set: str) -> Path:
        """The folder of one test set (its name matched without regard to case), or the
        test folder itself for a protocol without named test sets."""
        if not self.test_sets:
            return Path(root) / self.test
        names = [name for name in self.test_sets if name.lower() == test_set.lower()]
        return Path(root) / self.test / (names[0] if names else test_set)


SPLIT_PROTOCOL = Protocol("split", train="train", val="val", test="test")
PRANET_PROTOCOL = Protocol(
    "pranet", train="TrainDataset", test="TestDataset", test_sets=tuple(PRANET.test_counts)
)
PROTOCOLS: Mapping[str, Protocol] = {p.name: p for p in (SPLIT_PROTOCOL, PRANET_PROTOCOL)}
"""``DATASET.PROTOCOL`` -> its folders (the names of :data:`ssformer.registry.PROTOCOLS`)."""


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``: the one rule of which files count, for the
    loaders, ``check-data`` and ``split`` alike. Hidden files (``.DS_Store``) and files without
    an image suffix (:data:`~ssformer.registry.IMAGE_SUFFIXES`; ``Thumbs.db``) do not."""
    return sorted(path for path in folder.iterdir() if _counts(path))


def ignored_files(folder: Path) -> list[Path]:
    """The visible files and sub-folders of ``folder`` that :func:`image_files` leaves out
    (:func:`ignored_reason` says why, for the warnings of ``check-data`` and ``split``)."""
    return sorted(
        path
        for path in folder.iterdir()
        if (path.is_file() or path.is_dir()) and not path.name.startswith(".") and not _counts(path)
    )


_OTHER_IMAGE_FORMATS = {".webp": "WebP", ".gif": "GIF", ".jp2": "JPEG 2000", ".heic": "HEIC"}


def ignored_reason(path: Path) -> str:
    """Why :func:`image_files` leaves ``path`` out: a sub-folder (pairs must sit directly in
    the images and masks folders), an image format the loaders do not read, or not an image."""
    if path.is_dir():
        return (
            f"a folder inside {path.parent.name}/: its files are not read (pairs must sit "
            f"directly in {path.parent.name}/; move them up, or point at {path} itself)"
        )
    kind = _OTHER_IMAGE_FORMATS.get(path.suffix.lower())
    if kind is not None:
        return (
            f"a {kind} image, which the loaders do not read ({' '.join(IMAGE_SUFFIXES)}): "
            "convert it to PNG"
        )
    return "not an image file"


def _counts(path: Path) -> bool:
    return (
        path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
    )


def count_pairs(images: Path, masks: Path, *, what: str) -> int:
    """Number of image/mask pairs; raise :class:`DataError` if a file has no partner."""
    for folder in (images, masks):
        if not folder.is_dir():
            raise DataError(f"{what}: folder {folder} is missing.")
    image_stems = {path.stem for path in image_files(images)}
    mask_stems = {path.stem for path in image_files(masks)}
    if image_stems != mask_stems:
        lonely_images = sorted(image_stems - mask_stems)[:5]
        lonely_masks = sorted(mask_stems - image_stems)[:5]
        raise DataError(
            f"{what}: {len(image_stems)} images in {images} and {len(mask_stems)} masks in "
            f"{masks} do not pair up by file name (images without mask: {lonely_images}, "
            f"masks without image: {lonely_masks})."
        )
    return len(image_stems)


def check_count(found: int, expected: int | None, *, what: str, where: Path) -> None:
    """Raise :class:`DataError` naming ``found`` and ``expected`` when they differ."""
    if expected is not None and found != expected:
        raise DataError(
            f"{what}: found {found} image/mask pairs in {where}, expected {expected}. The "
            "download is incomplete or a different version; delete it and download again."
        )


def verify_paired(root: Path, expected: int | None, *, what: str) -> int:
    """Check ``root/images`` and ``root/masks`` pair up and hold ``expected`` pairs."""
    found = count_pairs(root / "images", root / "masks", what=what)
    check_count(found, expected, what=what, where=root)
    return found


def find_folder(root: Path, parts: tuple[str, ...], *, max_depth: int = 3) -> Path | None:
    """The shallowest folder under ``root`` whose path ends with ``parts``, if any."""
    frontier = [root]
    for _ in range(max_depth + 1):
        for folder in frontier:
            candidate = folder.joinpath(*parts)
            if candidate.is_dir():
                return candidate
        frontier = [
            child
            for folder in frontier
            for child in sorted(folder.iterdir())
            if child.is_dir() and child.name not in _IGNORED_DIRS
        ]
    return None


def arrange_paired(extracted: Path, dataset: Path, layout: PairedLayout) -> None:
    """Move the image and mask folders of an extracted archive to ``dataset/{images,masks}``.

    ``dataset`` must not exist yet; it is created inside the same staging area.
    """
    images = find_folder(extracted, layout.images)
    masks = find_folder(extracted, layout.masks)
    if images is None or masks is None:
        wanted = "/".join(layout.images if images is None else layout.masks)
        raise DataError(
            f"{layout.name}: the archive has no folder '{wanted}' (top level holds "
            f"{sorted(p.name for p in extracted.iterdir())}); it is not the expected release."
        )
    dataset.mkdir()
    images.rename(dataset / "images")
    masks.rename(dataset / "masks")


def _pick(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_dir():
            return folder / name
    return folder / names[0]


def pranet_counts(root: Path) -> dict[str, int]:
    """Pair counts of the PraNet benchmark in ``root``: ``TrainDataset`` and each test set."""
    train = root / PRANET_PROTOCOL.train
    counts = {
        PRANET_PROTOCOL.train: count_pairs(
            _pick(train, ("image", "images")),
            _pick(train, ("mask", "masks")),
            what="PraNet TrainDataset",
        )
    }
    test_root = root / PRANET_PROTOCOL.test
    if not test_root.is_dir():
        raise DataError(f"PraNet: folder {test_root} is missing.")
    for test_set in sorted(p for p in test_root.iterdir() if p.is_dir()):
        counts[test_set.name] = count_pairs(
            _pick(test_set, ("images", "image")),
            _pick(test_set, ("masks", "mask")),
            what=f"PraNet test set {test_set.name}",
        )
    return counts


def verify_pranet(
    root: Path,
    train_count: int | None = PRANET.train_count,
    test_counts: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Check the PraNet benchmark in ``root`` against the published sizes; return the counts.

    ``test_counts`` defaults to the five published test sets; ``train_count=None`` skips the
    training-set count (tests use small archives).
    """
    expected_tests = dict(PRANET.test_counts if test_counts is None else test_counts)
    counts = pranet_counts(root)
    check_count(counts[PRANET_PROTOCOL.train], train_count, what="PraNet TrainDataset", where=root)
    missing = sorted(set(expected_tests) - set(counts))
    if missing:
        raise DataError(
            f"PraNet: test sets {missing} are missing from {root / PRANET_PROTOCOL.test} (found "
            f"{sorted(set(counts) - {PRANET_PROTOCOL.train})})."
        )
    for name, expected in expected_tests.items():
        check_count(counts[name], expected, what=f"PraNet test set {name}", where=root)
    return counts


def find_pranet_root(extracted: Path) -> Path:
    """The folder of an extracted archive that holds ``TrainDataset`` and ``TestDataset``."""
    train = find_folder(extracted, (PRANET_PROTOCOL.train,))
    if train is None or not (train.parent / PRANET_PROTOCOL.test).is_dir():
        raise DataError(
            "PraNet: the archive has no folder holding both TrainDataset and TestDataset (top "
            f"level holds {sorted(p.name for p in extracted.iterdir())})."
        )
    return train.parent
