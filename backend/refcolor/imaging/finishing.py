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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from refcolor.imaging.pixels import bands
from refcolor.imaging.upsample import Regions, bilinear_rows
from refcolor_protocol.messages import Mode

PARAMS = ("color_match", "flatten")  # the job parameters (and config keys) of this pass
FLATTEN_WINDOW = 1 / 48  # the local mean's Gaussian sigma, as a share of the shorter side
BACKGROUND_FLATTEN_WINDOW = 1 / 8  # the same for regions on the sketch's background (model card)
COARSE_SIGMA = 4.0  # a large region's window is blurred on a grid this many cells per sigma
MIN_PIXELS = 16  # a side with fewer pixels (in the output or in its source) is left as it is
STD_FLOOR = 1e-3  # keeps a flat channel from dividing by zero (Lab units)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in [0, 1] (clipped) to CIELAB (D65), float32. OpenCV's conversion: the same
    formulas as skimage's within 0.7 Lab units, eight times faster."""
    import cv2  # on first use: training (its GPU image has no OpenCV) never comes here
    flat = np.ascontiguousarray(np.clip(rgb, 0.0, 1.0), np.float32).reshape(-1, 1, 3)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).reshape(rgb.shape)


def to_rgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) CIELAB to sRGB float32, clipped to [0, 1] (colours outside the gamut are clipped)."""
    import cv2  # on first use: training (its GPU image has no OpenCV) never comes here
    flat = np.ascontiguousarray(lab, np.float32).reshape(-1, 1, 3)
    return np.clip(cv2.cvtColor(flat, cv2.COLOR_Lab2RGB), 0.0, 1.0).reshape(lab.shape)


@dataclass(frozen=True)
class ColorSource:
    """Lab statistics of the reference pixels one side of the sketch should take after."""

    mean: np.ndarray  # (3,)
    std: np.ndarray  # (3,)

    @classmethod
    def of(cls, rgb: np.ndarray, keep: np.ndarray | None = None) -> ColorSource | None:
        """Statistics of the (..., 3) float [0, 1] ``rgb`` pixels where ``keep``; None if too few."""
        lab = to_lab(rgb).reshape(-1, 3)
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


def _affine(
    mean: np.ndarray, std: np.ndarray, source: ColorSource | None, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per Lab channel that moves pixels of ``mean`` and ``std`` ``strength`` of the
    way to ``source``'s mean and spread: ``lab + strength * ((lab - mean) * gain + source.mean - lab)``."""
    if source is None:
        return np.ones(3), np.zeros(3)
    gain = source.std / np.maximum(std, STD_FLOOR)
    return 1.0 - strength + strength * gain, strength * (source.mean - mean * gain)


Progress = Callable[[float], None]


class Finishing:
    """Both passes over one (H, W, 3) CIELAB fill, computed band by band (:meth:`rgb`).

    Colour matching is one affine map per side and channel; flattening pulls each pixel toward its
    region's (local) mean; a region lies on one side of the mask, so the mean of the matched fill is
    the matched mean, and both passes come down to per-region statistics gathered in one pass.
    """

    def __init__(
        self,
        lab: np.ndarray,
        regions: Regions,
        foreground: np.ndarray | None,
        sides: Sides,
        color_match: float,
        flatten: float,
        window: float | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Gathers the statistics (one pass over ``lab``, then one over each large region's box);
        ``progress(done)`` is called as that goes (``done`` in [0, 1]; it may raise to cancel)."""
        progress = progress or (lambda done: None)
        for name, value in (("color_match", color_match), ("flatten", flatten)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} is outside [0, 1]; use 0 (off) to 1 (full)")
        self.lab, self.regions, self.flatten = lab, regions, flatten
        count = regions.count + 1
        area = np.zeros(count)
        sums, squares = np.zeros((count, 3)), np.zeros((count, 3))
        on_foreground = np.zeros(count)
        runs = list(bands(*regions.labels.shape)) if color_match > 0 or flatten > 0 else []  # off: no statistics
        for done, rows in enumerate(runs, start=1):
            labels = regions.labels[rows].reshape(-1)
            values = lab[rows].reshape(-1, 3)
            area += np.bincount(labels, minlength=count)
            if foreground is not None:
                on_foreground += np.bincount(labels, foreground[rows].reshape(-1), minlength=count)
            for c in range(3):
                sums[:, c] += np.bincount(labels, values[:, c], minlength=count)
                if color_match > 0:
                    squares[:, c] += np.bincount(labels, values[:, c].astype(np.float64) ** 2, minlength=count)
            progress(0.5 * done / len(runs))
        # The sides: a region's side is where most of its pixels are (they all are, but for line
        # pixels of a side without regions).
        background = on_foreground * 2 <= area if foreground is not None else np.zeros(count, bool)
        background[0] = False
        # Per side (foreground, background): the colour match's scale and offset per Lab channel.
        self.split = color_match > 0 and sides.split and foreground is not None
        self.background = background
        self.side_scale, self.side_offset = np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)
        if color_match > 0:
            groups = [(np.ones(count, bool), sides.foreground)]
            if self.split:
                groups = [(~background, sides.foreground), (background, sides.background)]
            for side, (members, source) in enumerate(groups):
                pixels = area[members].sum()
                if pixels < MIN_PIXELS or source is None:
                    continue
                mean = sums[members].sum(0) / pixels
                std = np.sqrt(np.maximum(squares[members].sum(0) / pixels - mean**2, 0.0))
                self.side_scale[side], self.side_offset[side] = _affine(mean, std, source, color_match)
        self.means = (sums / np.maximum(area, 1)[:, None]).astype(np.float32)
        self.grids: list[_LocalMean] = []
        if flatten > 0:
            side = min(regions.labels.shape)
            sigmas = np.full(count, FLATTEN_WINDOW * side if window is None else float(window))
            sigmas[background] = BACKGROUND_FLATTEN_WINDOW * side
            large = np.flatnonzero((area > np.pi * (2.0 * sigmas) ** 2) & (np.arange(count) > 0))
            if len(large):
                boxes = ndimage.find_objects(regions.labels)  # a large region has pixels: never None
                for done, region in enumerate(large, start=1):
                    box, sigma = boxes[region - 1], float(sigmas[region])
                    self.grids.append(_LocalMean.of(lab, regions.labels, int(region), box, sigma))
                    progress(0.5 + 0.5 * done / len(large))

    def lab_rows(self, rows: slice) -> np.ndarray:
        """The finished (rows, W, 3) CIELAB fill of ``rows``."""
        labels = self.regions.labels[rows]
        lab = np.ascontiguousarray(self.lab[rows], np.float32)
        if self.flatten > 0:
            target = self.means[labels]
            for grid in self.grids:
                grid.sample(labels, rows, target)
            lab += self.flatten * (target - lab)
        # The colour match: one affine map per side (two at most), so pick by side, not by region.
        if self.split:
            background = self.background[labels][..., None]
            scale = np.where(background, self.side_scale[1], self.side_scale[0])
            offset = np.where(background, self.side_offset[1], self.side_offset[0])
            return lab * scale + offset
        return lab * self.side_scale[0] + self.side_offset[0]

    def rgb(self, rows: slice) -> np.ndarray:
        """The finished (rows, W, 3) sRGB fill of ``rows``, float32 in [0, 1]."""
        return to_rgb(self.lab_rows(rows))


@dataclass(frozen=True)
class _LocalMean:
    """The windowed mean of one large region's own pixels: block sums of its weight and colours on a
    coarse grid (cells of ``factor`` pixels over its box), blurred by the window, divided, and
    sampled bilinearly at the region's pixels."""

    region: int
    top: int
    left: int
    height: int
    width: int
    factor: int
    grid: np.ndarray  # (gy, gx, 3) float32: the windowed mean colour at each cell

    @classmethod
    def of(cls, lab: np.ndarray, labels: np.ndarray, region: int, box: tuple[slice, ...], sigma: float) -> _LocalMean:
        import cv2  # on first use: training (its GPU image has no OpenCV) never comes here

        factor = max(1, int(sigma / COARSE_SIGMA))
        pad = int(3 * sigma)
        rows, cols = (
            slice(max(0, b.start - pad), min(n, b.stop + pad)) for b, n in zip(box, labels.shape, strict=True)
        )
        height, width = rows.stop - rows.start, cols.stop - cols.start
        cells = (-(-height // factor), -(-width // factor))
        grid = np.zeros((*cells, 4), np.float32)
        step = factor * max(1, (1 << 18) // max(1, width * factor))  # whole cells, about 256 K pixels a band
        for top in range(0, height, step):
            band = slice(rows.start + top, min(rows.stop, rows.start + top + step))
            inside = labels[band, cols] == region
            block = np.zeros((-(-(band.stop - band.start) // factor) * factor, cells[1] * factor, 4), np.float32)
            block[: inside.shape[0], :width, 0] = inside
            block[: inside.shape[0], :width, 1:] = lab[band, cols] * inside[..., None]
            n = block.shape[0] // factor
            # Block means over whole cells (OpenCV's area resize; a mean, not a sum: the weight and the
            # colours are scaled alike, and only their ratio is used)
            grid[top // factor : top // factor + n] = cv2.resize(block, (cells[1], n), interpolation=cv2.INTER_AREA)
        for c in range(4):
            grid[..., c] = ndimage.gaussian_filter(grid[..., c], sigma / factor, mode="constant")
        # The window's mean colour at each cell; cells the region does not reach take their nearest
        # reached cell's (they are only sampled near the region's pixels).
        reached = grid[..., 0] > 1e-6
        means = grid[..., 1:] / np.maximum(grid[..., :1], 1e-6)
        if not reached.all():
            nearest = ndimage.distance_transform_edt(~reached, return_distances=False, return_indices=True)
            means = means[tuple(nearest)]
        return cls(region, rows.start, cols.start, height, width, factor, np.ascontiguousarray(means, np.float32))

    def sample(self, labels: np.ndarray, rows: slice, out: np.ndarray) -> None:
        """Writes the local mean into ``out`` ((rows, W, 3)) where ``labels`` (the rows' labels) is the region."""
        top, bottom = max(rows.start, self.top), min(rows.stop, self.top + self.height)
        if top >= bottom:
            return
        cols = slice(self.left, self.left + self.width)
        inside = labels[top - rows.start : bottom - rows.start, cols] == self.region
        if not inside.any():
            return
        y = (np.arange(top, bottom) - self.top + 0.5) / self.factor - 0.5  # in grid rows
        wide = bilinear_rows(self.grid, y, self.grid.shape[1] * self.factor)
        target = out[top - rows.start : bottom - rows.start, cols]
        np.copyto(target, wide[:, : self.width], where=inside[..., None])


def closed_regions(ink: np.ndarray, foreground: np.ndarray | None, line_threshold: float = 0.5) -> np.ndarray:
    """(H, W) int32 labels 0..n-1: :class:`Regions` of the line art, cut along the mask's outline."""
    return Regions.of(ink, foreground, line_threshold).labels - 1


def finish_lab(
    lab: np.ndarray,
    regions: Regions,
    foreground: np.ndarray | None,
    sides: Sides,
    color_match: float,
    flatten: float,
) -> np.ndarray:
    """Both passes on one (H, W, 3) CIELAB fill; (H, W, 3) float32 RGB in [0, 1] out.

    ``regions``: of the line art, cut along ``foreground`` (:class:`Regions`).
    """
    finishing = Finishing(lab, regions, foreground, sides, color_match, flatten)
    out = np.empty(lab.shape, np.float32)
    for rows in bands(*lab.shape[:2]):
        out[rows] = finishing.rgb(rows)
    return out


def match_colors(lab: np.ndarray, sides: Sides, foreground: np.ndarray | None, strength: float) -> np.ndarray:
    """(H, W, 3) Lab fills with each side's statistics moved toward its source (colour matching
    alone, over the whole image). ``foreground``: (H, W) bool sketch foreground (None = all)."""
    if strength <= 0:
        return lab
    regions = Regions.of(np.zeros(lab.shape[:2], np.float32), foreground)
    return Finishing(lab, regions, foreground, sides, strength, 0.0).lab_rows(slice(0, lab.shape[0]))


def flatten_regions(
    lab: np.ndarray,
    labels: np.ndarray,
    strength: float,
    window: float | None = None,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W, 3) Lab fills moved ``strength`` of the way to their region's local mean colour
    (flattening alone, over the whole image).

    ``labels``: (H, W) regions 0..n-1 (:func:`closed_regions`). ``window``: the Gaussian sigma of the
    local mean in pixels (None: :data:`FLATTEN_WINDOW` of the shorter side). ``background``: (H, W)
    bool, the sketch's background; a region on it takes :data:`BACKGROUND_FLATTEN_WINDOW` of the
    shorter side instead. A region whose area is at most that of a disc of radius 2 sigma takes its
    whole mean; a larger one the mean of its own pixels under the window around each pixel
    (normalised convolution on a grid of sigma / :data:`COARSE_SIGMA` pixels, interpolated back).
    """
    if strength <= 0:
        return lab
    regions = Regions(labels.astype(np.int32) + 1, np.ones(labels.shape, bool), int(labels.max()) + 1)
    foreground = None if background is None else ~background
    finishing = Finishing(lab, regions, foreground, Sides(None), 0.0, strength, window)
    return finishing.lab_rows(slice(0, lab.shape[0]))


def finish(
    fills: np.ndarray,
    ink: np.ndarray,
    foreground: np.ndarray | None,
    sides: Sides,
    color_match: float,
    flatten: float,
) -> np.ndarray:
    """Both passes on (H, W, 3V) stacked float [0, 1] RGB fills (whole images; the pipeline runs
    :class:`Finishing` band by band instead). ``foreground``: (H, W) bool, None = all foreground."""
    for name, value in (("color_match", color_match), ("flatten", flatten)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value} is outside [0, 1]; use 0 (off) to 1 (full)")
    if color_match == 0 and flatten == 0:
        return fills
    regions = Regions.of(ink, foreground)
    out = np.empty(fills.shape, np.float32)
    for v in range(fills.shape[-1] // 3):
        lab = to_lab(fills[..., 3 * v : 3 * v + 3])
        out[..., 3 * v : 3 * v + 3] = finish_lab(lab, regions, foreground, sides, color_match, flatten)
    return out
