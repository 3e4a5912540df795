"""Inference on images, folders and videos: binary masks at the original size, and overlays.

``ssformer predict --weights W INPUT... [--out DIR] [--size 352] [--overlay]`` and
``tools/infer.py --cfg F`` (the config's ``TEST`` section) call :func:`predict_paths`.

Each image is resized to ``size x size`` (bilinear), normalised with the ImageNet statistics the
models are trained with, and its polyp probability (sigmoid of a 1-channel model, softmax channel
1 of a 2-channel one) is resized back bilinearly to the image's own size and binarised at 0.5.
Outputs, for an input ``NAME.ext``: ``NAME_mask.png`` (0/255) and, with ``overlay``,
``NAME_overlay.png`` (the polyp tinted green with its outline). A video ``NAME.mp4`` gives
``NAME_mask.mp4`` and ``NAME_overlay.mp4`` at the input's frame rate.

Files are written atomically (temporary file + rename). Nothing is ever overwritten: when the
output folder already exists and is not empty, the results go to a new sibling folder
``DIR-2``, ``DIR-3``, ... (the folder used is returned and printed).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from ssformer.data.decode import decode_image, exif_orientation
from ssformer.data.transforms import eval_image_tensor
from ssformer.engine.evaluate import predict_probability
from ssformer.errors import DataError
from ssformer.io.atomic import atomic_target, storage_error
from ssformer.metrics import resize_probability
from ssformer.registry import IMAGE_SUFFIXES

__all__ = [
    "VIDEO_SUFFIXES",
    "PredictionResult",
    "Predictor",
    "collect_inputs",
    "fresh_output_dir",
    "overlay_mask",
    "predict_paths",
]

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv"})
_INPUT_SUFFIXES = frozenset(IMAGE_SUFFIXES) | VIDEO_SUFFIXES


@dataclass
class PredictionResult:
    """Where the outputs went and how many images / frames were segmented."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    images: int = 0
    frames: int = 0
    seconds: float = 0.0  # wall time of the whole call (reading, model, writing)

    @property
    def per_second(self) -> float:
        """Images and frames segmented per second of wall time (end to end, with I/O)."""
        return (self.images + self.frames) / self.seconds if self.seconds > 0 else float("nan")


class Predictor:
    """Wraps a model: RGB uint8 image [H, W, 3] in, polyp probability [H, W] (float32) out."""

    def __init__(
        self,
        model: nn.Module,
        size: tuple[int, int],
        device: torch.device,
        compile: bool = False,
    ) -> None:
        if compile:
            from ssformer.engine.compiled import compile_for_inference

            model = compile_for_inference(model, device)
        self.model = model.to(device).eval()
        self.size = (int(size[0]), int(size[1]))
        self.device = device

    @torch.inference_mode()
    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """Polyp probability at the image's own size (the input prepared as in evaluation)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise DataError(f"expected an RGB uint8 image [H, W, 3], got {rgb.dtype} {rgb.shape}")
        x = eval_image_tensor(rgb, self.size)[None].to(self.device)
        prob = resize_probability(predict_probability(self.model, x), rgb.shape[:2])
        return prob[0].clamp_(0, 1).cpu().numpy()

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        """Binary polyp mask (bool [H, W]): probability > 0.5."""
        return self.probability(rgb) > 0.5


def overlay_mask(rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image with the mask tinted green and outlined (RGB uint8)."""
    out = rgb.astype(np.float32)
    colour = np.array([0.0, 255.0, 0.0], np.float32)
    out[mask] = out[mask] * (1 - alpha) + colour * alpha
    out = out.clip(0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    cv2.drawContours(out, contours, -1, (255, 255, 0), max(1, round(min(rgb.shape[:2]) / 200)))
    return out


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Image and video files from ``inputs`` (files, or folders scanned non-recursively)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file()
                and not p.name.startswith(".")
                and p.suffix.lower() in _INPUT_SUFFIXES
            )
            if not found:
                raise DataError(f"folder {path} holds no images or videos to segment")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in _INPUT_SUFFIXES:
                raise DataError(
                    f"{path} is neither an image ({', '.join(sorted(IMAGE_SUFFIXES))}) nor a "
                    f"video ({', '.join(sorted(VIDEO_SUFFIXES))})"
                )
            files.append(path)
        else:
            raise DataError(f"input {path} does not exist")
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems and stems[path.stem] != path:
            raise DataError(
                f"inputs {stems[path.stem]} and {path} share the name {path.stem!r}; their "
                "outputs would collide: predict them into separate output folders"
            )
        stems[path.stem] = path
    return files


def fresh_output_dir(out: Path) -> Path:
    """``out`` if it is missing or empty, else the first missing or empty ``out-N`` (N >= 2)."""
    candidate, number = out, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        number += 1
        candidate = out.with_name(f"{out.name}-{number}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise DataError(f"could not encode {path.name} as PNG")
    with atomic_target(path) as tmp:  # a failed write: StorageError with path and free space
        tmp.write_bytes(encoded.tobytes())


def _read_rgb(path: Path) -> np.ndarray:
    """The image's pixels as stored, decoded in full, by the rule training and evaluation
    read it with (an EXIF rotation is not applied; :func:`_rotation_note` says so); a truncated
    file is refused, as ``check-data`` refuses it (see :mod:`ssformer.data.decode`)."""
    return decode_image(path)


def _rotation_note(path: Path) -> str:
    """`` (note: ...)`` for an image that carries an EXIF rotation, else ``""``."""
    try:
        with Image.open(path) as img:
            orientation = exif_orientation(img)
    except OSError:
        return ""
    if orientation == 1:
        return ""
    return (
        f" (note: EXIF orientation {orientation}: segmented as stored, as training and "
        "evaluation read it, so its mask and overlay are not rotated the way a viewer shows it)"
    )


def _predict_image(predictor: Predictor, path: Path, out_dir: Path, overlay: bool) -> list[Path]:
    rgb = _read_rgb(path)
    mask = predictor.mask(rgb)
    written = [out_dir / f"{path.stem}_mask.png"]
    _write_png(written[0], mask.astype(np.uint8) * 255)
    if overlay:
        written.append(out_dir / f"{path.stem}_overlay.png")
        _write_png(written[1], cv2.cvtColor(overlay_mask(rgb, mask), cv2.COLOR_RGB2BGR))
    return written


def _predict_video(
    predictor: Predictor, path: Path, out_dir: Path, overlay: bool, progress: bool = False
) -> tuple[list[Path], int]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path} could not be opened as a video (corrupt or unsupported codec)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and fps > 0 else 25.0
    targets = [out_dir / f"{path.stem}_mask.mp4"]
    if overlay:
        targets.append(out_dir / f"{path.stem}_overlay.mp4")
    temps = [t.with_name(f".{t.stem}.tmp{os.getpid()}.mp4") for t in targets]
    writers: list[cv2.VideoWriter] = []
    frames = width = height = 0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    bar = tqdm(total=count, desc=path.name, unit="frame", disable=not progress, leave=False)
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            mask = predictor.mask(rgb)
            if not writers:
                height, width = rgb.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                for temp in temps:
                    writer = cv2.VideoWriter(str(temp), fourcc, fps, (width, height), True)
                    if not writer.isOpened():
                        raise DataError(f"could not open a video writer for {temp}")
                    writers.append(writer)
            mask_bgr = np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=2)
            writers[0].write(mask_bgr)
            if overlay:
                writers[1].write(cv2.cvtColor(overlay_mask(rgb, mask), cv2.COLOR_RGB2BGR))
            frames += 1
            bar.update(1)
    finally:
        bar.close()
        capture.release()
        for writer in writers:
            writer.release()
    try:
        if frames == 0:
            raise DataError(f"{path} has no readable frames")
        for temp, target in zip(temps, targets, strict=True):
            _verify_video(temp, target, frames, (width, height))
        for temp, target in zip(temps, targets, strict=True):
            os.replace(temp, target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return targets, frames


def _verify_video(temp: Path, target: Path, frames: int, size: tuple[int, int]) -> None:
    """Check a written video before it takes its name: it opens, holds ``frames`` frames of
    ``size`` (w, h), and its last frame decodes. OpenCV's writer reports no failed write (a
    full disk leaves a file no player opens), so this is where one is caught:
    :class:`StorageError` with the path, the reason and the free space, as for images."""
    reason = None
    capture = cv2.VideoCapture(str(temp)) if temp.is_file() else None
    try:
        if capture is None or not capture.isOpened():
            reason = "the video writer left a file that cannot be opened as a video"
        else:
            stored = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            shape = (
                int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            )
            capture.set(cv2.CAP_PROP_POS_FRAMES, max(frames - 1, 0))
            if stored != frames or shape != size:
                reason = (
                    f"the video holds {stored} frames of {shape[0]}x{shape[1]}, not the "
                    f"{frames} frames of {size[0]}x{size[1]} written"
                )
            elif not capture.read()[0]:
                reason = "its last frame cannot be read back"
    finally:
        if capture is not None:
            capture.release()
    if reason is not None:
        raise storage_error(target, OSError(None, f"{reason} (disk full or not writable?)"))


def predict_paths(
    predictor: Predictor,
    inputs: Sequence[str | Path],
    out: Path,
    overlay: bool = True,
    echo: Callable[[str], None] | None = print,
    progress: bool | None = None,
) -> PredictionResult:
    """Segment every image and video of ``inputs`` into a fresh folder (see the module doc).

    ``progress``: a bar over the files and over each video's frames (default: when standard
    error is a terminal). Each video's line gives its frames per second, end to end.
    """
    started = time.monotonic()
    files = collect_inputs(inputs)
    show = sys.stderr.isatty() if progress is None else progress
    result = PredictionResult(out_dir=fresh_output_dir(Path(out)))
    if echo is not None and result.out_dir != Path(out):
        echo(f"{out} already holds files; writing to {result.out_dir} instead")
    for path in tqdm(files, desc="predict", unit="file", disable=not show or len(files) < 2):
        if path.suffix.lower() in VIDEO_SUFFIXES:
            video_start = time.monotonic()
            written, frames = _predict_video(predictor, path, result.out_dir, overlay, show)
            result.frames += frames
            seconds = time.monotonic() - video_start
            note = f" ({frames} frames in {seconds:.1f} s: {frames / seconds:.1f} FPS)"
        else:
            written = _predict_image(predictor, path, result.out_dir, overlay)
            result.images += 1
            note = _rotation_note(path)
        result.files.extend(written)
        if echo is not None:
            echo(f"{path} -> {', '.join(str(p) for p in written)}{note}")
    result.seconds = time.monotonic() - started
    return result
