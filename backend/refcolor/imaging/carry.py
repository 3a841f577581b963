"""Colours that stay put from one frame of a shot to the next (issue 20).

A diffusion model colours each in-between on its own: the same sleeve comes out a slightly
different red in every frame, and played back the fills shimmer. Paint-bucket tools for cels
carry colours along the line art's closed regions from one cel to the next. This module does
that on top of whatever the model painted, for each side of the sketch mask on its own (a
character walks, the scenery behind it stays):

1. :func:`estimate_motion`: the affine motion from this frame's line art to the previous one's,
   from the side's ink alone (OpenCV's ECC alignment on blurred ink at a small working size,
   started from a phase correlation; a side without lines does not move);
2. the closed regions of both frames (:class:`~refcolor.imaging.upsample.Regions`, cut along
   the sketch masks), the previous frame's moved onto this one;
3. :func:`carry_fills`: a region that lies mostly (:data:`MIN_OVERLAP`) on one region of the
   previous frame, on the same side of the mask and of a comparable size
   (:data:`MAX_AREA_RATIO`), is *matched*. Each of its pixels onto which a pixel of that previous
   region moved takes that pixel's colour; its other pixels (a part that was hidden) move by the
   mean colour difference of those. A region with no match (something new came into view)
   keeps the model's colours, and from then on carries them.

The previous frame's colours are its *carried* colours, so a colour, once chosen, holds for the
whole shot. Everything is deterministic in the inputs (uint8 in, uint8 out), so a batch resumed
from the files it wrote gives the frames an uninterrupted run gives.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from refcolor.imaging.finishing import to_lab, to_rgb
from refcolor.imaging.upsample import Regions

logger = logging.getLogger(__name__)

MOTION_SIDE = 256  # working size (longer side) of the motion estimate
MOTION_BLUR = 2.0  # Gaussian sigma (working pixels) on the ink: ECC needs smooth images
MIN_OVERLAP = 0.5  # a region matches when this share of it lies on one previous region
MAX_AREA_RATIO = 4.0  # ... and neither of the two is more than this many times the other
MIN_REGION_PIXELS = 4  # smaller regions (specks between lines) keep the model's colours
EDGE_SHARE = 0.015  # lines this close to the mask's outline move with the character
NOISE = 10.0  # CIELAB distance up to which a pixel's own colour is averaged in (the model's noise)
CHOICE = 20.0  # ... and from which it is not (another colour chosen for the same part)
LARGE_SHARE = 0.005  # regions of at least this share of the frame get a smooth shift where uncovered
SMOOTH_SHARE = 0.03  # its window (Gaussian sigma), a share of the shorter side


def estimate_motion(previous_ink: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """(2, 3) float32 affine map from this frame's pixel coordinates to the previous frame's.

    ``previous_ink``, ``ink``: (H, W) line darkness in [0, 1] (:func:`~refcolor.imaging.pixels.line_ink`),
    the same size. Falls back to the phase correlation's translation when ECC does not converge,
    and to no motion when the ink is blank.
    """
    import cv2

    height, width = ink.shape
    scale = min(1.0, MOTION_SIDE / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))

    def small(image: np.ndarray) -> np.ndarray:
        out = cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(out, (0, 0), MOTION_BLUR)

    template, moving = small(ink), small(previous_ink)
    warp = np.eye(2, 3, dtype=np.float32)
    if template.std() < 1e-4 or moving.std() < 1e-4:
        return warp
    window = cv2.createHanningWindow(size, cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(template, moving, window)
    warp[:, 2] = (dx, dy)  # where this frame's content lies in the previous frame
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    try:
        _, found = cv2.findTransformECC(template, moving, warp.copy(), cv2.MOTION_AFFINE, criteria)
        warp = np.asarray(found, np.float32)
    except cv2.error:
        logger.debug("ECC did not converge; carrying colours along the phase correlation's translation")
    # Back to full-size pixels: x_prev = A x + t at the working scale, for x = s X, x_prev = s X_prev.
    sx, sy = size[0] / width, size[1] / height
    full = warp.astype(np.float64).copy()
    full[0, 1] *= sy / sx
    full[1, 0] *= sx / sy
    full[0, 2] /= sx
    full[1, 2] /= sy
    return full.astype(np.float32)


def _sides(labels: np.ndarray, count: int, foreground: np.ndarray | None) -> np.ndarray:
    """(count + 1,) bool: whether each region (1..count) is on the foreground side."""
    if foreground is None:
        return np.ones(count + 1, bool)
    inside = np.bincount(labels.ravel(), weights=foreground.ravel().astype(np.float64), minlength=count + 1)
    total = np.bincount(labels.ravel(), minlength=count + 1)
    return inside * 2 >= np.maximum(total, 1)


def _mean_lab(lab: np.ndarray, labels: np.ndarray, count: int, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((count + 1, 3) mean CIELAB, (count + 1,) pixels) of each region's ``where`` pixels."""
    chosen = labels[where]
    pixels = np.bincount(chosen, minlength=count + 1).astype(np.float64)
    means = np.stack(
        [np.bincount(chosen, weights=lab[..., c][where], minlength=count + 1) for c in range(3)], axis=1
    )
    return means / np.maximum(pixels, 1)[:, None], pixels


def carry_fills(
    previous_ink: np.ndarray,
    previous_fills: np.ndarray,
    previous_foreground: np.ndarray | None,
    ink: np.ndarray,
    fills: np.ndarray,
    foreground: np.ndarray | None,
    strength: float = 1.0,
) -> np.ndarray:
    """This frame's (H, W, 3) uint8 ``fills`` with its regions' colours carried from the previous
    frame's ``previous_fills`` (see the module doc); a new array.

    ``*_ink``: (H, W) line darkness in [0, 1]; ``*_foreground``: (H, W) bool sketch masks (None:
    all foreground). ``strength`` in [0, 1]: how far a matched region moves toward its previous
    colours (1: takes them whole; 0 returns ``fills`` unchanged) where they differ by at most
    :data:`NOISE`; where they differ by :data:`CHOICE` or more, it takes them whole.

    Raises:
        ValueError: the frames differ in size, or ``strength`` is outside [0, 1].
    """

    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength={strength} is outside [0, 1]; use 0 (off) to 1 (full)")
    if previous_ink.shape != ink.shape or previous_fills.shape != fills.shape or fills.shape[:2] != ink.shape:
        raise ValueError(
            f"frames of a shot must have one size: the previous frame is {previous_ink.shape[1]}x"
            f"{previous_ink.shape[0]}, this one {ink.shape[1]}x{ink.shape[0]}"
        )
    out = fills.copy()
    if strength == 0.0:
        return out
    previous = Regions.of(previous_ink, previous_foreground)
    current = Regions.of(ink, foreground)
    previous_sides = _sides(previous.labels, previous.count, previous_foreground)
    current_sides = _sides(current.labels, current.count, foreground)
    lab = to_lab(fills.astype(np.float32) / 255.0)
    previous_lab = to_lab(previous_fills.astype(np.float32) / 255.0)
    previous_means, previous_pixels = _mean_lab(previous_lab, previous.labels, previous.count, previous.free)
    means, pixels = _mean_lab(lab, current.labels, current.count, current.free)
    shift = np.zeros(lab.shape, np.float32)
    changed = np.zeros(ink.shape, bool)
    for side in (True, False) if foreground is not None or previous_foreground is not None else (True,):
        on_side, previous_on_side = current_sides[current.labels] == side, previous_sides[previous.labels] == side
        # The lines along the mask's outline move with the character, not with the scenery beyond it.
        warp = estimate_motion(previous_ink * _lines_of(previous_on_side, side), ink * _lines_of(on_side, side))
        # The previous frame's regions of this side, seen from this frame's pixels (0: none).
        warped = _move(np.where(previous_on_side, previous.labels, 0), warp, nearest=True)
        # Overlaps: how many free pixels of each current region lie on each previous region.
        on = current.free & on_side & (warped > 0)
        pairs = current.labels[on].astype(np.int64) * (previous.count + 1) + warped[on]
        counts = np.bincount(pairs, minlength=(current.count + 1) * (previous.count + 1))
        overlap = counts.reshape(current.count + 1, previous.count + 1)
        best = overlap.argmax(axis=1)
        ratio = pixels / np.maximum(previous_pixels[best], 1)
        matched = (
            (current_sides == side)
            & (pixels >= MIN_REGION_PIXELS)
            & (overlap[np.arange(current.count + 1), best] >= MIN_OVERLAP * pixels)
            & (ratio <= MAX_AREA_RATIO)
            & (ratio >= 1 / MAX_AREA_RATIO)
        )
        matched[0] = False
        difference = to_lab(_move(previous_fills, warp).astype(np.float32) / 255.0) - lab
        follows = matched[current.labels] & (warped == best[current.labels])
        chosen = current.labels[follows]
        followers = np.bincount(chosen, minlength=current.count + 1).astype(np.float64)
        mean_difference = np.stack(
            [np.bincount(chosen, weights=difference[..., c][follows], minlength=current.count + 1) for c in range(3)],
            axis=1,
        ) / np.maximum(followers, 1)[:, None]
        region_shift = np.where(followers[:, None] > 0, mean_difference, previous_means[best] - means)
        in_matched = matched[current.labels]
        shift[in_matched] = region_shift.astype(np.float32)[current.labels[in_matched]]
        shift[follows] = difference[follows]
        _smooth_large_regions(shift, difference, follows, current.labels, matched, followers, pixels)
        changed |= in_matched
        logger.debug("carried %d of %d regions (side %s)", int(matched.sum()), current.count, side)
    # A colour that differs a little (the model's noise) is averaged in as ``strength`` says; one that
    # differs a lot (the model chose another colour for the part this time) is not: a mean of red
    # and blue is a purple nobody painted. Between NOISE and CHOICE (CIELAB distance) the two blend.
    distance = np.linalg.norm(shift, axis=-1, keepdims=True)
    own = (1.0 - strength) * np.clip((CHOICE - distance) / (CHOICE - NOISE), 0.0, 1.0)
    rgb = to_rgb(lab + (1.0 - own) * shift)
    out[changed] = np.clip(np.round(rgb[changed] * 255.0), 0, 255).astype(np.uint8)
    return out


def _smooth_large_regions(
    shift: np.ndarray,
    difference: np.ndarray,
    follows: np.ndarray,
    labels: np.ndarray,
    matched: np.ndarray,
    followers: np.ndarray,
    pixels: np.ndarray,
) -> None:
    """In a large matched region, the pixels that no previous pixel moved onto (scenery the
    character uncovered) take the windowed mean of the differences of the pixels around them that
    did (a Gaussian of :data:`SMOOTH_SHARE` of the shorter side, over the region's own followers),
    not the region's mean difference: a constant shift would leave the character's old outline as
    a patch of another tone. Writes into ``shift``."""
    import cv2

    sigma = SMOOTH_SHARE * min(labels.shape)
    large = np.flatnonzero(matched & (pixels >= LARGE_SHARE * labels.size) & (followers < pixels) & (followers > 0))
    if large.size == 0:
        return
    boxes = ndimage.find_objects(np.where(np.isin(labels, large), labels, 0))
    for region in large:
        box = boxes[region - 1]
        if box is None:
            continue
        inside = labels[box] == region
        weight = (follows[box] & inside).astype(np.float32)
        gaps = inside & ~follows[box]
        spread = cv2.GaussianBlur(weight, (0, 0), sigma)
        reached = gaps & (spread > 1e-3)
        for c in range(3):
            local = cv2.GaussianBlur(difference[box][..., c] * weight, (0, 0), sigma) / np.maximum(spread, 1e-3)
            shift[box][..., c][reached] = local[reached]


def _lines_of(on_side: np.ndarray, foreground: bool) -> np.ndarray:
    """(H, W) float32 weights of the ink that tells how a side moves: the foreground's grown by
    :data:`EDGE_SHARE` of the shorter side (its outline), the background's shrunk by as much."""
    import cv2

    reach = max(1, round(EDGE_SHARE * min(on_side.shape)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    change = cv2.dilate if foreground else cv2.erode
    return change(on_side.astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).astype(np.float32)


def _move(image: np.ndarray, warp: np.ndarray, nearest: bool = False) -> np.ndarray:
    """``image`` of the previous frame resampled at this frame's pixels (``warp``: this frame's
    coordinates to the previous frame's); labels ``nearest`` with 0 outside, colours bilinear with
    the edge repeated."""
    import cv2

    height, width = image.shape[:2]
    if nearest:
        return cv2.warpAffine(image.astype(np.int32), warp, (width, height),
                              flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=0)
    return cv2.warpAffine(image, warp, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
