from __future__ import annotations

import numpy as np
import pytest

from refcolor.imaging import lineart


def two_tone(side: int = 64) -> np.ndarray:
    """Left half dark, right half light: one vertical edge at the middle."""
    rgb = np.full((side, side, 3), 230, np.uint8)
    rgb[:, : side // 2] = 40
    return rgb


@pytest.mark.parametrize("extract", [lineart.xdog, lineart.sobel, lineart.canny_lines])
def test_extractors_draw_ink_at_the_edge_and_leave_flat_areas_blank(extract):
    sketch = extract(two_tone())
    assert sketch.dtype == np.uint8 and sketch.shape == (64, 64)
    ink = sketch < 128
    assert ink[:, 28:36].any(axis=1).mean() > 0.9  # a line runs down the edge
    assert not ink[:, :20].any() and not ink[:, 44:].any()  # flat areas stay paper


@pytest.mark.parametrize("extract", [lineart.xdog, lineart.sobel, lineart.canny_lines])
def test_flat_image_has_no_lines(extract):
    assert (extract(np.full((32, 32, 3), 128, np.uint8)) >= 128).all()


def test_random_styles_cover_every_extractor_and_are_seeded():
    rng = np.random.default_rng(0)
    names = {lineart.random_style(rng).extractor for _ in range(60)}
    assert names == {"xdog", "sobel", "canny"}
    a = lineart.random_lineart(two_tone(), np.random.default_rng(5))
    b = lineart.random_lineart(two_tone(), np.random.default_rng(5))
    assert a[1] == b[1] and np.array_equal(a[0], b[0])


def test_outline_is_drawn_on_the_mask_boundary_only():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    style = lineart.LineStyle("sobel", (("sigma", 1.0), ("threshold", 0.12), ("softness", 0.05)), outline=1)
    sketch = lineart.extract(np.full((40, 40, 3), 200, np.uint8), style, mask)  # flat: only the outline shows
    ink = sketch < 128
    assert ink[10, 10:30].all() and ink[29, 10:30].all()
    assert not ink[15:25, 15:25].any() and not ink[:8].any()


def test_unknown_extractor_is_rejected_by_name():
    with pytest.raises(ValueError, match="blur"):
        lineart.extract(two_tone(), lineart.LineStyle("blur", (), 0))
