"""Edge-aware upsampling keeps each color inside its closed line-art region."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refcolor.imaging.upsample import LUMA, edge_aware_upsample, line_regions, region_tent, upsample_fills

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
    low = model_like_colors(ideal, ink)  # (32, 32, 3)
    rng = np.random.default_rng(0)
    shade = np.linspace(0.7, 1.0, low.shape[1], dtype=np.float32)[None, :, None]  # a luminance ramp
    speckle = rng.normal(0, 0.08, low.shape).astype(np.float32)
    speckle -= (speckle @ LUMA)[..., None]  # chroma-only noise: luma unchanged
    noisy = low * shade + speckle
    truth = edge_aware_upsample(low * shade, ink)
    plain, smooth = upsample_fills(noisy, ink), upsample_fills(noisy, ink, chroma_radius=5.0)
    assert np.array_equal(plain, edge_aware_upsample(noisy, ink))  # the default radius changes nothing
    for name, region in regions.items():
        plain_error = np.abs(plain - truth)[region].mean()
        smooth_error = np.abs(smooth - truth)[region].mean()
        assert smooth_error < 0.6 * plain_error, name
        assert np.abs(smooth - ideal * 0.85).max(axis=-1)[region].max() < 0.4, name  # still no bleeding
    # Shading (luminance) is untouched by the chroma radius.
    np.testing.assert_allclose(smooth @ LUMA, plain @ LUMA, atol=1e-5)


def test_upsample_fills_keeps_flat_fills_exact_and_stacked_images_apart() -> None:
    ink, ideal, regions = synthetic()
    low = model_like_colors(ideal, ink)
    stacked = np.concatenate([low, low[..., ::-1]], axis=-1)  # two variations, different colours
    up = upsample_fills(stacked, ink, chroma_radius=4.0)
    for v, image in enumerate((ideal, ideal[..., ::-1])):
        error = np.abs(up[..., 3 * v : 3 * v + 3] - image).max(axis=-1)
        for name, region in regions.items():
            assert error[region].mean() < 0.02, (v, name)
    with pytest.raises(ValueError, match=r"radius 0\.5 is below 1"):
        edge_aware_upsample(low, ink, radius=0.5)
    with pytest.raises(ValueError, match="stacked RGB"):
        upsample_fills(low[..., :2], ink)


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
    weighted = rng.random((*low, 3)).astype(np.float32)
    fast = region_tent(weighted, sample_label, labels, radius)
    np.testing.assert_allclose(fast, naive_region_tent(weighted, sample_label, labels, radius), rtol=1e-5, atol=1e-6)
