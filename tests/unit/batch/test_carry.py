"""Colours carried from frame to frame (refcolor.imaging.carry): regions keep the colour of the
region they were in, wherever the character moved, and the scenery keeps its own."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from refcolor.imaging.carry import carry_fills, estimate_motion
from refcolor.imaging.upsample import Regions

SIDE = 192


def character_motion(dx: float, dy: float, angle: float) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D((96.0, 100.0), angle, 1.0)
    matrix[:, 2] += (dx, dy)
    return matrix


def drawing(dx: float = 0, dy: float = 0, angle: float = 0, extra_box: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ink, character mask): a square with a disc and a bar inside (the character, moved by dx, dy,
    angle), and two still lines of scenery across the top and the bottom."""
    ink = np.zeros((SIDE, SIDE), np.uint8)
    mask = np.zeros((SIDE, SIDE), np.uint8)
    matrix = character_motion(dx, dy, angle)
    square = cv2.transform(np.array([[[60, 64], [132, 64], [132, 136], [60, 136]]], np.float32), matrix)[0]
    cv2.fillPoly(mask, [np.round(square).astype(np.int32)], 255)
    cv2.polylines(ink, [np.round(square).astype(np.int32)], True, 255, 2)
    centre = cv2.transform(np.array([[[96, 92]]], np.float32), matrix)[0, 0]
    cv2.circle(ink, (round(centre[0]), round(centre[1])), 16, 255, 2)
    bar = cv2.transform(np.array([[[66, 120], [126, 120]]], np.float32), matrix)[0]
    cv2.line(ink, tuple(np.round(bar[0]).astype(int)), tuple(np.round(bar[1]).astype(int)), 255, 2)
    cv2.line(ink, (0, 20), (SIDE - 1, 20), 255, 2)
    cv2.line(ink, (0, 172), (SIDE - 1, 172), 255, 2)
    if extra_box:  # something new in the scenery
        cv2.rectangle(ink, (150, 140), (170, 160), 255, 2)
    return ink.astype(np.float32) / 255.0, mask >= 128


def painted(ink: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
    """Fills with one random colour per closed region, and a gradient over the scenery."""
    regions = Regions.of(ink, mask)
    colors = np.random.default_rng(seed).integers(0, 256, (regions.count + 1, 3)).astype(np.float32)
    fills = colors[regions.labels]
    gradient = np.linspace(0, 80, SIDE, dtype=np.float32)[None, :, None]
    fills = np.where(mask[..., None], fills, np.clip(fills + gradient, 0, 255))
    return fills.astype(np.uint8)


def region_colour(fills: np.ndarray, ink: np.ndarray, mask: np.ndarray, point: tuple[int, int]) -> np.ndarray:
    regions = Regions.of(ink, mask)
    inside = (regions.labels == regions.labels[point[1], point[0]]) & regions.free
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return np.median(fills[inside], axis=0)


def test_the_motion_between_frames_is_found() -> None:
    before_ink, before_mask = drawing()
    after_ink, after_mask = drawing(9, -5, 6)
    warp = estimate_motion(before_ink * before_mask, after_ink * after_mask)  # the character's lines
    # This frame's pixels -> the previous frame's: the inverse of the character's move.
    truth = cv2.invertAffineTransform(character_motion(9, -5, 6))
    points = np.array([[[70, 70], [120, 80], [100, 130]]], np.float32)
    found, expected = cv2.transform(points, warp)[0], cv2.transform(points, truth)[0]
    assert np.abs(found - expected).max() < 1.5, (found, expected)
    # Blank ink does not move.
    assert np.array_equal(estimate_motion(np.zeros_like(after_ink), after_ink), np.eye(2, 3, dtype=np.float32))


def test_regions_take_the_colours_of_the_regions_they_came_from_and_the_scenery_stays() -> None:
    before_ink, before_mask = drawing()
    after_ink, after_mask = drawing(9, -5, 6)
    before = painted(before_ink, before_mask, seed=1)
    model = np.full_like(before, 128)  # the model painted this frame all grey
    out = carry_fills(before_ink, before, before_mask, after_ink, model, after_mask)
    matrix = character_motion(9, -5, 6)
    for point in ((96, 92), (76, 80), (96, 128)):  # in the disc, beside it, below the bar
        moved = cv2.transform(np.array([[point]], np.float32), matrix)[0, 0]
        want = region_colour(before, before_ink, before_mask, point)
        got = region_colour(out, after_ink, after_mask, (round(moved[0]), round(moved[1])))
        assert np.abs(got - want).max() <= 3, (point, got, want)
    # The scenery did not move: away from the character, each pixel keeps its own colour.
    far = np.zeros_like(after_mask)
    far[30:50, 10:180] = True
    far[150:165, 10:50] = True
    assert np.abs(out[far].astype(int) - before[far].astype(int)).max() <= 2


def test_a_new_region_keeps_the_model_colours() -> None:
    before_ink, before_mask = drawing()
    after_ink, after_mask = drawing(extra_box=True)
    before = painted(before_ink, before_mask, seed=2)
    model = np.full_like(before, 77)
    out = carry_fills(before_ink, before, before_mask, after_ink, model, after_mask)
    assert (out[145:156, 155:166] == 77).all()  # inside the new box
    assert np.abs(out[40, 100].astype(int) - before[40, 100].astype(int)).max() <= 2  # the scenery around it


def test_strength_zero_changes_nothing_and_frames_must_share_a_size() -> None:
    ink, mask = drawing()
    fills = painted(ink, mask, seed=3)
    model = np.full_like(fills, 128)
    assert (carry_fills(ink, fills, mask, ink, model, mask, strength=0.0) == model).all()
    with pytest.raises(ValueError, match="one size"):
        carry_fills(ink, fills, mask, ink[:100], model[:100], mask[:100])
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        carry_fills(ink, fills, mask, ink, model, mask, strength=1.5)


def test_without_masks_the_whole_frame_is_one_side() -> None:
    before_ink, _ = drawing()
    after_ink, _ = drawing(4, 3, 0)
    before = painted(before_ink, np.ones((SIDE, SIDE), bool), seed=4)
    out = carry_fills(before_ink, before, None, after_ink, np.full_like(before, 128), None)
    assert (out != 128).any(axis=-1).mean() > 0.9
