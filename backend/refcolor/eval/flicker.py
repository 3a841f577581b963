"""Flicker on a synthetic shot (issue 20): how much a character's colours change from frame to frame.

:func:`moving_shot` makes a shot whose motion is known: one character (RGBA, alpha = foreground)
moving smoothly over a still background, translated, rotated and scaled a little more each frame,
with line art extracted from every frame in one style, as a studio's in-betweens would be drawn
from one design. The character's own picture, on another crop of the background, is the sheet.

:func:`flicker` is the mean CIEDE2000 between corresponding foreground pixels of consecutive
frames, corresponding by the known motion (frame t resampled into frame t+1's pixels). Pixels
within ``border`` of either frame's mask outline are left out, where resampling mixes the two
sides. The ground truth's own flicker (resampling alone) is the floor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import deltaE_ciede2000

from refcolor.data.samples import random_crop
from refcolor.eval.metrics import to_lab
from refcolor.imaging import lineart

BORDER = 2  # pixels along the mask outlines left out of flicker and colour error


@dataclass(frozen=True)
class Motion:
    """The character's path over the shot: each quantity goes linearly from its first value to its
    last (a smooth move, in pixels per frame constant)."""

    shift: tuple[float, float] = (-0.12, 0.12)  # horizontal offset of the centre, share of the side
    lift: tuple[float, float] = (0.04, -0.04)  # vertical offset of the centre, share of the side
    rotation: tuple[float, float] = (-6.0, 6.0)  # degrees
    scale: tuple[float, float] = (0.92, 1.0)
    height: float = 0.7  # character height at scale 1, share of the side


@dataclass(frozen=True)
class SyntheticShot:
    frames: list[np.ndarray]  # (S, S, 3) uint8 ground truth
    sketches: list[np.ndarray]  # (S, S) uint8 line art, 255 = paper
    masks: list[np.ndarray]  # (S, S) uint8, 255 = character
    motions: list[np.ndarray]  # (2, 3) float64: the character's pixels -> this frame's pixels
    reference: np.ndarray  # (S, S, 3) uint8, the sheet
    reference_mask: np.ndarray  # (S, S) uint8
    background: np.ndarray  # (S, S, 3) uint8, the still background the frames were drawn on

    def sketch_rgba(self, index: int) -> np.ndarray:
        gray = self.sketches[index]
        return np.dstack([gray, gray, gray, np.full_like(gray, 255)])

    def reference_rgba(self) -> np.ndarray:
        return np.dstack([self.reference, np.full(self.reference.shape[:2], 255, np.uint8)])


def _affine(center: tuple[float, float], angle: float, scale: float, origin: tuple[float, float]) -> np.ndarray:
    """(2, 3): rotate by ``angle`` degrees and scale about ``origin``, then put ``origin`` at ``center``."""
    rad = math.radians(angle)
    a, b = scale * math.cos(rad), scale * math.sin(rad)
    linear = np.array([[a, -b], [b, a]])
    offset = np.asarray(center) - linear @ np.asarray(origin)
    return np.hstack([linear, offset[:, None]])


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2, 3) affine ``outer`` after ``inner``."""
    full = np.vstack([inner, [0, 0, 1]])
    return (np.vstack([outer, [0, 0, 1]]) @ full)[:2]


def _invert(affine: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]


def _warp_rgba(rgba: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 4) uint8: premultiplied bilinear warp of a straight-alpha RGBA8 image."""
    import cv2

    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    premultiplied = np.concatenate([rgba[..., :3].astype(np.float32) * alpha, alpha * 255.0], axis=-1)
    warped = cv2.warpAffine(premultiplied, affine.astype(np.float32), (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    a = warped[..., 3:4] / 255.0
    rgb = np.where(a > 1e-3, warped[..., :3] / np.maximum(a, 1e-3), 0.0)
    return np.clip(np.round(np.concatenate([rgb, warped[..., 3:4]], axis=-1)), 0, 255).astype(np.uint8)


def moving_shot(
    character: Image.Image,
    background: Image.Image,
    size: int = 256,
    frames: int = 24,
    seed: int = 0,
    motion: Motion | None = None,
) -> SyntheticShot:
    """A ``frames``-frame shot of ``character`` (RGBA) moving over a crop of ``background`` (see the
    module doc); the same arguments give the same shot."""
    from refcolor.data.samples import alpha_mask, composite

    motion = motion or Motion()
    rng = np.random.default_rng(seed)
    rgba = np.asarray(character.convert("RGBA"))
    fit = motion.height * size / rgba.shape[0]
    fit = min(fit, 0.8 * size / rgba.shape[1])
    origin = (rgba.shape[1] / 2, rgba.shape[0] / 2)
    still = random_crop(background.convert("RGB"), rng, size, (0.5, 1.0))
    sheet_bg = random_crop(background.convert("RGB"), rng, size, (0.5, 1.0))
    style = lineart.random_style(rng)
    out = SyntheticShot([], [], [], [], np.empty(0), np.empty(0), still)
    for index in range(frames):
        t = index / max(1, frames - 1)

        def at(pair: tuple[float, float], t: float = t) -> float:
            return pair[0] + (pair[1] - pair[0]) * t

        center = (size / 2 + at(motion.shift) * size, size / 2 + at(motion.lift) * size)
        affine = _affine(center, at(motion.rotation), fit * at(motion.scale), origin)
        layer = _warp_rgba(rgba, affine, size)
        mask = alpha_mask(layer)
        target = composite(layer, still)
        out.frames.append(target)
        out.sketches.append(lineart.extract(target, style, mask))
        out.masks.append(mask)
        out.motions.append(affine)
    sheet = _warp_rgba(rgba, _affine((size / 2, size / 2), 0.0, fit, origin), size)
    return SyntheticShot(
        out.frames, out.sketches, out.masks, out.motions,
        reference=composite(sheet, sheet_bg), reference_mask=alpha_mask(sheet), background=still,
    )


def _inside(mask: np.ndarray, border: int) -> np.ndarray:
    inside = mask >= 128
    return ndimage.binary_erosion(inside, iterations=border, border_value=0) if border > 0 else inside


def flicker_pairs(outputs: Sequence[np.ndarray], shot: SyntheticShot, border: int = BORDER) -> list[float]:
    """Per pair of consecutive frames, the mean CIEDE2000 between their corresponding foreground
    pixels (``outputs``: (S, S, 3) uint8 per frame, the fills or the pictures to compare)."""
    import cv2

    if len(outputs) != len(shot.frames):
        raise ValueError(f"{len(outputs)} outputs for a shot of {len(shot.frames)} frames")
    size = shot.frames[0].shape[1], shot.frames[0].shape[0]
    values = []
    for t in range(len(outputs) - 1):
        # Frame t's pixels -> frame t+1's: through the character's own coordinates.
        step = _compose(shot.motions[t + 1], _invert(shot.motions[t]))
        moved = cv2.warpAffine(outputs[t], step.astype(np.float32), size, flags=cv2.INTER_LINEAR)
        moved_mask = cv2.warpAffine(shot.masks[t], step.astype(np.float32), size, flags=cv2.INTER_NEAREST)
        both = _inside(shot.masks[t + 1], border) & _inside(moved_mask, border)
        if not both.any():
            continue
        values.append(float(deltaE_ciede2000(to_lab(moved)[both], to_lab(outputs[t + 1])[both]).mean()))
    return values


def flicker(outputs: Sequence[np.ndarray], shot: SyntheticShot, border: int = BORDER) -> float:
    """Mean of :func:`flicker_pairs` over the shot."""
    return float(np.mean(flicker_pairs(outputs, shot, border)))


def foreground_error(outputs: Sequence[np.ndarray], shot: SyntheticShot, border: int = BORDER) -> float:
    """Mean CIEDE2000 against the ground truth over every frame's foreground (colour error)."""
    errors = []
    for output, truth, mask in zip(outputs, shot.frames, shot.masks, strict=True):
        inside = _inside(mask, border)
        errors.append(float(deltaE_ciede2000(to_lab(truth)[inside], to_lab(output)[inside]).mean()))
    return float(np.mean(errors))
