"""Reading image and mask files: one rule for every reader (training, evaluation,
``check-data``, ``predict``), so that no file is silently read as something else.

Images become RGB uint8 ``[H, W, 3]``:

- 8-bit RGB, grey, 1-bit, palette, CMYK (Adobe's inverted CMYK JPEGs included) and YCbCr: as
  PIL's ``convert("RGB")`` gives them (what the reference pipelines read); an alpha channel
  (RGBA, LA, PA) is dropped;
- 16-bit grey (``I;16``, or ``I`` with values up to 65535): the high byte (``v >> 8``), as PIL
  reads 16-bit RGB PNGs; without this, PIL clips them to 255 (an almost white image);
- 32-bit float and other integer ranges: refused, naming the file and its mode;
- TIFFs that Pillow cannot open (the original CVC-ClinicDB frames declare 3 samples per pixel
  with a BlackIsZero photometric tag): read by ``tifffile`` as stored, 1 sample as grey, 3 as
  RGB, 4 as RGBA (their PNG copies hold the same pixels); 16-bit samples give their high byte;
- EXIF orientation: the pixels as stored, not rotated, as PIL, torchvision and the reference
  pipelines read them (a mask is drawn on the stored pixels), by every reader: training,
  evaluation and ``ssformer predict`` alike; ``check-data`` and ``predict`` note such images.
  ``oriented=True`` gives what a viewer shows.

Masks become grey uint8 ``[H, W]``, which each metric convention binarises (``> 128`` or
``== 255``):

- grey 8-bit and 1-bit masks: as stored;
- grey stored as colour (Kvasir-SEG's RGB JPEG masks, whose channels differ only by JPEG
  noise): PIL's ``convert("L")`` (the reference pipelines' grey);
- colour masks (some pixel's channels differ by more than 128, e.g. a red polyp on black; palette
  masks are expanded to their colours first): polyp where the brightest channel is > 128, so any
  colour on black is polyp, read as 0/255 (every convention then sees the same polyp);
- a mask whose colour is uniform but whose alpha varies: alpha > 128, as 0/255;
- 16-bit masks: the high byte;
- masks that hold only the values 0 and 1 (polyp = 1, common outside Kvasir): scaled to 0/255;
- 0/1 masks stored in a lossy format (JPEG, WebP): compression turns some 1s into 2s (and a
  few 0s into 1s), so a lossy mask whose values are all at most 8 is read as 0/1 with that
  noise: polyp = value >= 1, as 0/255 (without this rule such a mask reads as empty). A 0/1 mask
  saved at low JPEG quality can lose every 1; it then reads as empty, which ``check-data`` and
  training report.

:func:`read_mask_grey` also returns which of these rules it applied (``check-data`` reports it).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image, ImageOps

from ssformer.errors import DataError

__all__ = [
    "MASK_RULES",
    "decode_image",
    "decode_mask",
    "decode_mask_as_stored",
    "decode_mask_grey",
    "exif_orientation",
    "read_image_size",
    "read_mask_grey",
]

MASK_RULES: dict[str, str] = {
    "grey": "grey, as stored",
    "grey-rgb": "grey stored as colour: PIL's grey",
    "colour": "colour mask: polyp = any pixel whose brightest channel > 128",
    "alpha": "uniform colour with a varying alpha: polyp = alpha > 128",
    "16-bit": "16-bit: the high byte",
    "0/1": "stored as 0/1 (polyp = 1): read as 0/255",
    "0/1-lossy": "0/1 stored lossily (values up to 8, JPEG noise): polyp = value >= 1, as 0/255",
}
"""The mask rules of the module docstring, by the name :func:`read_mask_grey` returns."""

_COLOUR_SPREAD = 128  # a pixel whose channels differ by more than this is colour, not JPEG noise
_LOSSY_FORMATS = frozenset({"JPEG", "MPO", "WEBP"})
_LOSSY_ZERO_ONE_MAX = 8  # a lossy mask whose values stay at or below this was stored as 0/1
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _fail(path: Path, reason: str) -> DataError:
    return DataError(
        f"cannot decode {path}: {reason}; re-save it as an 8-bit PNG or JPEG (run `ssformer "
        f"check-data {path.parent.parent}` to list every such file)"
    )


def _load(path: Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """The fully decoded file (a truncated file fails here, not later)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            if draft_size is not None and img.format == "JPEG":
                # libjpeg may decode at 1/2, 1/4 or 1/8 scale while staying >= the target size
                img.draft("RGB", (draft_size[1], draft_size[0]))
            img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        if _is_tiff(path):
            return _load_tiff(path, pillow_error=error)
        raise _fail(path, f"{type(error).__name__}: {error}") from error
    return img


def _is_tiff(path: Path) -> bool:
    """Whether the file starts with a TIFF (or BigTIFF) signature."""
    try:
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError:
        return False
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _tiff_samples(path: Path) -> np.ndarray:
    """The first page's samples as ``[H, W]`` or ``[H, W, S]``, as stored."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        values = page.asarray()
        axes = page.axes
    if axes.startswith("S") and values.ndim == 3:  # planar configuration: samples first
        values = np.moveaxis(values, 0, -1)
    return values


def _load_tiff(path: Path, *, pillow_error: Exception) -> Image.Image:
    """A TIFF that Pillow refuses, read by ``tifffile``: 1 sample = grey, 3 = RGB, 4 = RGBA."""
    try:
        values = _tiff_samples(path)
    except Exception as error:  # tifffile raises many types for broken files
        raise _fail(
            path, f"neither Pillow ({pillow_error}) nor tifffile ({error}) can read it"
        ) from error
    samples = 1 if values.ndim == 2 else values.shape[-1]
    if values.ndim not in (2, 3) or samples not in (1, 3, 4):
        raise _fail(path, f"TIFF of shape {values.shape} (1, 3 or 4 samples per pixel expected)")
    if values.dtype == np.uint16:
        values = (values >> 8).astype(np.uint8)
    if values.dtype != np.uint8:
        raise _fail(path, f"TIFF samples of type {values.dtype} (8- or 16-bit integers expected)")
    if samples == 1 and values.ndim == 3:
        values = values[..., 0]
    return Image.fromarray(np.ascontiguousarray(values))  # uint8: L, RGB or RGBA by shape


def read_image_size(path: Path) -> tuple[int, int]:
    """``(h, w)`` of an image file, read from its header (every format :func:`decode_image`
    reads, the TIFFs that Pillow refuses included)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
        return (height, width)
    except (OSError, ValueError, SyntaxError) as error:
        if not _is_tiff(path):
            raise _fail(path, f"{type(error).__name__}: {error}") from error
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            return (int(page.imagelength), int(page.imagewidth))
    except Exception as error:  # tifffile raises many types for broken files
        raise _fail(path, f"tifffile cannot read its header ({error})") from error


def _to_8bit(img: Image.Image, path: Path) -> Image.Image:
    """``img`` with 16-bit grey reduced to its high byte; other wide modes refused."""
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise _fail(path, f"mode {img.mode} with values outside 0..65535")
        if img.mode == "I" and (not values.size or values.max() <= 255):
            return Image.fromarray(values.astype(np.uint8))
        return Image.fromarray((values >> 8).astype(np.uint8))
    if img.mode in ("F", "I;32", "I;32B", "I;32L"):
        raise _fail(path, f"mode {img.mode} (32-bit) is not an image or mask format we read")
    return img


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 = as stored) of an opened image."""
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is read as no orientation
        return 1


def decode_image(
    path: Path, draft_size: tuple[int, int] | None = None, *, oriented: bool = False
) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` by the module's rule. ``draft_size=(h, w)`` allows a faster
    reduced-size JPEG decode; ``oriented`` applies the EXIF orientation (``predict``)."""
    path = Path(path)
    img = _load(path, draft_size)
    if oriented:
        img = ImageOps.exif_transpose(img)
    return np.asarray(_converted(_to_8bit(img, path), "RGB", path))


def _converted(img: Image.Image, mode: str, path: Path) -> Image.Image:
    try:
        return img.convert(mode)
    except (ValueError, OSError) as error:  # e.g. LAB, which PIL cannot convert to RGB
        raise _fail(path, f"mode {img.mode} cannot be read as {mode} ({error})") from error


def read_mask_grey(path: Path) -> tuple[np.ndarray, str]:
    """The mask as grey uint8 ``[H, W]`` and the name of the rule (:data:`MASK_RULES`) used."""
    path = Path(path)
    img = _load(path)
    lossy = img.format in _LOSSY_FORMATS
    rule = "16-bit" if img.mode in _SIXTEEN_BIT_MODES or img.mode == "I" else "grey"
    img = _to_8bit(img, path)
    if img.mode in ("1", "L"):
        grey = np.asarray(img.convert("L"))
    else:
        grey, rule = _colour_mask_grey(img, path)
    top = int(grey.max()) if grey.size else 0
    if top == 1:  # only 0 and 1 (an 8-bit max of 1 allows nothing else)
        return grey * np.uint8(255), "0/1"
    if lossy and 1 < top <= _LOSSY_ZERO_ONE_MAX:
        return np.where(grey >= 1, 255, 0).astype(np.uint8), "0/1-lossy"
    return np.ascontiguousarray(grey), rule


def _colour_mask_grey(img: Image.Image, path: Path) -> tuple[np.ndarray, str]:
    """The grey of a mask stored in colour: per-pixel channel extremes through OpenCV (numpy's
    reductions over the 3-wide channel axis cost ~40 ms on a 1920x1072 Kvasir-SEG mask)."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    pixels = np.asarray(_converted(img, "RGBA" if has_alpha else "RGB", path))
    channels = cv2.split(pixels)
    hi = cv2.max(cv2.max(channels[0], channels[1]), channels[2])
    lo = cv2.min(cv2.min(channels[0], channels[1]), channels[2])
    if hi.size and int(cv2.subtract(hi, lo).max()) > _COLOUR_SPREAD:
        return _binary(hi), "colour"
    if has_alpha and hi.size and int(hi.max()) == int(lo.min()) and np.ptp(channels[3]) > 0:
        return _binary(channels[3]), "alpha"
    return np.asarray(_converted(_converted(img, "RGB", path), "L", path)), "grey-rgb"


def _binary(values: np.ndarray) -> np.ndarray:
    """0/255 from ``values > 128``: every convention then sees the same polyp."""
    return cv2.threshold(values, 128, 255, cv2.THRESH_BINARY)[1]


def decode_mask_grey(path: Path) -> np.ndarray:
    """The mask's grey pixels by the module's rule, uint8 ``[H, W]`` (what the official
    ``test.py`` and the toolbox binarise)."""
    return read_mask_grey(path)[0]


def decode_mask(path: Path) -> np.ndarray:
    """Binary mask as bool ``[H, W]``: grey value > 128 (JPEG masks are not exactly 0/255)."""
    return decode_mask_grey(path) > 128


def decode_mask_as_stored(path: Path) -> np.ndarray:
    """The mask as the reproduction study's ``read_image(path)[0]`` sees it, uint8 ``[H, W]``:
    the first channel as stored for grey and grey-as-colour masks (its raw values, which it
    compares with 255), the module's grey for the other rules (colour, alpha, 16-bit, 0/1),
    which the study would have read as background."""
    grey, rule = read_mask_grey(path)
    if rule != "grey-rgb":
        return grey
    raw = _load(path)
    if raw.mode not in ("RGB", "RGBA"):  # palette or LA: libpng expands them to grey
        return grey
    return np.array(np.asarray(raw)[..., 0])
