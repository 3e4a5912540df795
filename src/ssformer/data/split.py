"""Train/val/test split of an ``images/`` + ``masks/`` dataset, identical to ``split-folders``.

The reproduction study split Kvasir-SEG and CVC-ClinicDB with ``splitfolders.ratio(input,
output, seed=1337, ratio=(.8, .1, .1))``. That function treats each sub-folder of ``input`` as a
class and, per class folder, re-seeds Python's :mod:`random` with ``seed``, lists the folder's
non-hidden files, sorts them (as paths, which within one folder is the order of their names as
strings: ``"10.png" < "2.png"``), shuffles them with :func:`random.shuffle` and cuts the list at
``int(r0 * n)`` and ``int(r0 * n) + int(r1 * n)``. Images and masks with corresponding sorted names
therefore get the same permutation. This module reimplements that rule (the package does not
depend on ``split-folders``; the tests compare against it) and keeps each mask with its image.

Unlike the seed's notebook it never moves or deletes the originals: files are hard-linked when
source and output share a file system, copied otherwise. The output folder holds a manifest,
``split.json``, with the parameters, the file lists and the SHA-256 of every file; a second run
with the same parameters compares the source with the manifest: nothing to do when both agree,
files changed in the source are placed again (each named), pairs added to or removed from the
source are refused by name (they would change every split's lists); a run with other parameters
is refused. Training checks the manifest too (:func:`stale_split_problems`).

Default output folder: ``ROOT`` itself, as in the study (``splitfolders.ratio('Kvasir-SEG',
output='Kvasir-SEG', ...)``): ``ROOT/{train,val,test}`` beside ``ROOT/images`` and ``ROOT/masks``,
which stay. The seed's configs (``DATASET.ROOT: data/Kvasir-SEG``) then work unmodified. The
manifest records the source relative to the output folder, so the pair can be moved together.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ssformer.data.identity import identify_dataset
from ssformer.data.layout import SPLIT_PROTOCOL, ignored_files, ignored_reason, image_files
from ssformer.errors import DataError
from ssformer.io.atomic import write_text_atomic
from ssformer.io.paths import why_not_folder
from ssformer.registry import (
    IMAGE_DIR_NAMES,
    IMAGE_SUFFIXES,
    MASK_DIR_NAMES,
    STUDY_SPLIT_RATIO,
    STUDY_SPLIT_SEED,
)

__all__ = [
    "MANIFEST_NAME",
    "SPLIT_NAMES",
    "SourceChanges",
    "SplitResult",
    "check_split",
    "default_output",
    "find_pair_dirs",
    "split_dataset",
    "split_indices",
    "splitfolders_order",
    "stale_split_problems",
]

SPLIT_NAMES = (SPLIT_PROTOCOL.train, str(SPLIT_PROTOCOL.val), SPLIT_PROTOCOL.test)
MANIFEST_NAME = "split.json"
MANIFEST_VERSION = 1
IN_PROGRESS_NAME = ".split-in-progress.json"


@dataclass
class SplitResult:
    """What :func:`split_dataset` did: the output folder, the file names per split, and whether
    the split already existed (``created`` is False then and nothing was written)."""

    output: Path
    files: dict[str, list[str]]
    created: bool
    linked: int = 0
    copied: int = 0
    problems: list[str] = field(default_factory=list)
    updated: list[Path] = field(default_factory=list)


def find_pair_dirs(root: Path) -> tuple[Path, Path]:
    """Return ``(images_dir, masks_dir)`` of ``root``, accepting the usual folder names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"dataset folder {root} {why_not_folder(root)}; give the folder that holds "
            "images/ and masks/"
        )
    images = next((root / n for n in IMAGE_DIR_NAMES if (root / n).is_dir()), None)
    masks = next((root / n for n in MASK_DIR_NAMES if (root / n).is_dir()), None)
    if images is None or masks is None:
        missing = "an images folder" if images is None else "a masks folder"
        raise DataError(
            f"{root} has no {missing}: expected {root}/<{'|'.join(IMAGE_DIR_NAMES)}> and "
            f"{root}/<{'|'.join(MASK_DIR_NAMES)}>"
        )
    return images, masks


def _list_files(folder: Path) -> list[str]:
    """The image files of ``folder`` (:func:`ssformer.data.layout.image_files`, the loaders'
    rule), sorted by name. split-folders lists every visible file; on a folder of images only
    (the released data sets) the two agree, and a stray ``Thumbs.db`` is left out here instead
    of being assigned to a split."""
    return [p.name for p in image_files(folder)]


def splitfolders_order(names: Sequence[str], seed: int) -> list[str]:
    """The order in which split-folders assigns ``names`` (files of one folder) to the splits.

    Sorting names equals split-folders' sort of full paths because all share one parent folder.
    """
    ordered = sorted(names)
    rng = random.Random(seed)  # same Mersenne Twister stream as random.seed(seed)
    rng.shuffle(ordered)
    return ordered


def split_indices(n: int, ratio: Sequence[float]) -> tuple[int, int]:
    """Cut points of split-folders' ``ratio`` mode: ``int(r0 n)`` and ``int(r0 n) + int(r1 n)``."""
    train_end = int(ratio[0] * n)
    return train_end, train_end + int(ratio[1] * n)


def _validate_ratio(ratio: Sequence[float]) -> tuple[float, float, float]:
    if len(ratio) != 3 or any(r < 0 for r in ratio) or round(sum(ratio), 5) != 1:
        raise DataError(
            f"--ratio must be three non-negative numbers that sum to 1 (train val test), got "
            f"{list(ratio)}"
        )
    return float(ratio[0]), float(ratio[1]), float(ratio[2])


def _shared_stems(names: list[str]) -> list[str]:
    """``a.jpg and a.png``-style groups of ``names`` that share one file stem."""
    by_stem: dict[str, list[str]] = {}
    for name in names:
        by_stem.setdefault(Path(name).stem, []).append(name)
    return [" and ".join(group) for group in by_stem.values() if len(group) > 1]


def _pair_by_stem(images: list[str], masks: list[str], root: Path) -> dict[str, str]:
    shared = _shared_stems(images)
    if shared:
        raise DataError(
            f"{root}: several images share one file stem ({'; '.join(shared[:10])}): one frame "
            "stored twice would land in two splits (train and test); keep one file of each "
            f"and remove the others (`ssformer check-data {root}` lists every problem)"
        )
    mask_by_stem: dict[str, str] = {}
    for name in masks:
        mask_by_stem.setdefault(Path(name).stem, name)
    image_stems = {Path(n).stem for n in images}
    lonely_images = [n for n in images if Path(n).stem not in mask_by_stem]
    lonely_masks = [n for n in masks if Path(n).stem not in image_stems]
    if lonely_images or lonely_masks or len(mask_by_stem) != len(masks):
        parts = []
        if lonely_images:
            parts.append(f"images without a mask: {', '.join(lonely_images[:10])}")
        if lonely_masks:
            parts.append(f"masks without an image: {', '.join(lonely_masks[:10])}")
        if len(mask_by_stem) != len(masks):
            parts.append(f"several masks share one file stem: {'; '.join(_shared_stems(masks))}")
        raise DataError(
            f"{root} is not a complete set of image/mask pairs ({'; '.join(parts)}); "
            f"fix or remove those files (`ssformer check-data {root}` lists every problem)"
        )
    return {n: mask_by_stem[Path(n).stem] for n in images}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _place(source: Path, target: Path) -> bool:
    """Hard-link ``source`` to ``target`` (True) or copy it atomically (False)."""
    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(source, tmp)
        linked = True
    except OSError:
        shutil.copy2(source, tmp)
        linked = False
    os.replace(tmp, target)
    return linked


def default_output(root: Path) -> Path:
    """``ROOT`` itself: the split folders go beside ``images/`` and ``masks/``."""
    return Path(root).resolve()


def _write_json(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")


def _plan(root: Path, ratio: Sequence[float], seed: int) -> tuple[Path, Path, dict, dict]:
    images_dir, masks_dir = find_pair_dirs(root)
    images, masks = _list_files(images_dir), _list_files(masks_dir)
    if not images:
        raise DataError(f"{images_dir} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    pairs = _pair_by_stem(images, masks, root)
    order = splitfolders_order(images, seed)
    train_end, val_end = split_indices(len(order), ratio)
    chunks = {"train": order[:train_end], "val": order[train_end:val_end], "test": order[val_end:]}
    empty = [name for name in SPLIT_NAMES if not chunks[name]]
    if empty:
        counts = ", ".join(f"{name} {len(chunks[name])}" for name in SPLIT_NAMES)
        raise DataError(
            f"--ratio {' '.join(f'{r:g}' for r in ratio)} of the {len(order)} pairs in {root} "
            f"leaves {' and '.join(empty)} empty ({counts}); training needs pairs in train, val "
            "and test: add images or choose a --ratio that gives each split at least one pair"
        )
    return images_dir, masks_dir, pairs, chunks


def ignored_warnings(root: Path) -> list[str]:
    """One line per file of ``root``'s image and mask folders that is not an image file (left
    out of the split, as the loaders leave it out)."""
    return [
        f"{path}: {ignored_reason(path)}; left out"
        for folder in find_pair_dirs(root)
        for path in ignored_files(folder)
    ]


def split_dataset(
    root: Path,
    output: Path | None = None,
    ratio: Sequence[float] = STUDY_SPLIT_RATIO,
    seed: int = STUDY_SPLIT_SEED,
) -> SplitResult:
    """Split ``root`` (``images/`` + ``masks/``) into ``output/{train,val,test}/{images,masks}``.

    The image lists equal those of ``splitfolders.ratio(root, output, seed, ratio)``; each mask
    goes with its image (paired by file stem). Idempotent; refuses an ``output`` holding a split
    made with other parameters or from another source.
    """
    ratio = _validate_ratio(ratio)
    root = Path(root).resolve()
    output = Path(output).resolve() if output is not None else default_output(root)
    if root in output.parents:
        raise DataError(
            f"the split output {output} must not lie inside the source {root} (ROOT itself is "
            "fine, as is a folder elsewhere): choose another --output"
        )
    images_dir, masks_dir, pairs, chunks = _plan(root, ratio, seed)
    parameters = {"ratio": list(ratio), "seed": seed, "source": os.path.relpath(root, output)}
    manifest_path = output / MANIFEST_NAME
    if manifest_path.exists():
        existing = _read_manifest(manifest_path)
        if existing.get("parameters") != parameters:
            raise DataError(
                f"{manifest_path} records a split made with {existing.get('parameters')}, not "
                f"{parameters}; choose another --output or remove that folder yourself"
            )
        return _update_split(existing, manifest_path, root)
    marker = output / IN_PROGRESS_NAME
    resuming = False
    if marker.exists():
        try:
            resuming = json.loads(marker.read_text(encoding="utf-8")) == parameters
        except (OSError, json.JSONDecodeError):
            resuming = False
    stray = [p for s in SPLIT_NAMES if (output / s).exists() for p in (output / s).iterdir()]
    if stray and not resuming:
        raise DataError(
            f"{output} already holds files ({stray[0]}) but no {MANIFEST_NAME} from a split with "
            f"{parameters}; it was not made by ssformer split: choose another --output"
        )
    output.mkdir(parents=True, exist_ok=True)
    _write_json(marker, parameters)  # lets an interrupted run resume
    result, records = _place_splits(images_dir, masks_dir, pairs, chunks, output)
    manifest = {
        "version": MANIFEST_VERSION,
        "parameters": parameters,
        "source_dirs": {"images": images_dir.name, "masks": masks_dir.name},
        "counts": {s: len(chunks[s]) for s in SPLIT_NAMES},
        "identity": identify_dataset([n for names in chunks.values() for n in names]).to_dict(),
        "files": result.files,
        "pairs": records,
    }
    _write_json(manifest_path, manifest)
    marker.unlink()
    return result


def _place_splits(
    images_dir: Path,
    masks_dir: Path,
    pairs: dict[str, str],
    chunks: dict[str, list[str]],
    output: Path,
) -> tuple[SplitResult, dict[str, list[dict[str, str]]]]:
    """Link (or copy) every pair into ``output/<split>/{images,masks}``; the result and the
    manifest's records of each pair with its checksums."""
    result = SplitResult(output=output, files={}, created=True)
    records: dict[str, list[dict[str, str]]] = {}
    for split in SPLIT_NAMES:
        out_images, out_masks = output / split / "images", output / split / "masks"
        out_images.mkdir(parents=True, exist_ok=True)
        out_masks.mkdir(parents=True, exist_ok=True)
        records[split] = []
        for image_name in chunks[split]:
            mask_name = pairs[image_name]
            for source, target in (
                (images_dir / image_name, out_images / image_name),
                (masks_dir / mask_name, out_masks / mask_name),
            ):
                if _place(source, target):
                    result.linked += 1
                else:
                    result.copied += 1
            records[split].append(
                {
                    "image": image_name,
                    "mask": mask_name,
                    "image_sha256": _sha256(images_dir / image_name),
                    "mask_sha256": _sha256(masks_dir / mask_name),
                }
            )
        result.files[split] = list(chunks[split])
    return result, records


@dataclass
class SourceChanges:
    """How a split's source differs from its manifest, file by file (full paths)."""

    changed: list[Path] = field(default_factory=list)
    added: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per file: what happened to it since the split."""
        return (
            [f"changed in the source since the split (SHA-256 differs): {p}" for p in self.changed]
            + [f"added to the source after the split: {p}" for p in self.added]
            + [f"gone from the source since the split: {p}" for p in self.missing]
        )


def _recorded_files(manifest: dict) -> dict[str, dict[str, tuple[str, str]]]:
    """``images``/``masks`` -> file name -> (split, SHA-256) as the manifest records them."""
    recorded: dict[str, dict[str, tuple[str, str]]] = {"images": {}, "masks": {}}
    for split, records in manifest["pairs"].items():
        for record in records:
            for kind, key in (("images", "image"), ("masks", "mask")):
                recorded[kind][record[key]] = (split, record[f"{key}_sha256"])
    return recorded


def source_changes(manifest: dict, source: Path) -> SourceChanges:
    """Compare the source folder's files and SHA-256s with the manifest's."""
    dirs = manifest.get("source_dirs", {"images": "images", "masks": "masks"})
    changes = SourceChanges()
    for kind, files in _recorded_files(manifest).items():
        folder = source / dirs[kind]
        present = set(_list_files(folder)) if folder.is_dir() else set()
        changes.added += [folder / name for name in sorted(present - set(files))]
        changes.missing += [folder / name for name in sorted(set(files) - present)]
        changes.changed += [
            folder / name
            for name in sorted(present & set(files))
            if _sha256(folder / name) != files[name][1]
        ]
    return changes


def _update_split(manifest: dict, manifest_path: Path, root: Path) -> SplitResult:
    """An existing split of ``root`` with the same parameters: refuse it when pairs were added
    or removed since, place the files changed since again, and say which."""
    output = manifest_path.parent
    changes = source_changes(manifest, root)
    if changes.added or changes.missing:
        listed = "; ".join(changes.lines()[:20])
        raise DataError(
            f"{root} has other pairs than when {output} was split ({listed}); a split of the "
            "new set of pairs assigns files differently, so this one cannot be updated in "
            f"place: split into a new --output, or move {output}'s train/, val/, test/ and "
            f"{MANIFEST_NAME} away yourself and split again"
        )
    result = SplitResult(output=output, files=manifest["files"], created=False)
    lacks_identity = "identity" not in manifest
    recorded = _recorded_files(manifest)
    for path in changes.changed:
        image_dir = manifest.get("source_dirs", {}).get("images", "images")
        kind = "images" if path.parent.name == image_dir else "masks"
        split = recorded[kind][path.name][0]
        _place(path, output / split / kind / path.name)
        key = "image" if kind == "images" else "mask"
        for record in manifest["pairs"][split]:
            if record[key] == path.name:
                record[f"{key}_sha256"] = _sha256(path)
        result.updated.append(path)
    if lacks_identity:  # a manifest of an earlier version: add what it lacks
        names = [n for split_names in manifest["files"].values() for n in split_names]
        manifest["identity"] = identify_dataset(names).to_dict()
    if result.updated or lacks_identity:
        _write_json(manifest_path, manifest)
    return result


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read the split manifest {path}: {error}") from error
    if not isinstance(manifest, dict) or "parameters" not in manifest or "pairs" not in manifest:
        raise DataError(f"{path} is not a split manifest written by ssformer split")
    return manifest


def check_split(output: Path, root: Path | None = None) -> list[str]:
    """Verify a split against its manifest and its source; return one line per mismatch.

    Checks that every listed file exists in the split with the recorded SHA-256, that no
    unlisted file sits in the split folders, and (when the source still exists) that recomputing
    the split from the source gives the same lists.
    """
    output = Path(output)
    manifest = _read_manifest(output / MANIFEST_NAME)
    parameters = manifest["parameters"]
    problems: list[str] = []
    for split in SPLIT_NAMES:
        expected = {"images": set(), "masks": set()}
        for record in manifest["pairs"].get(split, []):
            for kind, key in (("images", "image"), ("masks", "mask")):
                path = output / split / kind / record[key]
                expected[kind].add(record[key])
                if not path.is_file():
                    problems.append(f"missing: {path}")
                elif _sha256(path) != record[f"{key}_sha256"]:
                    problems.append(f"changed (SHA-256 differs from the manifest): {path}")
        for kind in ("images", "masks"):
            folder = output / split / kind
            if folder.is_dir():
                for name in _list_files(folder):
                    if name not in expected[kind]:
                        problems.append(f"not in the manifest: {folder / name}")
    source = Path(root) if root is not None else (output / parameters["source"]).resolve()
    if not source.is_dir():
        problems.append(f"source {source} not found: could not recompute the split")
        return problems
    changes = source_changes(manifest, source)
    problems += changes.lines()
    if changes.added or changes.missing:
        return problems
    try:
        _, _, _, chunks = _plan(source, parameters["ratio"], int(parameters["seed"]))
    except DataError as error:
        problems.append(f"source: {error}")
        return problems
    for split in SPLIT_NAMES:
        recorded = manifest["files"].get(split, [])
        if sorted(recorded) != sorted(chunks[split]):
            extra = sorted(set(recorded) - set(chunks[split]))
            lacking = sorted(set(chunks[split]) - set(recorded))
            problems.append(
                f"{split}: differs from the split recomputed from {source} "
                f"(only in manifest: {extra[:5]}, only in recomputed: {lacking[:5]})"
            )
    return problems


def stale_split_problems(root: Path) -> list[str]:
    """What makes the split in ``root`` (a folder with ``split.json``) disagree with its
    manifest or its source; empty when it has no manifest or agrees. A source that is not
    there (a split moved on its own) is not a problem here."""
    root = Path(root)
    if not (root / MANIFEST_NAME).is_file():
        return []
    return [p for p in check_split(root) if not p.startswith("source ") or "not found" not in p]
