"""Edge-aware upsampling keeps each color inside its closed line-art region."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refcolor.imaging.finishing import to_lab, to_rgb
from refcolor.imaging.upsample import (
    TENT_RADIUS,
    Regions,
    _bands,
    _Blocks,
    _RegionTent,
    _Samples,
    _upsample,
    edge_aware_upsample,
    line_regions,
    upsample_lab,
)

RED, BLUE, GREEN = (0.9, 0.1, 0.1), (0.1, 0.2, 0.9), (0.2, 0.8, 0.2)


def synthetic(size: int = 256) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Line art (a circle above a full-width line) and the ideal fill of its three closed regions."""
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - 110, xx - 130)
    lines = (np.abs(radius - 70) < 1.5) | (np.abs(yy - 210) < 1.5)
    regions = {"circle": (radius < 68), "bottom": yy > 212, "outside": (radius > 72) & (yy < 208)}
    ideal = np.empty((size, size, 3), np.float32)
    ideal[:] = BLUE
    ideal[radius < 70] = RED
    ideal[yy > 210] = GREEN
    return lines.astype(np.float32), ideal, regions


def model_like_colors(ideal: np.ndarray, ink: np.ndarray, factor: int = 8) -> np.ndarray:
    """What a model at 1/8 resolution gives back: cells straddling a line mix both sides and the ink."""
    drawn = ideal * (1 - ink[..., None])
    size = ideal.shape[0] // factor
    return drawn.reshape(size, factor, size, factor, 3).mean(axis=(1, 3))


def test_colors_stay_inside_closed_regions() -> None:
    ink, ideal, regions = synthetic()
    up = edge_aware_upsample(model_like_colors(ideal, ink), ink)
    assert up.shape == ideal.shape
    error = np.abs(up - ideal).max(axis=-1)
    for name, region in regions.items():
        assert error[region].max() < 0.15, name  # no pixel takes another region's color
        assert error[region].mean() < 0.01, name
    # Under the lines the fill continues with a neighbouring region's color (no dark halo).
    assert up[ink > 0].min() > 0.05


def test_a_plain_resize_would_fail_the_same_check() -> None:
    ink, ideal, regions = synthetic()
    low = model_like_colors(ideal, ink)
    plain = np.stack(
        [
            np.asarray(Image.fromarray(low[..., c], "F").resize((256, 256), Image.Resampling.BILINEAR))
            for c in range(3)
        ],
        axis=-1,
    )
    error = np.abs(plain - ideal).max(axis=-1)
    assert max(error[r].max() for r in regions.values()) > 0.4


def test_regions_are_split_by_one_pixel_diagonal_lines() -> None:
    ink = np.eye(16, dtype=np.float32)  # a diagonal line, 8-connected
    labels, count = line_regions(ink)
    assert count == 2
    assert labels[0, 15] != labels[15, 0] and labels[0, 0] == 0


@pytest.mark.parametrize("shape", [(37, 53), (64, 64)])
def test_any_target_size_and_tiny_regions_are_filled(shape: tuple[int, int]) -> None:
    ink = np.zeros(shape, np.float32)
    ink[:, 20] = 1.0
    ink[10:13, 30:33] = 1.0
    ink[11, 31] = 0.0  # a one-pixel region no low-res sample lands in
    low = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    up = edge_aware_upsample(low, ink)
    assert up.shape == (*shape, 3) and np.isfinite(up).all()
    assert up.min() >= low.min() - 1e-6 and up.max() <= low.max() + 1e-6  # convex combinations only


def test_chroma_smoothing_removes_colour_speckle_but_keeps_shading_and_regions() -> None:
    ink, ideal, regions = synthetic()
    low = to_lab(model_like_colors(ideal, ink))  # (32, 32, 3) Lab
    rng = np.random.default_rng(0)
    low[..., 0] *= np.linspace(0.7, 1.0, low.shape[1], dtype=np.float32)[None, :]  # a lightness ramp
    noisy = low.copy()
    noisy[..., 1:] += rng.normal(0, 8.0, (*low.shape[:2], 2)).astype(np.float32)  # chroma-only speckle
    cut = Regions.of(ink)
    truth = upsample_lab(low, cut)
    plain, smooth = upsample_lab(noisy, cut), upsample_lab(noisy, cut, chroma_radius=5.0)
    np.testing.assert_allclose(plain, edge_aware_upsample(noisy, ink), atol=1e-3)  # default radius: one pass
    for name, region in regions.items():
        plain_error = np.abs(plain - truth)[region].mean()
        smooth_error = np.abs(smooth - truth)[region].mean()
        assert smooth_error < 0.6 * plain_error, name
        # still no bleeding: no pixel takes another region's colour
        assert np.abs(to_rgb(smooth) - to_rgb(truth)).max(axis=-1)[region].max() < 0.4, name
    np.testing.assert_allclose(smooth[..., 0], plain[..., 0], atol=1e-4)  # lightness untouched by the radius


def test_upsample_lab_keeps_flat_fills_exact_and_stacked_images_apart() -> None:
    ink, ideal, regions = synthetic()
    low = to_lab(model_like_colors(ideal, ink))
    flipped = to_lab(model_like_colors(ideal[..., ::-1].copy(), ink))
    up = upsample_lab(np.concatenate([low, flipped], axis=-1), Regions.of(ink), chroma_radius=4.0)
    for v, image in enumerate((ideal, ideal[..., ::-1])):
        error = np.abs(to_rgb(up[..., 3 * v : 3 * v + 3]) - image).max(axis=-1)
        for name, region in regions.items():
            assert error[region].mean() < 0.02, (v, name)
    with pytest.raises(ValueError, match=r"radius 0\.5 is below 1"):
        edge_aware_upsample(low, ink, radius=0.5)
    with pytest.raises(ValueError, match="stacked Lab"):
        upsample_lab(low[..., :2], Regions.of(ink))


def test_band_by_band_is_the_same_as_in_one_band_and_reports_progress() -> None:
    ink, ideal, _ = synthetic()
    low = to_lab(model_like_colors(ideal, ink))
    cut = Regions.of(ink)
    layers = [(low[..., :1], TENT_RADIUS, [0]), (low[..., 1:], 6.0, [1, 2])]
    reported: list[float] = []
    banded = _upsample(layers, cut, reported.append, band_pixels=2000)
    whole = _upsample(layers, cut, None, band_pixels=10**9)
    assert len(reported) > 10 and reported == sorted(reported) and reported[-1] == 1.0
    np.testing.assert_array_equal(banded, whole)


def test_regions_are_cut_along_the_mask_and_lines_join_their_own_side() -> None:
    ink = np.zeros((20, 20), np.float32)
    ink[:, 9:11] = 1.0  # a vertical line
    foreground = np.zeros((20, 20), bool)
    foreground[:10] = True  # the mask's outline crosses both regions
    cut = Regions.of(ink, foreground)
    assert cut.count == 4 and cut.labels.min() == 1  # every pixel, lines included, has a region
    for side in (foreground, ~foreground):
        assert not set(np.unique(cut.labels[side])) & set(np.unique(cut.labels[~side]))
    assert cut.labels[0, 9] == cut.labels[0, 8] and cut.labels[0, 10] == cut.labels[0, 11]  # nearest region


def naive_region_tent(weighted: np.ndarray, sample_label: np.ndarray, labels: np.ndarray, radius: float) -> np.ndarray:
    """The definition, pixel by pixel: every tap of the tent, counted when its sample is in the
    pixel's own region (samples clamped at the border, weights from the unclamped positions)."""
    low_h, low_w, channels = weighted.shape
    height, width = labels.shape
    out = np.zeros((height, width, channels))
    reach = int(np.ceil(radius))
    for i in range(height):
        fy = (i + 0.5) * low_h / height - 0.5
        for j in range(width):
            fx = (j + 0.5) * low_w / width - 0.5
            for ty in range(int(np.floor(fy)) + 1 - reach, int(np.floor(fy)) + reach + 1):
                wy = max(0.0, 1 - abs(fy - ty) / radius)
                for tx in range(int(np.floor(fx)) + 1 - reach, int(np.floor(fx)) + reach + 1):
                    wx = max(0.0, 1 - abs(fx - tx) / radius)
                    sy, sx = min(max(ty, 0), low_h - 1), min(max(tx, 0), low_w - 1)
                    if labels[i, j] > 0 and sample_label[sy, sx] == labels[i, j]:
                        out[i, j] += wy * wx * weighted[sy, sx]
    return out


@pytest.mark.parametrize(
    ("size", "low", "radius"), [((37, 29), (7, 5), 2.0), ((40, 64), (8, 8), 3.5), ((23, 50), (9, 6), 1.0)]
)
def test_the_blockwise_region_tent_is_the_definition(size, low, radius) -> None:
    rng = np.random.default_rng(3)
    height, width = size
    labels = rng.integers(0, 5, (height, width)).astype(np.int32)  # many regions, lines (0) among them
    labels[::7] = 1  # and some long runs of one region
    sample_label = rng.integers(0, 5, low).astype(np.int32)
    colors = rng.random((*low, 3)).astype(np.float32)
    regions = Regions(labels, labels > 0, 4)
    tent = _RegionTent(colors, regions, _Samples(sample_label, np.ones(low, np.float32)), radius)
    fast = np.full((height, width, 3), np.nan, np.float32)
    for first, end in _bands(tent.rows, width, band_pixels=100):  # several bands
        blocks = _Blocks.of(tent.rows, tent.cols, labels, first, end)
        fast[blocks.span] = tent.band(blocks)
    weighted = np.concatenate([colors, np.ones((*low, 1), np.float32)], -1)
    naive = naive_region_tent(weighted, sample_label, labels, radius)
    reached = naive[..., 3] > 1e-12
    np.testing.assert_allclose(fast[reached], naive[reached][:, :3] / naive[reached][:, 3:], rtol=1e-4, atol=1e-5)
    assert np.isnan(fast[~reached]).all()  # no sample of the pixel's region in reach: left to the fallback
