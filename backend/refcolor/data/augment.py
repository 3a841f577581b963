"""Augmentations that make a reference disagree with its sketch, and colour shifts.

* :class:`Mismatch`: flip, scale, rotation, translation and an elastic warp applied to
  the character of the reference, so a model has to find colours by meaning, not by
  copying the pixel at the same place.
* :func:`shift_hue_saturation`: one random hue rotation and saturation scale, applied to
  target and reference alike, so a model learns to take colours from the reference
  rather than memorising each character's colours.

The affine part runs in PIL (C, one resampling pass); the elastic field is a smoothed
random displacement (Simard et al., "Best practices for convolutional neural networks
applied to visual document analysis", ICDAR 2003, Sec. 2) applied with
``scipy.ndimage.map_coordinates``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage


@dataclass(frozen=True)
class Mismatch:
    """One draw of the reference's geometric change (all relative to the canvas)."""

    flip: bool
    scale: float  # of the character, 1 = unchanged
    rotation: float  # degrees, counter-clockwise
    shift: tuple[float, float]  # (dx, dy) as fractions of the canvas side
    elastic: float  # displacement amplitude in pixels at the working size, 0 = none
    elastic_smoothness: float  # Gaussian sigma of the displacement field, in pixels


@dataclass(frozen=True)
class MismatchRange:
    """How strong mismatches are drawn; the defaults are the training and evaluation ones."""

    flip_probability: float = 0.5
    scale: tuple[float, float] = (0.75, 1.25)
    max_rotation: float = 20.0
    max_shift: float = 0.2
    elastic_probability: float = 0.7
    elastic: tuple[float, float] = (2.0, 8.0)  # amplitude, in pixels of a 256 px canvas


def draw_mismatch(rng: np.random.Generator, size: int, spec: MismatchRange | None = None) -> Mismatch:
    spec = spec or MismatchRange()
    amplitude = rng.uniform(*spec.elastic) * size / 256.0 if rng.random() < spec.elastic_probability else 0.0
    return Mismatch(
        flip=bool(rng.random() < spec.flip_probability),
        scale=float(rng.uniform(*spec.scale)),
        rotation=float(rng.uniform(-spec.max_rotation, spec.max_rotation)),
        shift=(
            float(rng.uniform(-spec.max_shift, spec.max_shift)),
            float(rng.uniform(-spec.max_shift, spec.max_shift)),
        ),
        elastic=float(amplitude),
        elastic_smoothness=float(rng.uniform(0.06, 0.12) * size),
    )


def affine_matrix(mismatch: Mismatch, size: int) -> tuple[float, ...]:
    """PIL's inverse affine (output -> input coordinates) for ``mismatch`` about the canvas centre."""
    c = size / 2.0  # PIL samples pixel centres at +0.5: the canvas centre is size / 2
    angle = math.radians(mismatch.rotation)
    cos, sin = math.cos(angle) / mismatch.scale, math.sin(angle) / mismatch.scale
    fx = -1.0 if mismatch.flip else 1.0
    dx, dy = mismatch.shift[0] * size, mismatch.shift[1] * size
    # output p -> input: x_in = fx * R^-1 (p - c - d) / s + c, with y pointing down.
    a, b = fx * cos, fx * -sin
    d, e = sin, cos
    tx, ty = -(c + dx), -(c + dy)
    return (a, b, a * tx + b * ty + c, d, e, d * tx + e * ty + c)


def apply_affine(rgba: np.ndarray, mismatch: Mismatch) -> np.ndarray:
    """Move a square (S, S, 4) uint8 RGBA layer; uncovered pixels become transparent."""
    size = rgba.shape[0]
    image = Image.fromarray(rgba, "RGBA")
    moved = image.transform(
        (size, size), Image.Transform.AFFINE, affine_matrix(mismatch, size), Image.Resampling.BILINEAR
    )
    return np.asarray(moved)


def elastic_field(
    rng: np.random.Generator, shape: tuple[int, int], amplitude: float, smoothness: float
) -> np.ndarray:
    """(2, H, W) float32 displacement (dy, dx) with RMS about ``amplitude`` pixels."""
    return np.stack([smooth_noise(rng, shape, smoothness, amplitude) for _ in range(2)])


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], smoothness: float, scale: float = 1.0
) -> np.ndarray:
    """(H, W) float32 Gaussian noise smoothed over ``smoothness`` pixels, standard deviation about
    ``scale``."""
    # Draw the noise on a coarse grid and zoom it: same smooth field, a fraction of the cost.
    step = max(1, int(smoothness // 4))
    coarse_shape = (shape[0] // step + 2, shape[1] // step + 2)
    noise = ndimage.gaussian_filter(rng.standard_normal(coarse_shape).astype(np.float32), smoothness / step)
    noise *= scale / max(float(noise.std()), 1e-6)
    return ndimage.zoom(noise, step, order=1)[: shape[0], : shape[1]]


def apply_elastic(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Warp an (H, W, C) uint8 image by a (2, H, W) displacement; outside pixels become 0."""
    height, width = image.shape[:2]
    rows, cols = np.meshgrid(
        np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij"
    )
    coords = np.stack([rows + field[0], cols + field[1]])
    channels = [
        ndimage.map_coordinates(image[..., ch], coords, order=1, mode="constant", cval=0)
        for ch in range(image.shape[2])
    ]
    return np.stack(channels, -1)


def apply_mismatch(rgba: np.ndarray, mismatch: Mismatch, rng: np.random.Generator) -> np.ndarray:
    """Affine then (if any) elastic warp of a square RGBA character layer."""
    moved = apply_affine(rgba, mismatch)
    if mismatch.elastic > 0:
        field = elastic_field(rng, moved.shape[:2], mismatch.elastic, mismatch.elastic_smoothness)
        moved = apply_elastic(moved, field)
    return moved


@dataclass(frozen=True)
class ColorShift:
    hue: float  # rotation as a fraction of the hue circle, -0.5..0.5
    saturation: float  # multiplier


def draw_color_shift(rng: np.random.Generator, saturation: tuple[float, float] = (0.6, 1.3)) -> ColorShift:
    return ColorShift(hue=float(rng.uniform(-0.5, 0.5)), saturation=float(rng.uniform(*saturation)))


def shift_hue_saturation(rgb: np.ndarray, shift: ColorShift) -> np.ndarray:
    """Rotate hue and scale saturation of an (H, W, 3) uint8 image (PIL's 8-bit HSV)."""
    hsv = np.asarray(Image.fromarray(rgb, "RGB").convert("HSV")).copy()
    hue_steps = round(shift.hue * 256) % 256
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + hue_steps) % 256
    hsv[..., 1] = np.clip(hsv[..., 1].astype(np.float32) * shift.saturation + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
