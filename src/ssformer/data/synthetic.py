"""Synthetic colonoscopy-like images with polyp masks, in the Kvasir-SEG layout.

Used for tests, demos and the notebook when the real datasets are not at hand. Each image shows
textured reddish mucosa with folds, vessels, specular highlights, lighting fall-off and
vignetting, and one or more polyps: irregular blobs of varied size, contrast and hue, with their
own surface texture and dome shading, so that a colour threshold alone does not segment them.

Output: ``OUT/images/synth-0000.jpg`` ... and ``OUT/masks/synth-0000.jpg`` (0/255 JPEG masks, as
in Kvasir-SEG: binarise at 128 when loading). Deterministic for a given ``seed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ssformer.errors import DataError
from ssformer.image_size import PAPER_SIDE

__all__ = ["SyntheticSample", "generate_synthetic_dataset", "render_sample"]


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered image (uint8 RGB, [H,W,3]) and its binary mask (bool, [H,W])."""

    image: np.ndarray
    mask: np.ndarray


def _noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """Smooth value noise in [-1, 1]: a random grid of about ``cells`` cells, upsampled (bicubic)."""
    h, w = shape
    gh = max(2, round(cells * h / max(h, w)) + 2)
    gw = max(2, round(cells * w / max(h, w)) + 2)
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _fractal(
    rng: np.random.Generator, shape: tuple[int, int], base: float, octaves: int
) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for octave in range(octaves):
        out += amp * _noise(rng, shape, base * 2**octave)
        total += amp
        amp *= 0.5
    return out / total


def _polyp_shape(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, radius: float
) -> np.ndarray:
    """Normalised radial coordinate of an irregular blob: < 1 inside, 1 on its boundary."""
    angle = rng.uniform(0, np.pi)
    elong = rng.uniform(1.0, 1.7)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / elong
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    r = np.sqrt(u * u + v * v) + np.float32(1e-6)
    unit = (u + 1j * v) / r  # e^{i theta}, so cos(k theta + phi) = Re(unit^k e^{i phi})
    r_boundary = np.ones_like(r)
    power = unit
    for k in range(2, 6):
        power = power * unit
        amplitude = rng.uniform(0, 0.25 / k)
        phase = np.exp(1j * rng.uniform(0, 2 * np.pi))
        r_boundary += (amplitude * (power * phase).real).astype(np.float32)
    return r / (radius * r_boundary)


@dataclass(frozen=True)
class _Canvas:
    """Pixel grids of one frame; smooth fields are drawn on a grid 4x coarser and upsampled once
    (speed)."""

    height: int
    width: int
    yy: np.ndarray
    xx: np.ndarray
    ly_grid: np.ndarray
    lx_grid: np.ndarray

    @classmethod
    def of(cls, height: int, width: int) -> _Canvas:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        low = (max(2, height // 4), max(2, width // 4))
        ly_grid, lx_grid = np.mgrid[0 : low[0], 0 : low[1]].astype(np.float32)
        ly_grid *= height / low[0]
        lx_grid *= width / low[1]
        return cls(height, width, yy, xx, ly_grid, lx_grid)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def low(self) -> tuple[int, int]:
        return self.ly_grid.shape

    @property
    def scale(self) -> float:
        return float(min(self.height, self.width))

    def upsample(self, field: np.ndarray) -> np.ndarray:
        size = (self.width, self.height)
        return cv2.resize(field.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)


@dataclass
class _Polyps:
    """The polyps of one frame: mask, dome heights, their colour layer with its alpha, rims."""

    mask: np.ndarray
    height_map: np.ndarray
    layer: np.ndarray
    alpha: np.ndarray
    rim_shadow: np.ndarray


def render_sample(rng: np.random.Generator, height: int, width: int) -> SyntheticSample:
    """Render one synthetic frame and its polyp mask with the random generator ``rng``."""
    canvas = _Canvas.of(height, width)
    img, base = _mucosa(rng, canvas)
    vessels = _vessels(rng, canvas.shape)
    polyps = _polyps(rng, canvas, base)
    tint = np.array([0.25, 0.55, 0.5], np.float32)
    img = img * (1 - vessels[..., None] * tint)
    vessel_inside = 1 - 0.6 * vessels[..., None] * tint
    alpha = polyps.alpha[..., None]
    img = img * (1 - alpha) + polyps.layer * vessel_inside * alpha

    # Dome shading: light from a direction, the polyp's side away from it darker.
    light_angle = rng.uniform(0, 2 * np.pi)
    gy, gx = np.gradient(polyps.height_map)
    slope = (gx * np.cos(light_angle) + gy * np.sin(light_angle)) * canvas.scale * 0.05
    img = img * (1 + np.clip(slope, -0.35, 0.35) + 0.10 * polyps.height_map)[..., None]
    img = img * (1 - polyps.rim_shadow)[..., None]

    img, light = _lighting(rng, canvas, img, polyps.mask)
    img = _speculars(rng, canvas.shape, img, polyps.height_map, light)
    return _finish(rng, canvas, img, polyps.mask)


def _mucosa(rng: np.random.Generator, canvas: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Mucosa: base colour per image, low-frequency tint, folds, fine texture."""
    base = np.array(
        [rng.uniform(0.62, 0.85), rng.uniform(0.30, 0.45), rng.uniform(0.22, 0.36)], np.float32
    )
    tint_low = _fractal(rng, canvas.low, 3, 3)
    tint = canvas.upsample(tint_low)
    fold_phase = _fractal(rng, canvas.low, 2, 2) * rng.uniform(4, 9)
    direction = rng.uniform(0, np.pi)
    along = (canvas.lx_grid * np.cos(direction) + canvas.ly_grid * np.sin(direction)) / canvas.scale
    folds = np.sin(2 * np.pi * along * rng.uniform(1.5, 3.5) + fold_phase)
    folds = np.clip(folds, -1, 1) ** 3 * rng.uniform(0.05, 0.18)
    fine = _fractal(rng, canvas.shape, 40, 2)
    shade = canvas.upsample(1.0 + 0.12 * tint_low + folds) + 0.04 * fine
    img = base[None, None, :] * shade[..., None]
    img[..., 1] += 0.03 * tint
    img[..., 2] += 0.02 * _noise(rng, canvas.shape, 5)
    return img, base


def _vessels(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Vessels: thin level lines of two noise fields, darker and redder."""
    vessels = np.zeros(shape, np.float32)
    for cells in (rng.uniform(4, 8), rng.uniform(8, 16)):
        field = _fractal(rng, shape, cells, 2)
        width_v = rng.uniform(0.010, 0.025)
        vessels = np.maximum(vessels, np.clip(1 - np.abs(field) / width_v, 0, 1))
    return vessels * np.clip(_noise(rng, shape, 3) + 0.6, 0, 1) * rng.uniform(0.3, 0.8)


def _polyps(rng: np.random.Generator, canvas: _Canvas, base: np.ndarray) -> _Polyps:
    """Polyps: irregular domes of varied size and contrast."""
    shape, height, width, scale = canvas.shape, canvas.height, canvas.width, canvas.scale
    polyps = _Polyps(
        mask=np.zeros(shape, bool),
        height_map=np.zeros(shape, np.float32),
        layer=np.zeros((*shape, 3), np.float32),
        alpha=np.zeros(shape, np.float32),
        rim_shadow=np.zeros(shape, np.float32),
    )
    n_polyps = int(rng.choice([1, 1, 1, 1, 2, 2, 3]))
    for _ in range(n_polyps):
        radius = scale * float(np.exp(rng.uniform(np.log(0.05), np.log(0.28))))
        cy = rng.uniform(0.15, 0.85) * height
        cx = rng.uniform(0.15, 0.85) * width
        reach = int(radius * 2.5) + 4  # covers elongation, lobes and the rim shadow
        y0, y1 = max(0, int(cy) - reach), min(height, int(cy) + reach)
        x0, x1 = max(0, int(cx) - reach), min(width, int(cx) + reach)
        box = (slice(y0, y1), slice(x0, x1))
        rho = _polyp_shape(rng, canvas.yy[box], canvas.xx[box], cy, cx, radius)
        inside = rho < 1.0
        if not inside.any():
            continue
        polyps.mask[box] |= inside
        dome = np.sqrt(np.clip(1.0 - rho * rho, 0, 1))
        polyps.height_map[box] = np.maximum(polyps.height_map[box], dome)
        contrast = rng.uniform(0.04, 0.35)
        hue_shift = np.array(
            [rng.uniform(-0.08, 0.12), rng.uniform(-0.05, 0.10), rng.uniform(-0.04, 0.08)],
            np.float32,
        )
        colour = base * (1 + rng.choice([-1.0, 1.0]) * contrast) + hue_shift * contrast * 2
        box_shape = (y1 - y0, x1 - x0)
        texture = _fractal(rng, box_shape, rng.uniform(20, 60) * radius / scale * 4, 2)
        pits = np.sin(texture * rng.uniform(10, 25)) * rng.uniform(0.02, 0.06)
        layer = colour[None, None, :] * (1 + pits + 0.05 * texture)[..., None]
        soft = np.clip((1.0 - rho) * radius / 1.5, 0, 1)  # anti-aliased edge, ~1.5 px
        polyps.layer[box] = np.where(
            soft[..., None] > polyps.alpha[box][..., None], layer, polyps.layer[box]
        )
        polyps.alpha[box] = np.maximum(polyps.alpha[box], soft)
        ring = np.exp(-(((rho - 1.0) * radius / (0.08 * radius + 2)) ** 2))
        polyps.rim_shadow[box] = np.maximum(polyps.rim_shadow[box], ring * rng.uniform(0.15, 0.45))
    return polyps


def _lighting(
    rng: np.random.Generator, canvas: _Canvas, img: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lighting: fall-off from an off-centre light, vignetting, dark lumen; returns the image
    and the light field."""
    height, width, scale = canvas.height, canvas.width, canvas.scale
    ly_grid, lx_grid = canvas.ly_grid, canvas.lx_grid
    ly, lx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    dist = np.sqrt((ly_grid - ly) ** 2 + (lx_grid - lx) ** 2) / scale
    light_low = np.clip(1.15 - rng.uniform(0.6, 1.1) * dist**1.5, 0.15, 1.2)
    cy0, cx0 = height / 2, width / 2
    corner = np.sqrt(((ly_grid - cy0) / (height / 2)) ** 2 + ((lx_grid - cx0) / (width / 2)) ** 2)
    vignette = np.clip(1.0 - 0.55 * np.clip(corner - 0.7, 0, None) ** 1.2, 0, 1)
    light = canvas.upsample(light_low)
    img = img * canvas.upsample(light_low * vignette)[..., None]
    if rng.random() < 0.5:
        lumen_y, lumen_x = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        lumen = canvas.upsample(
            np.exp(
                -((ly_grid - lumen_y) ** 2 + (lx_grid - lumen_x) ** 2) / (2 * (0.12 * scale) ** 2)
            )
        )
        img = img * (1 - 0.8 * lumen * np.where(mask, 0.3, 1.0).astype(np.float32))[..., None]
    return img, light


def _speculars(
    rng: np.random.Generator,
    shape: tuple[int, int],
    img: np.ndarray,
    height_map: np.ndarray,
    light: np.ndarray,
) -> np.ndarray:
    """Specular highlights: small saturated spots, more likely on the domes."""
    spots = _fractal(rng, shape, rng.uniform(25, 50), 2) + 0.3 * height_map
    fraction = rng.uniform(0.001, 0.008)
    threshold = np.partition(spots.ravel(), int(spots.size * (1 - fraction)))[
        int(spots.size * (1 - fraction))
    ]
    spec = np.clip((spots - threshold) * 30, 0, 1) * (light > 0.5)
    return img * (1 - spec[..., None]) + spec[..., None] * np.float32(1.05)


def _finish(
    rng: np.random.Generator, canvas: _Canvas, img: np.ndarray, mask: np.ndarray
) -> SyntheticSample:
    """Black endoscope border (octagonal corners), sensor noise, 8 bits, a slight blur."""
    height, width, yy, xx = canvas.height, canvas.width, canvas.yy, canvas.xx
    cut = rng.uniform(0.10, 0.2) * canvas.scale
    corner_cut = (
        (xx + yy < cut)
        | ((width - xx) + yy < cut)
        | (xx + (height - yy) < cut)
        | ((width - xx) + (height - yy) < cut)
    )
    img[corner_cut] = 0.02
    img = img + rng.standard_normal(size=img.shape, dtype=np.float32) * np.float32(0.012)
    image = np.clip(img * 255.0, 0, 255).astype(np.uint8)
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=rng.uniform(0.4, 1.0))
    return SyntheticSample(image=image, mask=mask & ~corner_cut)


def _write_jpeg(path: Path, array: np.ndarray, quality: int) -> None:
    ok, encoded = cv2.imencode(".jpg", array, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DataError(f"could not encode {path.name} as JPEG")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(encoded.tobytes())
    os.replace(tmp, path)


def generate_synthetic_dataset(
    out: Path,
    n: int = 200,
    size: int | tuple[int, int] = PAPER_SIDE,
    seed: int = 0,
    size_jitter: float = 0.0,
) -> Path:
    """Write ``n`` synthetic image/mask pairs under ``out`` (``images/`` + ``masks/``).

    ``size`` is the side (or ``(height, width)``); ``size_jitter`` in [0, 1) draws each image's
    height and width independently within ``size * (1 ± size_jitter)``, so that full-resolution
    evaluation of non-square images of different sizes is exercised. Existing files with the same
    names are refused rather than overwritten. Returns ``out``.
    """
    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}")
    if not 0 <= size_jitter < 1:
        raise DataError(f"size_jitter must be in [0, 1), got {size_jitter}")
    base_h, base_w = (size, size) if isinstance(size, int) else size
    if min(base_h, base_w) < 16:
        raise DataError(f"size must be at least 16 pixels, got {size}")
    out = Path(out)
    images_dir, masks_dir = out / "images", out / "masks"
    names = [f"synth-{i:04d}.jpg" for i in range(n)]
    clashes = [d / name for d in (images_dir, masks_dir) for name in names if (d / name).exists()]
    if clashes:
        raise DataError(
            f"{out} already holds synthetic files (e.g. {clashes[0]}); "
            "choose an empty output folder (files are never overwritten)"
        )
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        rng = np.random.default_rng([seed, i])
        h, w = base_h, base_w
        if size_jitter > 0:
            h = round(base_h * rng.uniform(1 - size_jitter, 1 + size_jitter))
            w = round(base_w * rng.uniform(1 - size_jitter, 1 + size_jitter))
        sample = render_sample(rng, h, w)
        _write_jpeg(images_dir / name, cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), 92)
        _write_jpeg(masks_dir / name, sample.mask.astype(np.uint8) * 255, 95)
    return out
