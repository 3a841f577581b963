"""Finishing: colour statistics per side after the mode's token sets, and flattening inside closed regions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from skimage.color import rgb2lab

from refcolor.diffusion.config import TINY
from refcolor.diffusion.factory import build_pipeline
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.imaging import finishing
from refcolor_protocol.errors import ProtocolError
from refcolor_protocol.fields import from_dict
from refcolor_protocol.messages import ColorizeParams, Mode

from .conftest import generators

RED, BLUE, GREEN = (0.85, 0.15, 0.15), (0.15, 0.2, 0.85), (0.2, 0.7, 0.25)


def halves(left: tuple[float, ...], right: tuple[float, ...], size: int = 32) -> np.ndarray:
    """(size, size, 3) float RGB: ``left`` in the left half, ``right`` in the right, with a little noise."""
    rng = np.random.default_rng(0)
    rgb = np.empty((size, size, 3), np.float32)
    rgb[:, : size // 2], rgb[:, size // 2 :] = left, right
    return np.clip(rgb + rng.normal(0, 0.03, rgb.shape), 0, 1).astype(np.float32)


def left_half(size: int = 32) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[:, : size // 2] = True
    return mask


def lab_mean(rgb: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    lab = finishing.to_lab(rgb)
    return (lab if keep is None else lab[keep]).reshape(-1, 3).mean(0)


def test_sides_follow_the_modes_token_sets() -> None:
    reference, inside = halves(RED, BLUE), left_half().astype(np.float32)
    background = halves(GREEN, GREEN)
    red, blue, green = (lab_mean(halves(c, c)) for c in (RED, BLUE, GREEN))
    whole = lab_mean(reference)

    both = finishing.sides_for_mode(Mode.BOTH, reference, inside, None)
    assert both.split
    np.testing.assert_allclose(both.foreground.mean, red, atol=2)
    np.testing.assert_allclose(both.background.mean, blue, atol=2)
    # background mode: the foreground attends to the whole reference, the background to its side
    bg_mode = finishing.sides_for_mode(Mode.BACKGROUND, reference, inside, None)
    np.testing.assert_allclose(bg_mode.foreground.mean, whole, atol=1e-6)
    np.testing.assert_allclose(bg_mode.background.mean, blue, atol=2)
    # a separate background image is the background's source
    separate = finishing.sides_for_mode(Mode.BOTH, reference, inside, background)
    np.testing.assert_allclose(separate.background.mean, green, atol=2)
    for joint in (
        finishing.sides_for_mode(Mode.PLAIN, reference, inside, None),
        finishing.sides_for_mode(Mode.FOREGROUND, reference, inside, None),
        finishing.sides_for_mode(Mode.BOTH, reference, None, None),  # no mask: nothing to split by
    ):
        assert not joint.split
        np.testing.assert_allclose(joint.foreground.mean, whole, atol=1e-6)


def test_match_colors_gives_each_side_its_sources_statistics() -> None:
    fills = rgb2lab(halves(GREEN, GREEN))
    sides = finishing.sides_for_mode(Mode.BOTH, halves(RED, BLUE), left_half().astype(np.float32), None)
    out = finishing.match_colors(fills, sides, left_half(), 1.0)
    for keep, source in ((left_half(), sides.foreground), (~left_half(), sides.background)):
        np.testing.assert_allclose(out[keep].mean(0), source.mean, atol=1e-3)
        np.testing.assert_allclose(out[keep].std(0), source.std, atol=1e-3)
    half = finishing.match_colors(fills, sides, left_half(), 0.5)
    np.testing.assert_allclose(half, (fills + out) / 2, atol=1e-3)
    assert finishing.match_colors(fills, sides, left_half(), 0.0) is fills


def test_closed_regions_are_cut_by_lines_and_by_the_mask_and_lines_join_a_neighbour() -> None:
    ink = np.zeros((20, 30), np.float32)
    ink[:, 10] = 1.0  # one vertical line
    foreground = np.zeros((20, 30), bool)
    foreground[:, 20:] = True  # the mask cuts the right-hand part again
    labels = finishing.closed_regions(ink, foreground)
    assert len(np.unique(labels)) == 3
    assert len({labels[0, 0], labels[0, 15], labels[0, 25]}) == 3
    assert labels[5, 10] in (labels[5, 9], labels[5, 11])  # the line belongs to a region beside it
    assert len(np.unique(finishing.closed_regions(ink, None))) == 2


def test_line_pixels_join_a_region_on_their_own_side_of_the_mask() -> None:
    # The scenario: an outline drawn just inside the character's mask. Its pixels are nearer the
    # background region than any foreground one; joining it carried foreground colours into the
    # background's mean when flattening.
    ink = np.zeros((20, 30), np.float32)
    ink[:, 14:16] = 1.0  # a two-pixel line just inside the mask: its left pixel is nearer the background
    foreground = np.zeros((20, 30), bool)
    foreground[:, 14:] = True
    labels = finishing.closed_regions(ink, foreground)
    for region in np.unique(labels):
        sides = np.unique(foreground[labels == region])
        assert len(sides) == 1, f"region {region} holds pixels of both sides"


def test_flatten_pulls_each_region_to_its_mean() -> None:
    rng = np.random.default_rng(1)
    lab = rng.normal(50, 10, (20, 30, 3))
    labels = np.zeros((20, 30), np.int32)
    labels[:, 15:] = 1
    flat = finishing.flatten_regions(lab, labels, 1.0, window=10.0)  # regions smaller than the window
    for region in (labels == 0, labels == 1):
        np.testing.assert_allclose(flat[region], np.broadcast_to(lab[region].mean(0), flat[region].shape), rtol=1e-5)
    half = finishing.flatten_regions(lab, labels, 0.5, window=10.0)
    np.testing.assert_allclose(half - flat, (lab - flat) / 2, atol=1e-4)  # half of each deviation is kept


def test_flatten_keeps_the_distant_parts_of_a_large_open_region_apart() -> None:
    # The scenario: open line art (a gap in an outline) makes one region of a red arm and the blue sky
    # beside it. The whole region's mean painted both a purple neither has; the local mean keeps each
    # part its own colour and still takes the grain out of it.
    rng = np.random.default_rng(2)
    lab = np.zeros((128, 128, 3))
    lab[:, :64], lab[:, 64:] = (45.0, 60.0, 45.0), (60.0, -10.0, -45.0)
    noisy = lab + rng.normal(0, 8, lab.shape)
    labels = np.zeros((128, 128), np.int32)
    flat = finishing.flatten_regions(noisy, labels, 1.0)  # window: 128 / 48 px
    for part in (np.s_[:, :48], np.s_[:, 80:]):
        assert np.abs(flat[part] - lab[part]).mean() < 1.5  # its own colour, not the region's mean
        assert flat[part].std((0, 1)).max() < 1.5 < noisy[part].std((0, 1)).min()  # grain gone
    # A window wider than the region: the whole region's mean, as for cel fills.
    whole = finishing.flatten_regions(noisy, labels, 1.0, window=200.0)
    np.testing.assert_allclose(whole, np.broadcast_to(noisy.reshape(-1, 3).mean(0), whole.shape), atol=1e-4)


def test_flatten_evens_out_a_background_region_over_a_wider_window_than_a_foreground_one() -> None:
    # The scenario: a sky of one region, mottled by the model in blotches a few times wider than the
    # foreground window. On the character's side such variation may be separate parts and is kept;
    # on the background side it is the model's noise and goes.
    rng = np.random.default_rng(3)
    blotches = blocks(rng.normal(0, 10, (16, 16, 3)), 8)  # 8-px blotches over 128 px
    lab = np.full((128, 128, 3), (75.0, -5.0, -20.0)) + blotches
    labels = np.zeros((128, 128), np.int32)
    as_foreground = finishing.flatten_regions(lab, labels, 1.0)
    as_background = finishing.flatten_regions(lab, labels, 1.0, background=np.ones((128, 128), bool))
    inner = np.s_[16:-16, 16:-16]
    assert as_background[inner].std((0, 1)).max() < 0.5 * as_foreground[inner].std((0, 1)).min()
    # Each region takes its own side's window: a foreground region beside it keeps its blotches.
    labels[:, 64:] = 1
    background = np.zeros((128, 128), bool)
    background[:, 64:] = True
    split = finishing.flatten_regions(lab, labels, 1.0, background=background)
    alone = finishing.flatten_regions(lab[:, :64], labels[:, :64], 1.0, window=128 * finishing.FLATTEN_WINDOW)
    np.testing.assert_allclose(split[:, :64], alone, atol=1e-3)


def blocks(values: np.ndarray, factor: int) -> np.ndarray:
    """(h, w, c) -> (h * factor, w * factor, c) by repeating each value in a factor x factor block."""
    return values.repeat(factor, 0).repeat(factor, 1)


def test_local_flatten_takes_colour_only_from_the_pixels_own_region() -> None:
    # Two large regions side by side, red and blue: however wide the window, no pixel of one takes
    # any of the other's colour, up to the line between them.
    lab = np.zeros((96, 96, 3))
    lab[:, :48], lab[:, 48:] = (45.0, 60.0, 45.0), (60.0, -10.0, -45.0)
    labels = np.zeros((96, 96), np.int32)
    labels[:, 48:] = 1
    flat = finishing.flatten_regions(lab, labels, 1.0, window=6.0)
    np.testing.assert_allclose(flat, lab, atol=1e-3)


def test_finish_refuses_strengths_outside_0_1_and_is_identity_when_off() -> None:
    fills, ink = halves(RED, BLUE), np.zeros((32, 32), np.float32)
    sides = finishing.sides_for_mode(Mode.PLAIN, fills, None, None)
    with pytest.raises(ValueError, match=r"flatten=1\.5 is outside"):
        finishing.finish(fills, ink, None, sides, 0.0, 1.5)
    assert finishing.finish(fills, ink, None, sides, 0.0, 0.0) is fills
    # all on, two variations stacked: each is finished on its own, and flatten=1 takes the grain out
    big = halves(RED, BLUE, 128)
    two = finishing.finish(
        np.concatenate([big, big[::-1]], -1), np.zeros((128, 128), np.float32), None, sides, 1.0, 1.0
    )
    assert two.shape == (128, 128, 6)
    for v in range(2):
        for part in (np.s_[:, :52], np.s_[:, 76:]):  # each half, away from where the colours meet
            assert two[part][..., 3 * v : 3 * v + 3].std((0, 1)).max() < 0.01 < big[part].std((0, 1)).min()


def test_protocol_params_default_to_the_model_and_are_range_checked() -> None:
    assert ColorizeParams().color_match is None and ColorizeParams().flatten is None
    assert from_dict(ColorizeParams, {"color_match": 0.25}).color_match == 0.25
    with pytest.raises(ProtocolError, match="flatten"):
        from_dict(ColorizeParams, {"flatten": 2})


def test_pipeline_finishing_is_model_config_and_overridable(sketch, reference, tmp_path: Path) -> None:
    # Reference: a red character (mask) on blue. Sketch: its box is foreground.
    ref = np.zeros((48, 40, 4), np.uint8)
    ref[..., :3], ref[..., 3] = (40, 50, 210), 255
    ref_mask = np.zeros((48, 40), np.uint8)
    ref_mask[8:40, 8:32] = 255
    ref[ref_mask == 255, :3] = (210, 40, 40)
    mask = np.zeros(sketch.shape[:2], np.uint8)
    mask[12:80, 12:88] = 255

    finished = build_pipeline(replace(TINY, color_match=1.0, flatten=0.5), seed=0)
    finished.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "model_index.json").read_text())
    assert (config["color_match"], config["flatten"]) == (1.0, 0.5)
    loaded = ReferenceColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)

    def fills(pipe: ReferenceColorizationPipeline, **finishing: float) -> np.ndarray:
        params = ColorizeParams(mode=Mode.BOTH, steps=2, resolution=64, **finishing)
        out = pipe(sketch, ref, mask, ref_mask, params=params, generator=generators(3))
        return out.foreground[0][..., :3].astype(np.float32) / 255

    default, off = fills(loaded), fills(loaded, color_match=0.0, flatten=0.0)
    plain_tiny = build_pipeline(TINY, seed=0)  # the same weights, finishing off by default
    plain_tiny.set_progress_bar_config(disable=True)
    np.testing.assert_array_equal(off, fills(plain_tiny))
    inner, outer = np.zeros(mask.shape, bool), np.zeros(mask.shape, bool)
    inner[20:40, 20:80], outer[86:, :] = True, True
    red, blue = lab_mean(np.array([[[210, 40, 40]]]) / 255), lab_mean(np.array([[[40, 50, 210]]]) / 255)
    # Random weights colour at random; finished, each side sits near its reference side's colour.
    assert np.linalg.norm(lab_mean(default, inner) - red) < 15 < np.linalg.norm(lab_mean(off, inner) - red)
    assert np.linalg.norm(lab_mean(default, outer) - blue) < 15 < np.linalg.norm(lab_mean(off, outer) - blue)
    with pytest.raises(ValueError, match=r"params.color_match: -0\.5 is out of range"):
        fills(loaded, color_match=-0.5)
