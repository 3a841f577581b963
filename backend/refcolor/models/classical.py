"""A classical (no learning) colorizer: fill each closed region of the line art with a
colour taken from the reference side that the region's mask side belongs to.

It is the evaluation's baseline (``palette_size=1``: the mean colour of the side) and a
model the service can run without torch. The reference's colours on each side are
summarised by k-means (``params.steps`` iterations over every pixel of the side, each
reported as a progress step); a region takes one palette colour, drawn with the
variation's seed in proportion to the cluster sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refcolor.imaging.finishing import closed_regions
from refcolor.models.job import ColorizeJob, JobContext, LayerSet, ModelInfo
from refcolor_protocol.messages import Mode

PREVIEW_SIDE = 128


def ink(sketch: np.ndarray) -> np.ndarray:
    """How much line is at each pixel, 0..1: dark and opaque is ink. (H, W) float32."""
    rgb = sketch[..., :3].astype(np.float32)
    luminance = rgb @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    return (1.0 - luminance) * (sketch[..., 3].astype(np.float32) / 255.0)


def label_regions(sketch: np.ndarray, mask: np.ndarray | None = None, threshold: float = 0.5) -> tuple[np.ndarray, int]:
    """Closed regions of the line art (4-connected), line pixels given to the nearest region.

    With a foreground ``mask``, its outline also closes regions, so no region straddles the
    mask: a gap in the line art cannot carry foreground colours into the background.

    Returns:
        labels: (H, W) int32 in 0..count-1.
        count: number of regions (at least 1).
    """
    labels = closed_regions(ink(sketch), None if mask is None else mask >= 128, threshold)
    return labels, int(labels.max()) + 1


def side_pixels(rgba: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """(N, 3) float32 colours of the pixels where ``keep`` (all pixels if None or empty)."""
    rgb = rgba[..., :3].reshape(-1, 3).astype(np.float32)
    if keep is not None and keep.any():
        return rgb[keep.reshape(-1)]
    return rgb


@dataclass
class Palette:
    colors: np.ndarray  # (K, 3) float32
    weights: np.ndarray  # (K,) float64, cluster sizes as fractions


def kmeans_step(pixels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """One Lloyd iteration; empty clusters keep their centre."""
    # ||p - c||^2 = ||p||^2 - 2 p.c + ||c||^2; ||p||^2 does not change the argmin.
    distances = -2.0 * pixels @ centers.T + (centers**2).sum(1)  # (N, K)
    nearest = distances.argmin(1)
    k = len(centers)
    counts = np.bincount(nearest, minlength=k)
    sums = np.stack([np.bincount(nearest, pixels[:, c], minlength=k) for c in range(3)], 1)
    updated = centers.copy()
    filled = counts > 0
    updated[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
    return updated


def palette_weights(pixels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    nearest = (-2.0 * pixels @ centers.T + (centers**2).sum(1)).argmin(1)
    counts = np.bincount(nearest, minlength=len(centers)).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def fill(labels: np.ndarray, region_colors: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: each region painted with its colour."""
    return np.clip(region_colors[labels], 0, 255).round().astype(np.uint8)


def region_sides(labels: np.ndarray, count: int, mask: np.ndarray) -> np.ndarray:
    """(count,) bool: True where most of a region lies inside the foreground mask."""
    area = np.bincount(labels.reshape(-1), minlength=count)
    inside = np.bincount(labels.reshape(-1), (mask.reshape(-1) >= 128), minlength=count)
    return inside * 2 > area


def reference_foreground(job: ColorizeJob) -> np.ndarray | None:
    """The reference's foreground: its mask, else its alpha if it has transparency, else None."""
    if job.reference_mask is not None:
        return job.reference_mask >= 128
    alpha = job.reference[..., 3]
    return alpha >= 128 if (alpha < 255).any() else None


class ClassicalColorizer:
    """Flat fill of closed regions from the reference side's k-means palette."""

    def __init__(self, palette_size: int = 6, device: str = "cpu") -> None:
        self.palette_size = palette_size
        self.info = ModelInfo(
            name="classical" if palette_size > 1 else "classical-mean",
            kind="classical",
            device="cpu",
            modes=tuple(m.value for m in Mode),
            native_resolution=0,
            description="flat fill of closed line-art regions with reference colours (no learning)",
        )

    def _pixel_sets(self, job: ColorizeJob) -> dict[str, np.ndarray]:
        ref_fg = reference_foreground(job)
        everything = side_pixels(job.reference, None)
        foreground = side_pixels(job.reference, ref_fg)
        if job.background is not None:
            background = side_pixels(job.background, None)
        else:
            background = side_pixels(job.reference, None if ref_fg is None else ~ref_fg)
        return {"all": everything, "fg": foreground, "bg": background}

    def colorize(self, job: ColorizeJob, ctx: JobContext) -> list[LayerSet]:
        params = job.params
        height, width = job.sketch.shape[:2]
        mask = job.sketch_mask if job.sketch_mask is not None else np.full((height, width), 255, np.uint8)
        labels, count = label_regions(job.sketch, mask)
        is_fg = region_sides(labels, count, mask)
        # Which palette each side draws from, per mode (plain: one palette for everything).
        fg_set = "fg" if params.mode in (Mode.BOTH, Mode.FOREGROUND) else "all"
        bg_set = "bg" if params.mode in (Mode.BOTH, Mode.BACKGROUND) else "all"
        pixel_sets = self._pixel_sets(job)
        used = sorted({fg_set, bg_set})

        rng = np.random.default_rng(job.seed)
        centers: dict[str, np.ndarray] = {}
        for name in used:
            pixels = pixel_sets[name]
            k = min(self.palette_size, len(pixels))
            centers[name] = pixels[rng.choice(len(pixels), size=k, replace=False)]
        small = labels[:: max(1, height // PREVIEW_SIDE), :: max(1, width // PREVIEW_SIDE)]

        total = params.steps * params.variations
        layer_sets: list[LayerSet] = []
        for variation in range(params.variations):
            seed = job.seed + variation
            for step in range(params.steps):
                for name in used:
                    centers[name] = kmeans_step(pixel_sets[name], centers[name])

                def preview(centers: dict[str, np.ndarray] = centers) -> np.ndarray:
                    colors = np.where(is_fg[:, None], centers[fg_set][0], centers[bg_set][0])
                    rgb = fill(small, colors)
                    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])

                ctx.progress(variation * params.steps + step + 1, total, preview, variation)
            palettes = {n: Palette(centers[n], palette_weights(pixel_sets[n], centers[n])) for n in used}
            layer_sets.append(self._layers(labels, count, is_fg, mask, palettes[fg_set], palettes[bg_set], seed))
        return layer_sets

    def _layers(
        self,
        labels: np.ndarray,
        count: int,
        is_fg: np.ndarray,
        mask: np.ndarray,
        fg: Palette,
        bg: Palette,
        seed: int,
    ) -> LayerSet:
        rng = np.random.default_rng(seed)
        fg_pick = rng.choice(len(fg.colors), size=count, p=fg.weights)
        bg_pick = rng.choice(len(bg.colors), size=count, p=bg.weights)
        region_colors = np.where(is_fg[:, None], fg.colors[fg_pick], bg.colors[bg_pick])  # (count, 3)
        rgb = fill(labels, region_colors)
        opaque = np.full(mask.shape, 255, np.uint8)
        return LayerSet(
            combined=np.dstack([rgb, opaque]),
            foreground=np.dstack([rgb, mask]),
            background=np.dstack([rgb, 255 - mask]),
            seed=seed,
        )


def load(device: str = "cpu") -> ClassicalColorizer:
    return ClassicalColorizer(palette_size=6, device=device)


def load_mean(device: str = "cpu") -> ClassicalColorizer:
    """The evaluation baseline: every region takes the mean colour of its reference side."""
    return ClassicalColorizer(palette_size=1, device=device)
