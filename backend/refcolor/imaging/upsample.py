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


def edge_aware_upsample(
    colors: np.ndarray, ink: np.ndarray, line_threshold: float = 0.5, radius: float = TENT_RADIUS
) -> np.ndarray:
    """Bring model colors to the line art's resolution, keeping each fill inside its lines.

    Args:
        colors: (h, w, C) float colors at model resolution; stack several images along C to
            upsample them for the cost of about one.
        ink: (H, W) float line darkness in [0, 1] at full resolution (1 = line).
        line_threshold: ink above this is line.
        radius: of the tent each pixel weights its low-resolution neighbours with, in
            low-resolution pixels (>= 1); wider smooths more. The cost grows with its square.

    Returns:
        (H, W, C) float32 colors.
    """
    if radius < 1:
        raise ValueError(f"radius {radius} is below 1 low-resolution pixel; use 1 or more")
    low_h, low_w = colors.shape[:2]
    height, width = ink.shape
    colors = colors.astype(np.float32)
    labels, count = line_regions(ink, line_threshold)
    if count == 0:  # all line: nothing to keep apart
        return _bilinear(colors, (width, height))
    sample_label, purity = _sample_purity(labels, (low_h, low_w))
    trust = purity.astype(np.float32) ** PURITY_POWER  # (h, w)

    fy = (np.arange(height) + 0.5) * low_h / height - 0.5  # pixel centres in low-res coordinates
    fx = (np.arange(width) + 0.5) * low_w / width - 0.5
    y0, x0 = np.floor(fy).astype(np.int64), np.floor(fx).astype(np.int64)
    # Trust-weighted colors with the trust itself as a last channel: one gather per tap serves both
    # sums. The tap loop runs in torch, whose element-wise kernels use every core.
    weighted = torch.from_numpy(np.concatenate([colors * trust[..., None], trust[..., None]], axis=-1))
    region = torch.from_numpy(labels)
    sample_region = torch.from_numpy(sample_label.astype(np.int32))
    total = torch.zeros(height, width, colors.shape[2] + 1)  # (H, W, C + 1)
    taps = _taps(radius)
    for dy in taps:
        yy = torch.from_numpy(np.clip(y0 + dy, 0, low_h - 1))
        wy = torch.from_numpy(np.maximum(0.0, 1.0 - np.abs(fy - (y0 + dy)) / radius).astype(np.float32))
        rows, region_rows = weighted.index_select(0, yy), sample_region.index_select(0, yy)  # (H, w, ...)
        for dx in taps:
            xx = torch.from_numpy(np.clip(x0 + dx, 0, low_w - 1))
            wx = torch.from_numpy(
                np.maximum(0.0, 1.0 - np.abs(fx - (x0 + dx)) / radius).astype(np.float32)
            )
            weight = (region_rows.index_select(1, xx) == region) * (wy[:, None] * wx[None, :])  # (H, W)
            total.addcmul_(weight.unsqueeze(-1), rows.index_select(1, xx))
    weight_sum = total[..., -1].numpy()
    result = (total[..., :-1] / total[..., -1:].clamp_min(1e-12)).numpy()
    unreached = (weight_sum <= 1e-12) & (labels > 0)
    if unreached.any():  # regions with no usable sample: their mean plain-resize color
        plain = _bilinear(colors, (width, height))
        index = np.arange(1, count + 1)
        means = np.stack(
            [ndimage.mean(plain[..., c], labels, index) for c in range(colors.shape[2])], axis=-1
        )  # (n, C)
        result[unreached] = means[labels[unreached] - 1]
    lines = labels == 0
    if lines.any():  # under the lines: the nearest region pixel's color
        _, (iy, ix) = ndimage.distance_transform_edt(lines, return_indices=True)
        result[lines] = result[iy[lines], ix[lines]]
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
    if chroma_radius == TENT_RADIUS:
        return edge_aware_upsample(colors, ink, line_threshold)
    low_h, low_w, channels = colors.shape
    rgb = colors.astype(np.float32).reshape(low_h, low_w, channels // 3, 3)
    luma = rgb @ LUMA  # (h, w, V)
    chroma = (rgb - luma[..., None]).reshape(low_h, low_w, channels)
    luma_up = edge_aware_upsample(luma, ink, line_threshold)
    chroma_up = edge_aware_upsample(chroma, ink, line_threshold, radius=chroma_radius)
    height, width = ink.shape
    out = chroma_up.reshape(height, width, channels // 3, 3) + luma_up[..., None]
    return out.reshape(height, width, channels)
