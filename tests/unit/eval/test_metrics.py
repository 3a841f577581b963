"""Metrics on constructed cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg
from skimage.color import deltaE_ciede2000, rgb2lab

from refcolor.eval import metrics

RED, GREEN, BLUE, SKY = (200, 30, 30), (30, 170, 40), (30, 40, 200), (120, 180, 230)


def scene(fg: tuple[int, ...] = RED, bg: tuple[int, ...] = BLUE, side: int = 48):
    """A square character of colour ``fg`` on ``bg``, its mask, and a sketch with its outline."""
    mask = np.zeros((side, side), np.uint8)
    mask[12:36, 12:36] = 255
    rgb = np.empty((side, side, 3), np.uint8)
    rgb[...] = bg
    rgb[mask == 255] = fg
    sketch = np.full((side, side), 255, np.uint8)
    sketch[12, 12:36] = sketch[35, 12:36] = sketch[12:36, 12] = sketch[12:36, 35] = 0
    return rgb, mask, sketch


def test_perfect_output_has_zero_error_and_the_truths_own_leakage():
    target, mask, sketch = scene()
    truth = metrics.truth_for(target, mask, sketch)
    result = metrics.image_metrics(target, truth)
    assert result["fg_error"] == 0 and result["bg_error"] == 0
    assert result["fg_leak"] == 0 and result["bg_leak"] == 0  # two distinct colours: the truth does not leak


def test_swapped_colours_leak_everywhere():
    target, mask, sketch = scene()
    swapped, _, _ = scene(fg=BLUE, bg=RED)
    result = metrics.image_metrics(swapped, metrics.truth_for(target, mask, sketch))
    assert result["fg_leak"] == 1.0 and result["bg_leak"] == 1.0
    assert result["fg_error"] > 30 and result["bg_error"] > 30


def test_colour_error_is_ciede2000_of_the_region():
    target, mask, sketch = scene()
    off, _, _ = scene(fg=(180, 50, 40))
    result = metrics.image_metrics(off, metrics.truth_for(target, mask, sketch))
    expected = deltaE_ciede2000(
        rgb2lab(np.array([[RED]]) / 255.0), rgb2lab(np.array([[(180, 50, 40)]]) / 255.0)
    )
    assert result["fg_error"] == pytest.approx(float(expected[0, 0]), rel=1e-6)
    assert result["bg_error"] == 0


def test_half_leaking_foreground_scores_half():
    target, mask, sketch = scene()
    half = target.copy()
    half[12:24, 12:36] = BLUE  # top half of the character takes the background colour
    truth = metrics.truth_for(target, mask, sketch, border=0)
    assert metrics.image_metrics(half, truth)["fg_leak"] == pytest.approx(0.5)


def test_leak_share_counts_pixels_strictly_nearer_the_other_palette():
    own, other = np.array([[50.0, 0, 0]]), np.array([[20.0, 0, 0]])
    pixels = np.array([[49.0, 0, 0], [36.0, 0, 0], [34.0, 0, 0], [10.0, 0, 0]])
    assert metrics.leak_share(pixels, own, other) == 0.5  # 34 and 10 are nearer 20; 36 is nearer 50
    assert metrics.leak_share(np.array([[35.0, 0, 0]]), own, other) == 0.0  # a tie is no leak
    assert np.isnan(metrics.leak_share(np.zeros((0, 3)), own, other))


def test_blank_output_has_zero_line_f1_and_a_flat_fill_a_high_one():
    target, mask, sketch = scene()
    truth = metrics.truth_for(target, mask, sketch)
    assert metrics.image_metrics(np.full_like(target, 255), truth)["line_f1"] == 0.0
    assert metrics.image_metrics(target, truth)["line_f1"] > 0.9


def test_line_f1_tolerance():
    reference = np.zeros((20, 20), bool)
    reference[10, 2:18] = True
    shifted = np.roll(reference, 2, axis=0)
    assert metrics.line_f1(shifted, reference, tolerance=2) == 1.0
    assert metrics.line_f1(shifted, reference, tolerance=1) == 0.0
    assert np.isnan(metrics.line_f1(shifted, np.zeros_like(reference)))


def test_frechet_matches_the_sqrtm_formula_and_is_zero_on_identical_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 8))
    b = rng.normal(1.0, 2.0, size=(25, 8))
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa + sb - 2 * linalg.sqrtm(sa @ sb).real)
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    wide_a, wide_b = rng.normal(size=(10, 50)), rng.normal(size=(12, 50))  # fewer samples than dimensions
    sa, sb = np.cov(wide_a, rowvar=False), np.cov(wide_b, rowvar=False)
    expected = ((wide_a.mean(0) - wide_b.mean(0)) ** 2).sum() + np.trace(
        sa + sb - 2 * linalg.sqrtm(sa @ sb).real
    )
    assert metrics.frechet_distance(wide_a, wide_b) == pytest.approx(expected, rel=1e-4)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_mean_interval_is_student_t_and_skips_nans():
    interval = metrics.mean_interval([1.0, 2.0, 3.0, float("nan")])
    assert interval.mean == 2.0 and interval.n == 3
    assert interval.high - interval.mean == pytest.approx(4.302652729911275 * 1 / np.sqrt(3))
    clipped = metrics.mean_interval([0.0, 0.0, 1.0], bounds=(0.0, 1.0))
    assert clipped.low == 0.0 and clipped.high == 1.0
    assert metrics.mean_interval([5.0]).low == 5.0


def test_bootstrap_interval_contains_the_statistic():
    values = np.random.default_rng(0).normal(10, 1, 100)
    interval = metrics.bootstrap_interval(lambda idx: float(values[idx].mean()), 100, resamples=100)
    assert interval.low < interval.mean < interval.high and interval.high - interval.low < 1.0


def test_fills_are_scored_apart_from_the_lines_laid_over_them():
    target, mask, sketch = scene()
    truth = metrics.truth_for(target, mask, sketch)
    blank = np.full_like(target, 255)
    result = metrics.image_metrics(target, truth, fills=blank)
    assert result["line_f1"] > 0.9 and result["fill_line_f1"] == 0.0
    assert metrics.image_metrics(target, truth)["fill_line_f1"] == result["line_f1"]  # no fills: the output


def two_part_scene():
    """The square character of :func:`scene`, its left half red and its right half green."""
    target, mask, sketch = scene()
    target[12:36, 12:24] = RED
    target[12:36, 24:36] = GREEN
    return target, mask, sketch


def test_segment_error_is_zero_for_the_truth_and_for_shading_that_averages_out():
    target, mask, sketch = two_part_scene()
    truth = metrics.truth_for(target, mask, sketch, border=0)
    assert metrics.image_metrics(target, truth)["fg_segment_error"] == pytest.approx(0.0, abs=1e-9)
    shaded = target.astype(np.int16)
    shaded[::2] += 12  # lighter and darker rows inside every part: texture, not wrong colours
    shaded[1::2] -= 12
    result = metrics.image_metrics(shaded.astype(np.uint8), truth)
    assert result["fg_error"] > 3  # the per-pixel error punishes the shading
    assert result["fg_segment_error"] < 0.5 * result["fg_error"]  # the segment error mostly does not


def test_segment_error_scores_where_colours_are():
    target, mask, sketch = two_part_scene()
    truth = metrics.truth_for(target, mask, sketch, border=0)
    swapped = target.copy()
    swapped[12:36, 12:24], swapped[12:36, 24:36] = GREEN, RED
    flat = target.copy()
    mean = rgb2lab(target[12:36, 12:36] / 255.0).reshape(-1, 3).mean(0)
    flat_lab = np.broadcast_to(mean, (24, 24, 3))
    from skimage.color import lab2rgb

    flat[12:36, 12:36] = np.round(lab2rgb(flat_lab) * 255).astype(np.uint8)
    swapped_error = metrics.image_metrics(swapped, truth)["fg_segment_error"]
    flat_error = metrics.image_metrics(flat, truth)["fg_segment_error"]
    # One mean colour per side is half-way wrong in each part; swapped parts are fully wrong.
    assert 0 < flat_error < swapped_error
    red, green = (rgb2lab(np.array([[c]]) / 255.0)[0, 0] for c in (RED, GREEN))
    expected = 0.5 * (deltaE_ciede2000(red, rgb2lab(flat[20, 20] / 255.0))
                      + deltaE_ciede2000(green, rgb2lab(flat[20, 30] / 255.0)))  # fmt: skip
    assert flat_error == pytest.approx(float(expected), rel=0.02)
    assert swapped_error == pytest.approx(float(deltaE_ciede2000(red, green)), rel=1e-6)


def test_segment_error_weights_segments_by_area_and_is_nan_without_pixels():
    labels = np.array([0, 0, 0, 1])
    truth = np.array([[50.0, 0, 0]] * 3 + [[70.0, 0, 0]])
    output = truth.copy()
    output[3] = [60.0, 0, 0]  # only the small segment is off
    one_off = float(deltaE_ciede2000(np.array([70.0, 0, 0]), np.array([60.0, 0, 0])))
    assert metrics.segment_error(output, truth, labels) == pytest.approx(one_off / 4)
    assert np.isnan(metrics.segment_error(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, np.int64)))
