"""Edge-aware upsampling: model-resolution colors onto the full-resolution line art.

The model colors a downscaled sketch; bringing its colors back with a plain resize
blurs them across the lines. Here every full-resolution pixel takes a weighted mean of
nearby low-resolution samples, counting only samples that lie in the *same closed
region* of the full-resolution line art (connected non-line pixels), and trusting a
sample less the more of its footprint lies outside that region (a sample straddling a
line has a mixed color). Line pixels take the color of the nearest region pixel, so
fills run under the lines without halos. Regions too small to contain any sample
take the mean of their plain bilinear colors.

:func:`upsample_fills` smooths chroma over a wider radius than luminance (still inside each
region): shading lives in luminance, while chroma speckle is what a small model leaves behind
and what the eye forgives least in a flat fill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

TENT_RADIUS = 2.0  # in low-resolution pixels: a little wider than bilinear, so fills are smooth
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601 luma weights
PURITY_POWER = 8.0  # how hard a sample straddling a line is discounted


def line_regions(ink: np.ndarray, line_threshold: float = 0.5) -> tuple[np.ndarray, int]:
    """Label the closed regions of line art: (H, W) int32, 0 on lines, 1..n inside regions.

    4-connectivity, so a one-pixel diagonal line still separates the regions on either side.
    """
    labels, count = ndimage.label(ink <= line_threshold)
    return labels.astype(np.int32), int(count)


def _cell_index(full: int, low: int) -> np.ndarray:
    """For each of ``full`` pixels, the low-resolution cell it falls in."""
    return np.minimum((np.arange(full) * low) // full, low - 1)


def _sample_purity(labels: np.ndarray, low_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each low-res sample's region (label under its centre) and the fraction of its cell in that region."""
    height, width = labels.shape
    low_h, low_w = low_shape
    centre_y = np.clip(((np.arange(low_h) + 0.5) * height / low_h).astype(int), 0, height - 1)
    centre_x = np.clip(((np.arange(low_w) + 0.5) * width / low_w).astype(int), 0, width - 1)
    sample_label = labels[centre_y[:, None], centre_x[None, :]]  # (h, w)
    cy, cx = _cell_index(height, low_h), _cell_index(width, low_w)
    cell = cy[:, None] * low_w + cx[None, :]  # (H, W) cell id of every pixel
    same = labels == sample_label.reshape(-1)[cell]  # (H, W): pixel shares its cell sample's region
    inside = np.bincount(cell.ravel(), weights=same.ravel(), minlength=low_h * low_w)
    total = np.bincount(cell.ravel(), minlength=low_h * low_w)
    purity = (inside / np.maximum(total, 1)).reshape(low_h, low_w)
    return sample_label, np.where(sample_label > 0, purity, 0.0)


def _bilinear(colors: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    channels = [
        np.asarray(
            Image.fromarray(colors[..., c].astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR)
        )
        for c in range(colors.shape[2])
    ]
    return np.stack(channels, axis=-1)


def _taps(radius: float) -> range:
    """Low-resolution neighbours per axis (relative to the cell at or left of a pixel's position)
    that a tent of ``radius`` reaches."""
    reach = max(1, math.ceil(radius))
    return range(1 - reach, reach + 1)


BLOCK_CHUNK = 1024  # blocks (one low-resolution cell each) computed together: bounds the working memory


def _axis_blocks(full: int, low: int, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along one axis: full-resolution pixels grouped by the low-resolution cell at or before their
    centre (a block shares its taps), and each tap's sample and tent weight.

    Returns:
        (positions, samples, weights): (B, R) pixel index per block, -1 where a block is shorter;
        (B, T) the sample each tap reads (clamped at the border); (B, R, T) each pixel's weight.
    """
    centre = (np.arange(full) + 0.5) * low / full - 0.5  # pixel centres in low-resolution coordinates
    first = np.floor(centre).astype(np.int64)  # -1 .. low - 1
    block = first + 1
    counts = np.bincount(block, minlength=low + 1)
    positions = np.full((low + 1, max(1, int(counts.max()))), -1, np.int64)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    positions[block, np.arange(full) - start[block]] = np.arange(full)
    taps = np.array(list(_taps(radius)))
    tap_at = (np.arange(low + 1) - 1)[:, None] + taps[None, :]  # (B, T) unclamped sample positions
    samples = np.clip(tap_at, 0, low - 1)
    pixel_centre = np.where(positions >= 0, centre[np.maximum(positions, 0)], np.nan)  # (B, R)
    weights = np.maximum(0.0, 1.0 - np.abs(pixel_centre[..., None] - tap_at[:, None, :]) / radius)
    return positions, samples, np.nan_to_num(weights).astype(np.float32)


def region_tent(weighted: np.ndarray, sample_label: np.ndarray, labels: np.ndarray, radius: float) -> np.ndarray:
    """For every full-resolution pixel, the tent-weighted sum of the low-resolution samples of its
    own region: ``sum_s tent(p, s) [label(s) == label(p)] weighted[s]``, (H, W, C) float32.

    Pixels are taken a block at a time, a block being the pixels whose centres fall in one
    low-resolution cell: they share their taps. For each region that the block's pixels are in
    (one to a few: lines part them), the block's sums are one separable product: the rows' tent
    weights, that region's taps, the columns' tent weights. The cost grows linearly with the
    pixels, with the taps per axis and with the regions a block holds.
    """
    low_h, low_w, channels = weighted.shape
    height, width = labels.shape
    rows, row_samples, row_weights = _axis_blocks(height, low_h, radius)
    cols, col_samples, col_weights = _axis_blocks(width, low_w, radius)
    by = np.repeat(np.arange(len(rows)), len(cols))  # blocks in row-major order
    bx = np.tile(np.arange(len(cols)), len(rows))
    window_rows = row_samples[by][:, :, None]  # (B, Ty, 1)
    window_cols = col_samples[bx][:, None, :]  # (B, 1, Tx)
    window_label = sample_label[window_rows, window_cols]  # (B, Ty, Tx): the region of every tap
    # Each block's pixels, (B, Ry, Rx): where they are in the image, and their regions (0 on lines
    # and in padding, where a block is shorter than the longest).
    pixel_rows, pixel_cols = rows[by][:, :, None], cols[bx][:, None, :]
    inside = (pixel_rows >= 0) & (pixel_cols >= 0)
    pixel_label = np.where(inside, labels[np.maximum(pixel_rows, 0), np.maximum(pixel_cols, 0)], 0)
    # The distinct regions of each block's pixels: its slots, in increasing order.
    flat = np.sort(pixel_label.reshape(len(by), -1), axis=1)
    first = np.concatenate([np.ones((len(by), 1), bool), flat[:, 1:] != flat[:, :-1]], axis=1) & (flat > 0)
    slot_count = first.sum(axis=1)
    slot_label = np.zeros((len(by), max(1, int(slot_count.max(initial=0)))), np.int32)
    which, where = np.nonzero(first)
    slot_label[which, (np.cumsum(first, axis=1) - 1)[which, where]] = flat[which, where]
    # The loop runs in torch, whose element-wise kernels use every core.
    out = torch.zeros((*pixel_label.shape, channels))
    values = torch.from_numpy(np.ascontiguousarray(weighted, np.float32))
    pixel_label_t, window_label_t = torch.from_numpy(pixel_label), torch.from_numpy(window_label)
    for k in range(slot_label.shape[1]):
        busy = np.nonzero(slot_count > k)[0]
        for chunk in np.array_split(busy, max(1, -(-len(busy) // BLOCK_CHUNK))):
            index = torch.from_numpy(chunk)
            label = torch.from_numpy(slot_label[chunk, k])[:, None, None]
            taps = values[torch.from_numpy(window_rows[chunk]), torch.from_numpy(window_cols[chunk])]
            taps *= (window_label_t[index] == label).unsqueeze(-1)  # this region's taps only
            wy = torch.from_numpy(row_weights[by[chunk]])  # (n, Ry, Ty)
            wx = torch.from_numpy(col_weights[bx[chunk]])  # (n, Rx, Tx)
            sums = torch.einsum("nit,ntsc,njs->nijc", wy, taps, wx)  # (n, Ry, Rx, C)
            sums *= (pixel_label_t[index] == label).unsqueeze(-1)  # kept where the pixel is in it
            out.index_add_(0, index, sums)
    # From blocks back to the image.
    total = torch.zeros((height * width, channels))
    keep = torch.from_numpy(inside)
    total[torch.from_numpy((pixel_rows * width + pixel_cols)[inside])] = out[keep]
    return total.reshape(height, width, channels).numpy()


@dataclass(frozen=True)
class Regions:
    """The closed regions of one line art, computed once for every upsampling over it."""

    labels: np.ndarray  # (H, W) int32: 0 on lines, 1..count inside regions
    count: int
    lines: np.ndarray  # (H, W) bool: line pixels
    nearest: tuple[np.ndarray, np.ndarray] | None  # for each line pixel, its nearest region pixel

    @classmethod
    def of(cls, ink: np.ndarray, line_threshold: float = 0.5) -> Regions:
        labels, count = line_regions(ink, line_threshold)
        lines = labels == 0
        nearest = None
        if lines.any() and count:
            _, (iy, ix) = ndimage.distance_transform_edt(lines, return_indices=True)
            nearest = (iy[lines], ix[lines])
        return cls(labels, count, lines, nearest)


def edge_aware_upsample(
    colors: np.ndarray,
    ink: np.ndarray,
    line_threshold: float = 0.5,
    radius: float = TENT_RADIUS,
    regions: Regions | None = None,
) -> np.ndarray:
    """Bring model colors to the line art's resolution, keeping each fill inside its lines.

    Args:
        colors: (h, w, C) float colors at model resolution; stack several images along C to
            upsample them for the cost of about one.
        ink: (H, W) float line darkness in [0, 1] at full resolution (1 = line).
        line_threshold: ink above this is line.
        radius: of the tent each pixel weights its low-resolution neighbours with, in
            low-resolution pixels (>= 1); wider smooths more. The cost grows with it (linearly).
        regions: ``Regions.of(ink, line_threshold)``, when the caller upsamples over the same line
            art more than once.

    Returns:
        (H, W, C) float32 colors.
    """
    if radius < 1:
        raise ValueError(f"radius {radius} is below 1 low-resolution pixel; use 1 or more")
    low_h, low_w = colors.shape[:2]
    height, width = ink.shape
    colors = colors.astype(np.float32)
    regions = regions or Regions.of(ink, line_threshold)
    labels, count = regions.labels, regions.count
    if count == 0:  # all line: nothing to keep apart
        return _bilinear(colors, (width, height))
    sample_label, purity = _sample_purity(labels, (low_h, low_w))
    trust = purity.astype(np.float32) ** PURITY_POWER  # (h, w)
    weighted = np.concatenate([colors * trust[..., None], trust[..., None]], axis=-1)  # (h, w, C + 1)
    total = region_tent(weighted, sample_label, labels, radius)
    weight_sum = total[..., -1]
    result = total[..., :-1] / np.maximum(weight_sum, 1e-12)[..., None]
    unreached = (weight_sum <= 1e-12) & (labels > 0)
    if unreached.any():  # regions with no usable sample: their mean plain-resize color
        plain = _bilinear(colors, (width, height))
        index = np.arange(1, count + 1)
        means = np.stack(
            [ndimage.mean(plain[..., c], labels, index) for c in range(colors.shape[2])], axis=-1
        )  # (n, C)
        result[unreached] = means[labels[unreached] - 1]
    if regions.nearest is not None:  # under the lines: the nearest region pixel's color
        result[regions.lines] = result[regions.nearest]
    return result


def upsample_fills(
    colors: np.ndarray, ink: np.ndarray, chroma_radius: float = TENT_RADIUS, line_threshold: float = 0.5
) -> np.ndarray:
    """:func:`edge_aware_upsample` of (h, w, 3V) stacked RGB images, chroma over ``chroma_radius``.

    Luminance keeps the default radius; chroma (RGB minus luma) is averaged over
    ``chroma_radius`` low-resolution pixels, still only within each closed region. With
    ``chroma_radius == TENT_RADIUS`` this is plain :func:`edge_aware_upsample`.
    """
    if colors.shape[-1] % 3:
        raise ValueError(f"upsample_fills takes stacked RGB images, got {colors.shape[-1]} channels")
    regions = Regions.of(ink, line_threshold)
    if chroma_radius == TENT_RADIUS:
        return edge_aware_upsample(colors, ink, line_threshold, regions=regions)
    low_h, low_w, channels = colors.shape
    rgb = colors.astype(np.float32).reshape(low_h, low_w, channels // 3, 3)
    luma = rgb @ LUMA  # (h, w, V)
    chroma = (rgb - luma[..., None]).reshape(low_h, low_w, channels)
    luma_up = edge_aware_upsample(luma, ink, line_threshold, regions=regions)
    chroma_up = edge_aware_upsample(chroma, ink, line_threshold, radius=chroma_radius, regions=regions)
    height, width = ink.shape
    out = chroma_up.reshape(height, width, channels // 3, 3) + luma_up[..., None]
    return out.reshape(height, width, channels)
