"""Evaluation metrics: colour error, colour leakage, line fidelity, Fréchet distance, intervals.

All per-image metrics compare an output with the ground truth (``target``) of one
triplet, inside the foreground or background *interior*: the mask eroded by
``border`` pixels, so the anti-aliased rim of the character (whose true colour is a
blend of both sides) does not count against anyone.

* Colour error: mean CIEDE2000 (Sharma, Wu & Dalal 2005; ``skimage.color.deltaE_ciede2000``).
* Palette-segment error: the ground truth's colours on each side clustered into
  ``SEGMENTS`` segments (k-means in CIELAB, seeded); per segment, CIEDE2000 between the
  output's mean colour and the truth's mean colour over the segment's pixels; the
  area-weighted mean over segments. It scores "the right colours in the right parts"
  without punishing shading or texture a mismatched pose cannot give.
* Leakage: palettes of the ground truth's foreground and background by k-means in
  CIELAB; the share of foreground pixels whose colour is nearer the background
  palette than the foreground one (and vice versa). The ground truth itself has a
  non-zero rate (a green cloak in front of a green forest), which is reported beside.
* Line fidelity: Canny edges of the output against the sketch's skeletonised lines,
  precision/recall within ``tolerance`` pixels, F1; also of the fills alone (a method that
  lays the user's line art over its colours gets its lines for free, its fills do not).
* Fréchet distance (Heusel et al. 2017, eq. 6) between feature sets, computed exactly
  through the low-rank form below so it stays cheap enough to bootstrap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats
from scipy.cluster.vq import kmeans2
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.feature import canny
from skimage.morphology import skeletonize

PALETTE_SIZE = 4
SEGMENTS = 6  # palette segments per side for the palette-segment error
PALETTE_PIXELS = 4000  # k-means runs on a fixed-seed subsample of this many pixels per side


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 sRGB to float64 CIELAB."""
    return rgb2lab(rgb[..., :3].astype(np.float64) / 255.0)


def interior(mask: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, background) bool regions of a 0/255 mask, each eroded by ``border`` pixels."""
    inside = mask >= 128
    if border <= 0:
        return inside, ~inside
    fg = ndimage.binary_erosion(inside, iterations=border, border_value=1)
    bg = ndimage.binary_erosion(~inside, iterations=border, border_value=1)
    return fg, bg


def region_error(output_lab: np.ndarray, truth_lab: np.ndarray, region: np.ndarray) -> float:
    """Mean CIEDE2000 inside ``region``; NaN if the region is empty."""
    if not region.any():
        return float("nan")
    return float(deltaE_ciede2000(truth_lab[region], output_lab[region]).mean())


def palette(lab_pixels: np.ndarray, k: int = PALETTE_SIZE, seed: int = 0) -> np.ndarray:
    """(k', 3) k-means centres of (N, 3) Lab pixels (k' <= k: duplicates collapse)."""
    if len(lab_pixels) == 0:
        raise ValueError("palette of an empty region: the triplet has no foreground or no background pixel")
    rng = np.random.default_rng(seed)
    if len(lab_pixels) > PALETTE_PIXELS:
        lab_pixels = lab_pixels[rng.choice(len(lab_pixels), PALETTE_PIXELS, replace=False)]
    k = min(k, len(np.unique(lab_pixels, axis=0)))
    centres, _ = kmeans2(lab_pixels, k, minit="++", seed=rng)
    return centres


def nearest_distance(lab_pixels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N,) Euclidean (CIE76) distance of each pixel to its nearest centre."""
    return np.sqrt(((lab_pixels[:, None, :] - centres[None, :, :]) ** 2).sum(-1)).min(1)


def leak_share(lab_pixels: np.ndarray, own: np.ndarray, other: np.ndarray) -> float:
    """Share of pixels nearer the ``other`` palette than their ``own``; NaN if none."""
    if len(lab_pixels) == 0:
        return float("nan")
    return float((nearest_distance(lab_pixels, other) < nearest_distance(lab_pixels, own)).mean())


def segment_labels(lab_pixels: np.ndarray, k: int = SEGMENTS, seed: int = 0) -> np.ndarray:
    """(N,) int: each of (N, 3) Lab pixels' nearest centre of a seeded k-means palette of them."""
    if len(lab_pixels) == 0:
        return np.zeros(0, np.int64)
    centres = palette(lab_pixels, k, seed)
    return ((lab_pixels[:, None, :] - centres[None, :, :]) ** 2).sum(-1).argmin(1)


def segment_error(output_lab: np.ndarray, truth_lab: np.ndarray, labels: np.ndarray) -> float:
    """Area-weighted mean CIEDE2000 between per-segment mean colours of (N, 3) output and truth
    pixels, segments given by (N,) ``labels``; NaN if there is no pixel."""
    if len(labels) == 0:
        return float("nan")
    count = int(labels.max()) + 1
    area = np.bincount(labels, minlength=count).astype(np.float64)
    used = area > 0

    def means(lab: np.ndarray) -> np.ndarray:
        sums = np.stack([np.bincount(labels, lab[:, c], minlength=count) for c in range(3)], 1)
        return sums[used] / area[used, None]

    errors = deltaE_ciede2000(means(truth_lab), means(output_lab))
    return float((errors * area[used]).sum() / area[used].sum())


def edges(rgb: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """(H, W) bool Canny edges of the luminance (the line re-extractor)."""
    gray = rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    return canny(gray, sigma=sigma)


def sketch_lines(sketch: np.ndarray) -> np.ndarray:
    """(H, W) bool one-pixel centre lines of a sketch (255 = paper, ink below 128)."""
    return skeletonize(sketch < 128)


def line_f1(predicted: np.ndarray, reference: np.ndarray, tolerance: float = 2.0) -> float:
    """F1 of ``predicted`` edge pixels against ``reference`` line pixels within ``tolerance``.

    Precision: predicted pixels within ``tolerance`` of a reference pixel; recall:
    reference pixels within ``tolerance`` of a predicted one. No predicted edge gives 0;
    NaN if the reference has no line (nothing to be faithful to).
    """
    if not reference.any():
        return float("nan")
    if not predicted.any():
        return 0.0
    to_reference = ndimage.distance_transform_edt(~reference)
    to_predicted = ndimage.distance_transform_edt(~predicted)
    precision = float((to_reference[predicted] <= tolerance).mean())
    recall = float((to_predicted[reference] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Truth:
    """What every output of one triplet is compared with (computed once per triplet)."""

    lab: np.ndarray  # (H, W, 3)
    foreground: np.ndarray  # (H, W) bool interior
    background: np.ndarray  # (H, W) bool interior
    fg_palette: np.ndarray  # (k, 3) Lab
    bg_palette: np.ndarray  # (k, 3) Lab
    lines: np.ndarray  # (H, W) bool, the sketch's centre lines
    fg_segments: np.ndarray  # (N_fg,) int palette segment of each foreground interior pixel
    bg_segments: np.ndarray  # (N_bg,) int, the same for the background


def truth_for(
    target: np.ndarray, mask: np.ndarray, sketch: np.ndarray, border: int = 2, seed: int = 0
) -> Truth:
    lab = to_lab(target)
    fg, bg = interior(mask, border)
    if not fg.any() or not bg.any():
        fg, bg = interior(mask, 0)  # a tiny character: use the whole regions rather than nothing
    return Truth(
        lab, fg, bg, palette(lab[fg], seed=seed), palette(lab[bg], seed=seed), sketch_lines(sketch),
        segment_labels(lab[fg], seed=seed), segment_labels(lab[bg], seed=seed),
    )  # fmt: skip


METRICS = ("fg_error", "bg_error", "fg_segment_error", "bg_segment_error", "fg_leak", "bg_leak", "line_f1",
           "fill_line_f1")  # fmt: skip
BOUNDS = {"fg_error": (0.0, np.inf), "bg_error": (0.0, np.inf), "fg_segment_error": (0.0, np.inf),
          "bg_segment_error": (0.0, np.inf), "fg_leak": (0.0, 1.0), "bg_leak": (0.0, 1.0),
          "line_f1": (0.0, 1.0), "fill_line_f1": (0.0, 1.0)}  # fmt: skip


def image_metrics(
    output: np.ndarray, truth: Truth, tolerance: float = 2.0, fills: np.ndarray | None = None
) -> dict[str, float]:
    """Every per-image metric of one (H, W, 3) uint8 output.

    ``fills``: the method's colours without the line art laid over them (its foreground and
    background layers), when it has such; their line F1 says whether colour boundaries alone
    follow the sketch. Without it, the output counts as its own fills.
    """
    lab = to_lab(output)
    return {
        "fg_error": region_error(lab, truth.lab, truth.foreground),
        "bg_error": region_error(lab, truth.lab, truth.background),
        "fg_segment_error": segment_error(lab[truth.foreground], truth.lab[truth.foreground], truth.fg_segments),
        "bg_segment_error": segment_error(lab[truth.background], truth.lab[truth.background], truth.bg_segments),
        "fg_leak": leak_share(lab[truth.foreground], truth.fg_palette, truth.bg_palette),
        "bg_leak": leak_share(lab[truth.background], truth.bg_palette, truth.fg_palette),
        "line_f1": line_f1(edges(output), truth.lines, tolerance),
        "fill_line_f1": line_f1(edges(output if fills is None else fills), truth.lines, tolerance),
    }


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to (N, D) and (M, D) feature sets.

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2)``. With centred features
    X (N x D), Y (M x D) and S = X^T X / (N-1), the non-zero eigenvalues of S_a S_b are
    the squared singular values of Y X^T / sqrt((N-1)(M-1)), so the trace term is that
    matrix's nuclear norm: exact, and an N x M SVD instead of a D x D matrix square root.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Fréchet distance needs at least 2 samples per set, got {len(a)} and {len(b)}")
    x, y = a - a.mean(0), b - b.mean(0)
    scale = np.sqrt((len(a) - 1) * (len(b) - 1))
    cross = np.linalg.svd(y @ x.T / scale, compute_uv=False).sum()
    trace = (x**2).sum() / (len(a) - 1) + (y**2).sum() / (len(b) - 1)
    # Clipped at 0: for identical sets rounding leaves about -1e-12.
    return max(0.0, float(((a.mean(0) - b.mean(0)) ** 2).sum() + trace - 2.0 * cross))


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def mean_interval(
    values: np.ndarray | list[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Interval:
    """Mean with a Student-t confidence interval clipped to the metric's ``bounds``.

    NaNs (cases where the metric is undefined) are left out.
    """
    data = np.asarray(values, np.float64)
    data = data[~np.isnan(data)]
    if len(data) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(data.mean())
    if len(data) < 2 or np.all(data == data[0]):
        return Interval(mean, mean, mean, len(data))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(data) - 1) * stats.sem(data))
    return Interval(mean, max(bounds[0], mean - half), min(bounds[1], mean + half), len(data))


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float],
    n: int,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``statistic(indices)`` on all ``n`` items, with a bootstrap interval over resampled indices.

    The percentile interval is shifted by the bootstrap's estimate of the bias: the
    Fréchet distance of a resample with repeated items is biased upwards (fewer distinct
    samples), and an unshifted interval would not even contain the statistic.
    """
    rng = np.random.default_rng(seed)
    value = statistic(np.arange(n))
    draws = np.array([statistic(rng.integers(0, n, n)) for _ in range(resamples)])
    bias = float(draws.mean()) - value
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail]) - bias
    return Interval(value, float(low), float(high), n)
