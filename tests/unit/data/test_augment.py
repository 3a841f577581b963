from __future__ import annotations

import numpy as np

from refcolor.data import augment


def marker_layer(side: int = 64) -> np.ndarray:
    """A transparent layer with one opaque square in the top-left quarter."""
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[8:20, 8:20] = (255, 0, 0, 255)
    return rgba


def centroid(rgba: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(rgba[..., 3] >= 128)
    return np.array([xs.mean(), ys.mean()])


IDENTITY = augment.Mismatch(False, 1.0, 0.0, (0.0, 0.0), 0.0, 8.0)


def test_identity_mismatch_keeps_the_layer():
    layer = marker_layer()
    assert np.array_equal(augment.apply_affine(layer, IDENTITY)[..., 3] >= 128, layer[..., 3] >= 128)


def test_flip_mirrors_and_shift_moves_by_the_canvas_fraction():
    layer = marker_layer()
    flipped = augment.apply_affine(layer, augment.Mismatch(True, 1.0, 0.0, (0.0, 0.0), 0.0, 8.0))
    assert np.allclose(centroid(flipped), [63 - centroid(layer)[0], centroid(layer)[1]], atol=0.6)
    shifted = augment.apply_affine(layer, augment.Mismatch(False, 1.0, 0.0, (0.25, 0.125), 0.0, 8.0))
    assert np.allclose(centroid(shifted) - centroid(layer), [16, 8], atol=0.6)


def test_scale_changes_area_by_its_square():
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[26:38, 26:38] = (255, 0, 0, 255)  # centred, so scaling keeps it on the canvas
    bigger = augment.apply_affine(layer, augment.Mismatch(False, 1.5, 0.0, (0.0, 0.0), 0.0, 8.0))
    ratio = (bigger[..., 3] >= 128).sum() / (layer[..., 3] >= 128).sum()
    assert 2.0 < ratio < 2.5


def test_elastic_field_has_the_requested_amplitude_and_is_smooth():
    field = augment.elastic_field(np.random.default_rng(0), (64, 64), amplitude=4.0, smoothness=8.0)
    assert field.shape == (2, 64, 64)
    assert 2.0 < float(np.sqrt((field**2).mean())) < 6.0
    assert float(np.abs(np.diff(field, axis=2)).max()) < 2.0  # neighbours move together


def test_drawn_mismatches_stay_in_range_and_vary():
    rng = np.random.default_rng(1)
    draws = [augment.draw_mismatch(rng, 256) for _ in range(200)]
    assert all(0.75 <= d.scale <= 1.25 and abs(d.rotation) <= 20 for d in draws)
    assert 0.3 < np.mean([d.flip for d in draws]) < 0.7
    assert 0.5 < np.mean([d.elastic > 0 for d in draws]) < 0.9


def test_hue_shift_rotates_hue_and_zero_shift_keeps_colours():
    red = np.zeros((4, 4, 3), np.uint8)
    red[...] = (220, 30, 30)
    same = augment.shift_hue_saturation(red, augment.ColorShift(0.0, 1.0))
    assert np.abs(same.astype(int) - red).max() <= 3
    green = augment.shift_hue_saturation(red, augment.ColorShift(1 / 3, 1.0))[0, 0]
    assert green[1] > 150 and green[0] < 60 and green[2] < 60
    gray = augment.shift_hue_saturation(red, augment.ColorShift(0.0, 0.0))[0, 0]
    assert int(gray.max()) - int(gray.min()) <= 3
