"""Edge-aware upsampling: model-resolution colors onto the full-resolution line art.

The model colors a downscaled sketch; bringing its colors back with a plain resize
blurs them across the lines. Here every full-resolution pixel takes a weighted mean of
nearby low-resolution samples, counting only samples that lie in the *same closed
region* of the full-resolution line art (:class:`Regions`), and trusting a sample less
the more of its footprint lies outside that region (a sample straddling a line has a
mixed color). Line pixels belong to the nearest region on their side of the sketch mask,
so fills run under the lines without halos. A pixel that no sample of its region reaches
takes the region's sample mean; a region too small to contain any sample, the mean of its
plain bilinear colors.

:func:`upsample_lab` takes CIELAB colors and smooths chroma (a, b) over a wider radius than
lightness (still inside each region): shading lives in lightness, while chroma speckle is
what a small model leaves behind and what the eye forgives least in a flat fill.

Cost and memory: the work runs in bands of about ``pixels.BAND_PIXELS`` full-resolution
pixels, so the temporaries stay small whatever the document's size, and a caller can
report progress (and cancel) between bands. Inside a band, pixels are taken a block at a
time (the pixels of one low-resolution cell share their taps), one separable product per
region a block holds: the cost grows linearly with the pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from refcolor.imaging.pixels import BAND_PIXELS, bands

TENT_RADIUS = 2.0  # in low-resolution pixels: a little wider than bilinear, so fills are smooth
PURITY_POWER = 8.0  # how hard a sample straddling a line is discounted
BLOCK_CHUNK = 1024  # blocks (one low-resolution cell each) computed together inside a band
THREADS = min(4, os.cpu_count() or 1)  # bands computed at once (two cores: 1.3-1.5x faster than one)

T = TypeVar("T")

Progress = Callable[[float], None]
"""Called with the share of the work done, in [0, 1]; may raise to stop the work (cancel)."""


@dataclass(frozen=True)
class Regions:
    """The closed regions of one line art, computed once for everything that runs over it.

    ``labels`` (H, W) int32 gives every pixel its region, 1..``count``: a region is a
    4-connected set of non-line pixels (``free``) on one side of the sketch mask, so a
    one-pixel diagonal line still parts the regions on either side and no region straddles
    the mask's outline; a line pixel belongs to the nearest region on its own side of the mask
    (to the nearest region at all when its side has none). Line art that is all line is one
    region.
    """

    labels: np.ndarray
    free: np.ndarray  # (H, W) bool: the pixels that are not line
    count: int

    @classmethod
    def of(
        cls,
        ink: np.ndarray,
        foreground: np.ndarray | None = None,
        line_threshold: float = 0.5,
        progress: Progress | None = None,
    ) -> Regions:
        """Regions of ``ink`` ((H, W) line darkness in [0, 1]; above ``line_threshold`` is line),
        cut along ``foreground`` ((H, W) bool sketch mask; None: no cut). ``progress(done)`` is
        called after each side's components and each side's nearest-region pass."""
        import cv2  # on first use: training (its GPU image has no OpenCV) never comes here

        free = ink <= line_threshold
        if not free.any():
            return cls(np.ones(ink.shape, np.int32), free, 1)
        sides = [None] if foreground is None else [foreground, ~foreground]
        report = progress or (lambda done: None)
        steps = 2 * len(sides)
        labels = np.zeros(ink.shape, np.int32)
        count = 0
        for done, side in enumerate(sides, start=1):
            pixels = free if side is None else free & side
            found, side_labels = cv2.connectedComponents(pixels.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
            np.add(labels, side_labels + count, out=labels, where=side_labels > 0)
            count += found - 1
            report(done / steps)
        if not free.all():
            for done, side in enumerate(sides, start=len(sides) + 1):
                lines = ~free if side is None else side & ~free
                source = free if side is None else free & side
                if lines.any():
                    np.copyto(labels, _nearest(source if source.any() else free, labels), where=lines)
                report(done / steps)
        return cls(labels, free, count)


def _nearest(source: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(H, W): for every pixel, ``labels`` of the nearest ``source`` pixel (a Euclidean distance
    transform that also says which source pixel is nearest)."""
    import cv2  # on first use: training (its GPU image has no OpenCV) never comes here

    _, nearest = cv2.distanceTransformWithLabels(
        (~source).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # DIST_LABEL_PIXEL numbers the source pixels 1, 2, ... in raster order.
    return np.concatenate([np.zeros(1, np.int32), labels[source]])[nearest]


def line_regions(ink: np.ndarray, line_threshold: float = 0.5) -> tuple[np.ndarray, int]:
    """The closed regions of line art alone: (H, W) int32, 0 on lines, 1..n inside regions."""
    regions = Regions.of(ink, None, line_threshold)
    return np.where(regions.free, regions.labels, 0).astype(np.int32), regions.count if regions.free.any() else 0


@dataclass(frozen=True)
class _Axis:
    """Along one axis: full-resolution pixels grouped in blocks by the low-resolution cell at or
    before their centre (a block's pixels share their taps), and each tap's sample and weight."""

    positions: np.ndarray  # (B, R) pixel index per block, -1 where a block is shorter
    samples: np.ndarray  # (B, T) the sample each tap reads (clamped at the border)
    weights: np.ndarray  # (B, R, T) float32 each pixel's tent weight per tap

    @classmethod
    def of(cls, full: int, low: int, radius: float) -> _Axis:
        centre = (np.arange(full) + 0.5) * low / full - 0.5  # pixel centres in low-resolution coordinates
        block = np.floor(centre).astype(np.int64) + 1  # 0 .. low
        counts = np.bincount(block, minlength=low + 1)
        positions = np.full((low + 1, max(1, int(counts.max()))), -1, np.int64)
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        positions[block, np.arange(full) - start[block]] = np.arange(full)
        reach = max(1, math.ceil(radius))
        tap_at = (np.arange(low + 1) - 1)[:, None] + np.arange(1 - reach, reach + 1)[None, :]  # unclamped
        pixel_centre = np.where(positions >= 0, centre[np.maximum(positions, 0)], np.nan)
        weights = np.maximum(0.0, 1.0 - np.abs(pixel_centre[..., None] - tap_at[:, None, :]) / radius)
        return cls(positions, np.clip(tap_at, 0, low - 1), np.nan_to_num(weights).astype(np.float32))


def _bands(rows: _Axis, width: int, band_pixels: int) -> list[tuple[int, int]]:
    """Runs of row blocks, each covering about ``band_pixels`` pixels: [(first block, end block)]."""
    per_block = (rows.positions >= 0).sum(axis=1) * width
    bands, start, pixels = [], 0, 0
    for block, size in enumerate(per_block):
        pixels += int(size)
        if pixels >= band_pixels:
            bands.append((start, block + 1))
            start, pixels = block + 1, 0
    if start < len(per_block):
        bands.append((start, len(per_block)))
    return bands


def _row_span(rows: _Axis, first: int, end: int) -> slice:
    used = rows.positions[first:end]
    used = used[used >= 0]
    return slice(int(used.min()), int(used.max()) + 1) if used.size else slice(0, 0)


@dataclass(frozen=True)
class _Samples:
    """Each low-resolution sample's region (0: unusable, its centre is on a line) and its trust: the
    share of its cell in that region, to the :data:`PURITY_POWER`."""

    label: np.ndarray  # (h, w) int32
    trust: np.ndarray  # (h, w) float32

    @classmethod
    def of(cls, regions: Regions, low_shape: tuple[int, int]) -> _Samples:
        height, width = regions.labels.shape
        low_h, low_w = low_shape
        centre_y = np.clip(((np.arange(low_h) + 0.5) * height / low_h).astype(int), 0, height - 1)
        centre_x = np.clip(((np.arange(low_w) + 0.5) * width / low_w).astype(int), 0, width - 1)
        at_centre = np.ix_(centre_y, centre_x)
        label = np.where(regions.free[at_centre], regions.labels[at_centre], 0).astype(np.int32)
        cy = np.minimum((np.arange(height) * low_h) // height, low_h - 1)
        cx = np.minimum((np.arange(width) * low_w) // width, low_w - 1)
        inside = np.zeros(low_h * low_w)
        for rows in bands(height, width):  # in bands: the (rows, W) temporaries stay small
            cell = cy[rows, None] * low_w + cx[None, :]
            same = (regions.labels[rows] == label.reshape(-1)[cell]) & regions.free[rows]
            inside += np.bincount(cell.ravel(), weights=same.ravel(), minlength=low_h * low_w)
        total = np.outer(np.bincount(cy, minlength=low_h), np.bincount(cx, minlength=low_w)).reshape(-1)
        purity = (inside / np.maximum(total, 1)).reshape(low_h, low_w)
        return cls(label, np.where(label > 0, purity, 0.0).astype(np.float32) ** PURITY_POWER)


@dataclass(frozen=True)
class _Blocks:
    """One band's blocks (row blocks ``first``..``end`` by every column block): their pixels and
    the distinct regions of those pixels (a block's slots). The same for every radius."""

    span: slice  # the band's rows
    by: np.ndarray  # (B,) row block of each block, row-major
    bx: np.ndarray  # (B,) column block
    pixel_rows: np.ndarray  # (B, Ry, 1) pixel row per block, -1 in padding
    pixel_cols: np.ndarray  # (B, 1, Rx)
    inside: np.ndarray  # (B, Ry, Rx) bool: a real pixel, not padding
    pixel_label: torch.Tensor  # (B, Ry, Rx) int32: each pixel's region (0 in padding)
    slot_label: np.ndarray  # (B, S) int32: a block's regions, in increasing order, 0 past its count
    slot_count: np.ndarray  # (B,)

    @classmethod
    def of(cls, rows: _Axis, cols: _Axis, labels: np.ndarray, first: int, end: int) -> _Blocks:
        n_cols = len(cols.positions)
        by = np.repeat(np.arange(first, end), n_cols)
        bx = np.tile(np.arange(n_cols), end - first)
        pixel_rows, pixel_cols = rows.positions[by][:, :, None], cols.positions[bx][:, None, :]
        inside = (pixel_rows >= 0) & (pixel_cols >= 0)
        pixel_label = np.where(inside, labels[np.maximum(pixel_rows, 0), np.maximum(pixel_cols, 0)], 0)
        flat = np.sort(pixel_label.reshape(len(by), -1), axis=1)
        first_of = np.concatenate([np.ones((len(by), 1), bool), flat[:, 1:] != flat[:, :-1]], axis=1) & (flat > 0)
        slot_count = first_of.sum(axis=1)
        slot_label = np.zeros((len(by), max(1, int(slot_count.max(initial=0)))), np.int32)
        which, where = np.nonzero(first_of)
        slot_label[which, (np.cumsum(first_of, axis=1) - 1)[which, where]] = flat[which, where]
        span = _row_span(rows, first, end)
        return cls(span, by, bx, pixel_rows, pixel_cols, inside, torch.from_numpy(pixel_label), slot_label, slot_count)


class _RegionTent:
    """For every full-resolution pixel, the trust- and tent-weighted mean of the low-resolution
    samples of its own region, band by band (NaN where no sample of its region is in reach)."""

    def __init__(self, colors: np.ndarray, regions: Regions, samples: _Samples, radius: float) -> None:
        low_h, low_w = colors.shape[:2]
        height, width = regions.labels.shape
        self.width = width
        self.rows, self.cols = _Axis.of(height, low_h, radius), _Axis.of(width, low_w, radius)
        trust = samples.trust[..., None]
        weighted = np.concatenate([colors.astype(np.float32) * trust, trust], axis=-1)  # (h, w, C + 1)
        self.values = torch.from_numpy(np.ascontiguousarray(weighted, np.float32))
        self.sample_label = samples.label

    def band(self, blocks: _Blocks) -> np.ndarray:
        """The (rows, W, C) float32 colors of the band's rows."""
        rows, cols, by, bx = self.rows, self.cols, blocks.by, blocks.bx
        channels = self.values.shape[-1]
        window_rows = rows.samples[by][:, :, None]  # (B, Ty, 1)
        window_cols = cols.samples[bx][:, None, :]  # (B, 1, Tx)
        window_label = torch.from_numpy(self.sample_label[window_rows, window_cols])  # every tap's region
        # One separable product per slot: the rows' tent weights, the slot region's taps, the columns'.
        # The loop runs in torch, whose element-wise kernels use every core.
        out = torch.zeros((*blocks.inside.shape, channels))
        for k in range(blocks.slot_label.shape[1]):
            busy = np.nonzero(blocks.slot_count > k)[0]
            for chunk in np.array_split(busy, max(1, -(-len(busy) // BLOCK_CHUNK))):
                index = torch.from_numpy(chunk)
                label = torch.from_numpy(blocks.slot_label[chunk, k])[:, None, None]
                taps = self.values[torch.from_numpy(window_rows[chunk]), torch.from_numpy(window_cols[chunk])]
                taps *= (window_label[index] == label).unsqueeze(-1)  # this region's taps only
                wy = torch.from_numpy(rows.weights[by[chunk]])  # (n, Ry, Ty)
                wx = torch.from_numpy(cols.weights[bx[chunk]])  # (n, Rx, Tx)
                sums = torch.einsum("nit,ntsc,njs->nijc", wy, taps, wx)  # (n, Ry, Rx, C + 1)
                sums *= (blocks.pixel_label[index] == label).unsqueeze(-1)  # kept where the pixel is in it
                out.index_add_(0, index, sums)
        # From blocks back to the band's rows; then the weighted sums to means.
        span, width = blocks.span, self.width
        gathered = torch.zeros(((span.stop - span.start) * width, channels))
        where = ((blocks.pixel_rows - span.start) * width + blocks.pixel_cols)[blocks.inside]
        gathered[torch.from_numpy(where)] = out[torch.from_numpy(blocks.inside)]
        total = gathered.numpy().reshape(span.stop - span.start, width, channels)
        weight = total[..., -1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weight > 1e-12, total[..., :-1] / weight, np.nan).astype(np.float32)


def bilinear_rows(grid: np.ndarray, y: np.ndarray, width: int) -> np.ndarray:
    """Rows of the bilinear resize of an (h, w, C) ``grid`` to ``width`` columns (pixel centres
    aligned, edges clamped): at the grid rows ``y`` (float, one per output row), (len(y), width, C)."""
    import cv2  # on first use: training (its GPU image has no OpenCV) never comes here

    y = np.clip(y, 0, grid.shape[0] - 1)
    y0 = np.floor(y).astype(int)
    fy = (y - y0)[:, None, None].astype(np.float32)
    lines = grid[y0] * (1 - fy) + grid[np.minimum(y0 + 1, grid.shape[0] - 1)] * fy  # along y
    return cv2.resize(lines, (width, len(y)), interpolation=cv2.INTER_LINEAR).reshape(len(y), width, -1)  # along x


def _plain_rows(colors: np.ndarray, rows: slice, size: tuple[int, int]) -> np.ndarray:
    """Rows ``rows`` of the plain bilinear resize of (h, w, C) ``colors`` to ``size`` = (H, W)."""
    height, width = size
    return bilinear_rows(colors, (np.arange(rows.start, rows.stop) + 0.5) * colors.shape[0] / height - 0.5, width)


def _plain_region_means(colors: np.ndarray, regions: Regions, wanted: np.ndarray) -> np.ndarray:
    """(count + 1, C) mean of the plain bilinear upsampling of ``colors`` over each region of
    ``wanted`` (the others are left 0); only those regions' pixels are computed."""
    height, width = regions.labels.shape
    low_h, low_w = colors.shape[:2]
    keep = np.zeros(regions.count + 1, bool)
    keep[wanted] = True
    sums = np.zeros((regions.count + 1, colors.shape[-1]))
    area = np.zeros(regions.count + 1)
    for rows in bands(height, width):
        ys, xs = np.nonzero(keep[regions.labels[rows]])
        if not len(ys):
            continue
        ys += rows.start
        y = np.clip((ys + 0.5) * low_h / height - 0.5, 0, low_h - 1)
        x = np.clip((xs + 0.5) * low_w / width - 0.5, 0, low_w - 1)
        y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
        y1, x1 = np.minimum(y0 + 1, low_h - 1), np.minimum(x0 + 1, low_w - 1)
        fy, fx = (y - y0)[:, None], (x - x0)[:, None]
        plain = (colors[y0, x0] * (1 - fx) + colors[y0, x1] * fx) * (1 - fy) + (
            colors[y1, x0] * (1 - fx) + colors[y1, x1] * fx
        ) * fy
        labels = regions.labels[ys, xs]
        area += np.bincount(labels, minlength=len(area))
        for c in range(colors.shape[-1]):
            sums[:, c] += np.bincount(labels, weights=plain[:, c], minlength=len(area))
    return (sums / np.maximum(area, 1)[:, None]).astype(np.float32)


def _upsample(
    layers: list[tuple[np.ndarray, float, list[int]]],
    regions: Regions,
    progress: Progress | None,
    band_pixels: int = BAND_PIXELS,
) -> np.ndarray:
    """Each (h, w, C_i) image of ``layers`` upsampled over its own radius into the output channels
    it names; (H, W, sum C_i) float32."""
    height, width = regions.labels.shape
    colors = np.concatenate([c for c, _, _ in layers], axis=-1).astype(np.float32)
    order = np.argsort(np.concatenate([dest for _, _, dest in layers]))
    colors = colors[..., order]  # in output order, for the plain fills below
    out = np.empty((height, width, colors.shape[-1]), np.float32)
    if not regions.free.any():  # all line: nothing to keep apart
        for rows in bands(height, width, band_pixels):
            out[rows] = _plain_rows(colors, rows, (height, width))
        return out
    samples = _Samples.of(regions, colors.shape[:2])
    tents = [(_RegionTent(c, regions, samples, radius), dest) for c, radius, dest in layers]
    runs = _bands(tents[0][0].rows, width, band_pixels)  # blocks are the same for every radius
    # Pixels (and channels) that no usable sample of their region reaches: (rows, ys, xs, channels).
    unreached: list[tuple[slice, np.ndarray, np.ndarray, np.ndarray]] = []
    first_tent = tents[0][0]

    def band(run: tuple[int, int]) -> None:
        blocks = _Blocks.of(first_tent.rows, first_tent.cols, regions.labels, *run)
        for tent, dest in tents:
            values = tent.band(blocks)
            out[blocks.span][..., dest] = values
            ys, xs, cs = np.nonzero(np.isnan(values))
            if len(ys):
                unreached.append((blocks.span, ys, xs, np.asarray(dest)[cs]))

    in_parallel(band, runs, progress)
    if unreached:
        _fill_unreached(out, colors, regions, samples, unreached)
    return out


def _fill_unreached(
    out: np.ndarray,
    colors: np.ndarray,
    regions: Regions,
    samples: _Samples,
    unreached: list[tuple[slice, np.ndarray, np.ndarray, np.ndarray]],
) -> None:
    """Pixels (channels) that no usable sample of their region reaches take the trust-weighted mean
    of their region's samples; a region with no sample at all (a tiny one) takes the mean of its
    plain bilinear colours. ``unreached``: (rows, ys, xs, channels) of those pixels, per band."""
    count = regions.count + 1
    label = samples.label.reshape(-1)
    trust = samples.trust.reshape(-1).astype(np.float64)
    weight = np.bincount(label, weights=trust, minlength=count)
    flat = colors.reshape(-1, colors.shape[-1])
    sums = np.stack([np.bincount(label, weights=trust * c, minlength=count) for c in flat.T], -1)
    means = sums / np.maximum(weight, 1e-300)[:, None]
    wanted = np.unique(np.concatenate([regions.labels[rows][ys, xs] for rows, ys, xs, _ in unreached]))
    never = wanted[weight[wanted] <= 0]
    if len(never):
        means[never] = _plain_region_means(colors, regions, never)[never]
    means = means.astype(np.float32)
    for rows, ys, xs, cs in unreached:
        out[rows][ys, xs, cs] = means[regions.labels[rows][ys, xs], cs]


def edge_aware_upsample(
    colors: np.ndarray,
    ink: np.ndarray,
    line_threshold: float = 0.5,
    radius: float = TENT_RADIUS,
    regions: Regions | None = None,
) -> np.ndarray:
    """Bring model colors to the line art's resolution, keeping each fill inside its lines.

    Args:
        colors: (h, w, C) float colors at model resolution.
        ink: (H, W) float line darkness in [0, 1] at full resolution (1 = line).
        line_threshold: ink above this is line.
        radius: of the tent each pixel weights its low-resolution neighbours with, in
            low-resolution pixels (>= 1); wider smooths more. The cost grows with it (linearly).
        regions: ``Regions.of(ink, ..., line_threshold)`` when the caller has them (they may be
            cut along a sketch mask).

    Returns:
        (H, W, C) float32 colors.
    """
    if radius < 1:
        raise ValueError(f"radius {radius} is below 1 low-resolution pixel; use 1 or more")
    channels = list(range(colors.shape[-1]))
    return _upsample([(colors, radius, channels)], regions or Regions.of(ink, None, line_threshold), None)


def upsample_lab(
    lab: np.ndarray,
    regions: Regions,
    chroma_radius: float = TENT_RADIUS,
    progress: Progress | None = None,
) -> np.ndarray:
    """:func:`edge_aware_upsample` of (h, w, 3V) stacked CIELAB images over ``regions``: lightness
    over :data:`TENT_RADIUS`, chroma (a, b) over ``chroma_radius`` low-resolution pixels, both only
    within each closed region. ``progress`` is called after each band. (H, W, 3V) float32."""
    if lab.ndim != 3 or lab.shape[-1] % 3:
        raise ValueError(f"upsample_lab takes (h, w, 3V) stacked Lab images, got shape {lab.shape}")
    if chroma_radius < 1:
        raise ValueError(f"chroma_radius {chroma_radius} is below 1 low-resolution pixel; use 1 or more")
    lightness = list(range(0, lab.shape[-1], 3))
    chroma = [c for c in range(lab.shape[-1]) if c % 3]
    layers = [(lab[..., lightness], TENT_RADIUS, lightness), (lab[..., chroma], chroma_radius, chroma)]
    return _upsample(layers, regions, progress)


def in_parallel(work: Callable[[T], None], items: Sequence[T], progress: Progress | None = None) -> None:
    """``work(item)`` for every item, on :data:`THREADS` threads (the work is numpy, OpenCV and torch,
    which release the GIL), with ``progress(share done)`` called on this thread as items finish, in
    order. If ``progress`` or a ``work`` raises, the items not started are dropped and the error is
    raised once the running ones end."""
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            for done, future in enumerate(futures, start=1):
                future.result()
                if progress is not None:
                    progress(done / len(futures))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
