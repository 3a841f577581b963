"""Finishing: pull the upsampled fills toward the reference's colours, and flatten them.

Two passes over the full-resolution fills, in CIELAB, both optional and both with a
strength in [0, 1] (0 = off):

* :func:`match_colors` (``color_match``): each *side* of the sketch takes the colour
  statistics of the part of the reference that side attends to (Reinhard et al. 2001,
  "Color transfer between images": per-channel mean and standard deviation in a
  perceptual space). Sides follow the mode's token sets (:mod:`refcolor.diffusion.adapters`):
  in ``both`` mode the foreground matches the reference's foreground and the background
  its background (or the separate background image); in ``background`` mode only the
  background is split off; in ``plain`` and ``foreground`` mode the whole sketch matches
  the whole reference. A small model gets the *where* of colours roughly right but
  washes them out; this puts the reference's own palette back (``nano``'s model card).
* :func:`flatten_regions` (``flatten``): every pixel moves toward the mean colour of its
  closed region of the line art (cut by the sketch mask), so grain inside a fill goes and the
  fill's shading is kept in proportion ``1 - flatten``. Cel-style art has flat fills. The mean
  is *local*: a Gaussian window of :data:`FLATTEN_WINDOW` of the picture's shorter side, over
  the region's own pixels only. A region smaller than the window takes its whole mean; a large
  one, which is what open line art makes of several parts (a gap in an outline joins the arm to
  the sky), keeps the colours of its distant parts apart instead of averaging them into one.
  Background regions take a wider window, :data:`BACKGROUND_FLATTEN_WINDOW`: scenery is large
  soft areas (sky, a hillside), where a narrow window keeps the model's blotches.

Both run on the fills before the line art is laid over them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.color import lab2rgb, rgb2lab

from refcolor_protocol.messages import Mode

PARAMS = ("color_match", "flatten")  # the job parameters (and config keys) of this pass
FLATTEN_WINDOW = 1 / 48  # the local mean's Gaussian sigma, as a share of the shorter side
BACKGROUND_FLATTEN_WINDOW = 1 / 8  # the same for regions on the sketch's background (model card)
COARSE_SIGMA = 4.0  # a large region's window is blurred on a grid this many cells per sigma
MIN_PIXELS = 16  # a side with fewer pixels (in the output or in its source) is left as it is
STD_FLOOR = 1e-3  # keeps a flat channel from dividing by zero (Lab units)


@dataclass(frozen=True)
class ColorSource:
    """Lab statistics of the reference pixels one side of the sketch should take after."""

    mean: np.ndarray  # (3,)
    std: np.ndarray  # (3,)

    @classmethod
    def of(cls, rgb: np.ndarray, keep: np.ndarray | None = None) -> ColorSource | None:
        """Statistics of the (..., 3) float [0, 1] ``rgb`` pixels where ``keep``; None if too few."""
        lab = rgb2lab(np.clip(rgb, 0.0, 1.0)).reshape(-1, 3)
        if keep is not None:
            lab = lab[keep.reshape(-1)]
        if len(lab) < MIN_PIXELS:
            return None
        return cls(lab.mean(0), lab.std(0))


@dataclass(frozen=True)
class Sides:
    """Which colours each side of the sketch is matched to. ``split`` False: the whole sketch is one
    side, matched to ``foreground``; a side whose source is None is left as it is."""

    foreground: ColorSource | None
    background: ColorSource | None = None
    split: bool = False


def sides_for_mode(
    mode: Mode,
    reference_rgb: np.ndarray,
    reference_mask: np.ndarray | None,
    background_rgb: np.ndarray | None,
    threshold: float = 0.5,
) -> Sides:
    """The colour sources of ``mode`` (see the module doc).

    Args:
        reference_rgb: (S, S, 3) float [0, 1] reference over white.
        reference_mask: (S, S) reference foreground in [0, 1], None = unknown.
        background_rgb: (S, S, 3) separate background reference, or None.
    """
    whole = ColorSource.of(reference_rgb)
    if mode in (Mode.PLAIN, Mode.FOREGROUND):
        return Sides(whole)
    inside = None if reference_mask is None else reference_mask >= threshold
    if background_rgb is not None:
        background = ColorSource.of(background_rgb)
    elif inside is not None:
        background = ColorSource.of(reference_rgb, ~inside)
    else:
        return Sides(whole)  # nothing tells the sides apart: as the recovered tokens, the whole reference
    foreground = ColorSource.of(reference_rgb, inside) if mode == Mode.BOTH and inside is not None else whole
    return Sides(foreground, background, split=True)


def _transfer(lab: np.ndarray, source: ColorSource | None, strength: float) -> np.ndarray:
    """(N, 3) Lab pixels moved ``strength`` of the way to ``source``'s mean and spread."""
    if source is None or len(lab) < MIN_PIXELS:
        return lab
    mean, std = lab.mean(0, dtype=np.float64), lab.std(0, dtype=np.float64)
    gain = source.std / np.maximum(std, STD_FLOOR)
    # lab + strength * ((lab - mean) * gain + source.mean - lab), as one affine map per channel
    scale = 1.0 - strength + strength * gain
    offset = strength * (source.mean - mean * gain)
    return lab * scale.astype(lab.dtype) + offset.astype(lab.dtype)


def match_colors(lab: np.ndarray, sides: Sides, foreground: np.ndarray | None, strength: float) -> np.ndarray:
    """(H, W, 3) Lab fills with each side's statistics moved toward its source.

    ``foreground``: (H, W) bool sketch foreground (None = everything is foreground).
    """
    if strength <= 0:
        return lab
    if not sides.split or foreground is None:
        return _transfer(lab.reshape(-1, 3), sides.foreground, strength).reshape(lab.shape)
    out = lab.copy()
    for keep, source in ((foreground, sides.foreground), (~foreground, sides.background)):
        out[keep] = _transfer(lab[keep], source, strength)
    return out


def closed_regions(ink: np.ndarray, foreground: np.ndarray | None, line_threshold: float = 0.5) -> np.ndarray:
    """(H, W) int32 labels 0..n-1: closed regions of the line art, cut along the mask's outline
    (4-connectivity). Every line pixel joins its nearest region on its own side of the mask (any
    region if its side has none), so a region never holds pixels of the other side."""
    free = ink <= line_threshold
    if foreground is None:
        labels, count = ndimage.label(free)
    else:
        fg_labels, fg_count = ndimage.label(free & foreground)
        bg_labels, count = ndimage.label(free & ~foreground)
        labels = np.where(bg_labels > 0, bg_labels + fg_count, fg_labels)
        count += fg_count
    if count == 0:
        return np.zeros(ink.shape, np.int32)
    if not free.all():
        sides = [np.ones(ink.shape, bool)] if foreground is None else [foreground, ~foreground]
        filled = labels.copy()
        for side in sides:
            own = np.where(side, labels, 0)
            lines = side & (labels == 0)
            if not lines.any():
                continue
            source = own if own.any() else labels
            nearest = ndimage.distance_transform_edt(source == 0, return_distances=False, return_indices=True)
            filled[lines] = source[tuple(nearest)][lines]
        labels = filled
    return (labels - 1).astype(np.int32)


def flatten_regions(
    lab: np.ndarray,
    labels: np.ndarray,
    strength: float,
    window: float | None = None,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, 3) Lab fills moved ``strength`` of the way to their region's local mean colour.

    ``window``: the Gaussian sigma of the local mean in pixels (None: :data:`FLATTEN_WINDOW` of the
    shorter side). ``background``: (H, W) bool, the sketch's background; a region that lies on it
    (regions never straddle the mask, :func:`closed_regions`) takes
    :data:`BACKGROUND_FLATTEN_WINDOW` of the shorter side instead. A region whose area is at most
    that of a disc of radius 2 sigma takes its whole mean; a larger one the mean of its own pixels
    under the window around each pixel (normalised convolution, computed on a grid of
    sigma / :data:`COARSE_SIGMA` pixels and interpolated back, so its cost is linear in the pixels
    whatever the window).
    """
    if strength <= 0:
        return lab
    side = min(labels.shape)
    flat = labels.reshape(-1)
    count = int(flat.max()) + 1
    area = np.bincount(flat, minlength=count)
    sigmas = np.full(count, FLATTEN_WINDOW * side if window is None else float(window))
    if background is not None:
        on_background = np.bincount(flat, background.reshape(-1), minlength=count) * 2 > area
        sigmas[on_background] = BACKGROUND_FLATTEN_WINDOW * side
    means = np.stack([np.bincount(flat, lab[..., c].reshape(-1), minlength=count) for c in range(3)], 1)
    target = (means / area.clip(1)[:, None])[labels]
    large = np.flatnonzero(area > np.pi * (2.0 * sigmas) ** 2)
    if len(large):
        boxes = ndimage.find_objects(labels + 1)  # a large region has pixels, so its box is never None
        for region in large:
            _local_mean(lab, labels, int(region), boxes[region], float(sigmas[region]), target)
    return lab + strength * (target - lab)


def _local_mean(
    lab: np.ndarray, labels: np.ndarray, region: int, box: tuple[slice, ...], sigma: float, out: np.ndarray
) -> None:
    """Writes into ``out`` the windowed mean of ``region``'s own pixels at each of them."""
    factor = max(1, int(sigma / COARSE_SIGMA))
    pad = int(3 * sigma)
    rows, cols = (slice(max(0, b.start - pad), min(n, b.stop + pad)) for b, n in zip(box, labels.shape, strict=True))
    inside = labels[rows, cols] == region
    height, width = inside.shape
    cells = (-(-height // factor), -(-width // factor))
    # Block sums of the region's weight and colours on the coarse grid, then the window over them.
    padded = np.zeros((cells[0] * factor, cells[1] * factor, 4), np.float32)
    padded[:height, :width, 0] = inside
    padded[:height, :width, 1:] = lab[rows, cols] * inside[..., None]
    grid = padded.reshape(cells[0], factor, cells[1], factor, 4).sum((1, 3))
    grid = np.stack([ndimage.gaussian_filter(grid[..., c], sigma / factor, mode="constant") for c in range(4)], -1)
    ys, xs = np.nonzero(inside)
    coords = [(ys + 0.5) / factor - 0.5, (xs + 0.5) / factor - 0.5]
    sampled = np.stack([ndimage.map_coordinates(grid[..., c], coords, order=1, mode="nearest") for c in range(4)], 1)
    weight = np.maximum(sampled[:, :1], 1e-6)
    out[ys + rows.start, xs + cols.start] = sampled[:, 1:] / weight


def finish(
    fills: np.ndarray,
    ink: np.ndarray,
    foreground: np.ndarray | None,
    sides: Sides,
    color_match: float,
    flatten: float,
) -> np.ndarray:
    """Both passes on (H, W, 3V) stacked float [0, 1] RGB fills (colour match first).

    Args:
        fills: the upsampled fills of V variations, stacked along the channels.
        ink: (H, W) line darkness in [0, 1].
        foreground: (H, W) bool sketch foreground, None = all foreground.
        sides: from :func:`sides_for_mode`.
        color_match, flatten: strengths in [0, 1]; 0 turns a pass off.
    """
    for name, value in (("color_match", color_match), ("flatten", flatten)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value} is outside [0, 1]; use 0 (off) to 1 (full)")
    if color_match == 0 and flatten == 0:
        return fills
    labels = closed_regions(ink, foreground) if flatten > 0 else None
    channels = fills.shape[-1]
    out = np.empty_like(fills, dtype=np.float32)
    for v in range(channels // 3):
        lab = rgb2lab(np.clip(fills[..., 3 * v : 3 * v + 3], 0.0, 1.0).astype(np.float32, copy=False))
        out[..., 3 * v : 3 * v + 3] = finish_lab(lab, labels, foreground, sides, color_match, flatten)
    return out


def finish_lab(
    lab: np.ndarray,
    labels: np.ndarray | None,
    foreground: np.ndarray | None,
    sides: Sides,
    color_match: float,
    flatten: float,
) -> np.ndarray:
    """Both passes on one (H, W, 3) CIELAB fill; (H, W, 3) float32 RGB in [0, 1] out.

    ``labels``: :func:`closed_regions` of the line art (needed when ``flatten`` > 0).
    """
    # float32 throughout: skimage converts float32 four to five times faster than float64, and the
    # difference is far below a visible colour step.
    lab = match_colors(lab.astype(np.float32, copy=False), sides, foreground, color_match)
    if flatten > 0:
        if labels is None:
            raise ValueError("flatten > 0 needs the closed regions of the line art (labels)")
        background = None if foreground is None else ~foreground
        lab = flatten_regions(lab, labels, flatten, background=background).astype(np.float32, copy=False)
    with warnings.catch_warnings():  # colours pushed out of the sRGB gamut are clipped, as intended
        warnings.filterwarnings("ignore", "Conversion from CIE-LAB", UserWarning)
        return np.clip(lab2rgb(lab), 0.0, 1.0).astype(np.float32, copy=False)
