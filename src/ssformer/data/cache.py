"""Decode and resize each image/mask pair once, and keep the result on disk.

Kvasir-SEG frames are up to 1920x1072 JPEGs; decoding and resizing them every epoch costs more
than the augmentation itself. :class:`PairCache` stores each resized pair as one ``.npy`` file,
``[H, W, 4]`` uint8 (RGB + mask), under ``<dataset>/.cache/<H>x<W>/``. The file name carries a
fingerprint of both source files (name, size, modification time, inode and inode change time)
and of the target size, so a changed source file gets a new entry and its stale one is removed.
The inode change time (``st_ctime_ns``) is set by the kernel on every write, rename or link and
cannot be set back by a user, so a file replaced by one of the same size whose modification time
was restored (``cp -p``, ``touch -r``, ``os.utime``) still gets a new entry; the key costs one
``stat`` per file, as before (no read of the file). Writes go to a temporary file
in the same folder followed by :func:`os.replace`, so concurrent DataLoader workers and
interrupted runs never leave a half-written entry. Where the dataset folder is read-only the
cache lives in memory instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from ssformer.data.decode import decode_image, decode_mask, decode_mask_as_stored
from ssformer.data.study_resize import study_resize
from ssformer.errors import DataError

__all__ = [
    "CACHE_DIR_NAME",
    "PairCache",
    "load_resized_pair",
    "resize_pair",
]

CACHE_DIR_NAME = ".cache"
_CACHE_FORMAT = "pair-v1"


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if array.shape[:2] == (h, w):
        return np.ascontiguousarray(array)
    shrinking = array.shape[0] > h and array.shape[1] > w
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(array, (w, h), interpolation=interpolation)


def resize_pair(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Resize an RGB uint8 image and a bool mask to ``size=(h, w)``.

    The mask comes back as uint8 coverage 0..255 (area-averaged edges), to be thresholded at 128
    after the geometric augmentation, which keeps its boundary smooth under rotation and scaling.
    """
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            f"image and mask sizes differ ({image.shape[1]}x{image.shape[0]} vs "
            f"{mask.shape[1]}x{mask.shape[0]})"
        )
    return _resize(image, size), _resize(mask.astype(np.uint8) * 255, size)


def load_resized_pair(
    image_path: Path, mask_path: Path, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Decode a pair and resize it to ``size``: ``(uint8 [h,w,3], uint8 [h,w] 0..255)``."""
    image = decode_image(image_path, size)
    mask = decode_mask(mask_path)  # masks decode in full (no draft)
    if image.shape[:2] != mask.shape[:2]:
        # A draft decode may reduce the two files differently; decode both in full.
        image, mask = decode_image(image_path), decode_mask(mask_path)
        if image.shape[:2] != mask.shape[:2]:
            raise DataError(
                f"{image_path.name} is {image.shape[1]}x{image.shape[0]} but its mask "
                f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}; fix or remove the pair"
            )
    return resize_pair(image, mask, size)


def load_study_pair(
    image_path: Path, mask_path: Path, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A pair as the study's training pipeline starts from it: read as stored (the mask's first
    channel, raw values), then its ``Resize`` (aspect kept, shorter side ``size[0]``, sides up
    to multiples of 32): ``(uint8 [h,w,3], uint8 [h,w])``."""
    image = decode_image(image_path)
    mask = decode_mask_as_stored(mask_path)
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            f"{image_path.name} is {image.shape[1]}x{image.shape[0]} but its mask "
            f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}; fix or remove the pair"
        )
    image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    image_t, mask_t = study_resize(image_t, torch.from_numpy(mask.copy())[None], size[0])
    return image_t.permute(1, 2, 0).numpy(), mask_t[0].numpy()


RESIZE_RULES = {"square": load_resized_pair, "study": load_study_pair}
"""How a cached pair is made from the files: ``square`` (resized to ``size``, mask as 0..255
coverage of ``> 128``) or ``study`` (the study's ``Resize``, raw mask values kept)."""


def _fingerprint(
    image_path: Path, mask_path: Path, size: tuple[int, int], rule: str = "square"
) -> str:
    parts = [_CACHE_FORMAT, f"{size[0]}x{size[1]}"] + ([rule] if rule != "square" else [])
    for path in (image_path, mask_path):
        stat = path.stat()
        parts.append(
            f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}:{stat.st_ctime_ns}"
        )
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


class PairCache:
    """Resized image/mask pairs, decoded once, stored under ``folder/<H>x<W>/``.

    ``folder=None`` keeps them in memory only (per process). If ``folder`` cannot be written the
    cache falls back to memory with a warning.
    """

    def __init__(self, folder: Path | None, size: tuple[int, int], rule: str = "square") -> None:
        self.size = (int(size[0]), int(size[1]))
        self.rule = rule
        self._load = RESIZE_RULES[rule]
        tag = f"{self.size[0]}x{self.size[1]}" + ("" if rule == "square" else f"-{rule}")
        self.folder = None if folder is None else Path(folder) / tag
        self._memory: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __getstate__(self) -> dict[str, object]:
        """Picklable (data-loader workers started by spawn/forkserver): without the lock."""
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def get(self, image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
        """The resized pair, from the cache when its entry is current."""
        image_path, mask_path = Path(image_path), Path(mask_path)
        try:
            key = _fingerprint(image_path, mask_path, self.size, self.rule)
        except OSError as error:
            raise DataError(f"cannot read {error.filename}: {error.strerror}") from error
        stem = image_path.stem
        if self.folder is None:
            return self._get_memory(f"{stem}.{key}", image_path, mask_path)
        entry = self.folder / f"{stem}.{key}.npy"
        try:
            stacked = np.load(entry, allow_pickle=False)
        except (OSError, ValueError):
            stacked = None
        fits = stacked is not None and stacked.ndim == 3 and stacked.shape[2] == 4
        if fits and (self.rule != "square" or stacked.shape[:2] == self.size):
            with self._lock:  # :meth:`fill` calls this from several threads
                self.hits += 1
            return stacked[..., :3], stacked[..., 3]
        with self._lock:
            self.misses += 1
        image, mask = self._load(image_path, mask_path, self.size)
        try:
            self._store(entry, stem, np.concatenate([image, mask[..., None]], axis=2))
        except OSError as error:
            warnings.warn(
                f"cannot write the data cache in {self.folder} ({error}); caching in memory",
                stacklevel=2,
            )
            self.folder = None
            self._memory[f"{stem}.{key}"] = (image, mask)
        return image, mask

    def fill(self, pairs: Sequence[tuple[Path, Path]], threads: int | None = None) -> int:
        """Make the entry of every ``(image, mask)`` pair current, ``threads`` at a time
        (default: one per CPU); returns how many were decoded. Decoding (Pillow, OpenCV) releases
        the GIL, so threads decode in parallel; each entry is the one :meth:`get` would make."""
        before = self.misses
        count = threads if threads is not None else (os.cpu_count() or 1)
        if count <= 1 or len(pairs) <= 1:
            for image_path, mask_path in pairs:
                self.get(image_path, mask_path)
            return self.misses - before
        with ThreadPoolExecutor(max_workers=count) as pool:
            for _ in pool.map(lambda pair: self.get(*pair), pairs):
                pass
        return self.misses - before

    def _get_memory(
        self, key: str, image_path: Path, mask_path: Path
    ) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self.hits += 1
                return hit
            self.misses += 1
        pair = self._load(image_path, mask_path, self.size)
        with self._lock:
            self._memory[key] = pair
        return pair

    def _store(self, entry: Path, stem: str, stacked: np.ndarray) -> None:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with tmp.open("wb") as handle:
            np.save(handle, stacked, allow_pickle=False)
        os.replace(tmp, entry)
        for stale in self.folder.glob(f"{stem}.*.npy"):
            # Same stem, another fingerprint: the source changed since that entry was written.
            if stale != entry and stale.name.count(".") == entry.name.count("."):
                with contextlib.suppress(OSError):
                    stale.unlink()
