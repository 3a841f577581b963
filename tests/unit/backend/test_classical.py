"""The classical colorizer: regions, sides, palettes, layers."""

from __future__ import annotations

import numpy as np
import pytest

from refcolor.models.classical import ClassicalColorizer, kmeans_step, label_regions, region_sides
from refcolor.models.job import ColorizeJob, JobCancelled, NullContext
from refcolor_protocol import ColorizeParams, Mode


def two_box_sketch() -> np.ndarray:
    """64x64 white page, a black frame splitting it into an inner square and the outside."""
    sketch = np.full((64, 64, 4), 255, np.uint8)
    sketch[16, 16:48, :3] = 0
    sketch[47, 16:48, :3] = 0
    sketch[16:48, 16, :3] = 0
    sketch[16:48, 47, :3] = 0
    return sketch


def test_label_regions_finds_closed_regions_and_absorbs_lines() -> None:
    labels, count = label_regions(two_box_sketch())
    assert count == 2
    assert labels[32, 32] != labels[2, 2]
    assert labels.min() == 0 and labels.max() == 1  # line pixels took a region too


def test_transparent_line_art_layer_reads_like_an_opaque_one() -> None:
    opaque = two_box_sketch()
    transparent = opaque.copy()
    transparent[..., 3] = np.where(opaque[..., 0] == 0, 255, 0)  # only the lines are painted
    np.testing.assert_array_equal(label_regions(opaque)[0], label_regions(transparent)[0])


def test_region_sides_follow_the_majority_of_the_mask() -> None:
    labels, count = label_regions(two_box_sketch())
    mask = np.zeros((64, 64), np.uint8)
    mask[10:50, 10:50] = 255  # covers the inner square and a sliver of the outside
    sides = region_sides(labels, count, mask)
    assert sides[labels[32, 32]] and not sides[labels[2, 2]]


def test_kmeans_step_moves_centres_to_cluster_means() -> None:
    pixels = np.array([[0, 0, 0], [2, 2, 2], [100, 100, 100], [102, 102, 102]], np.float32)
    centres = kmeans_step(pixels, np.array([[1, 1, 1], [90, 90, 90]], np.float32))
    np.testing.assert_allclose(centres, [[1, 1, 1], [101, 101, 101]])


def job(mode: Mode, mask: np.ndarray | None, steps: int = 3, variations: int = 1, seed: int = 0) -> ColorizeJob:
    reference = np.zeros((20, 20, 4), np.uint8)
    reference[..., :3] = (0, 0, 255)  # blue background
    reference[5:15, 5:15, :3] = (255, 0, 0)  # red character
    reference[..., 3] = 255
    ref_mask = np.zeros((20, 20), np.uint8)
    ref_mask[5:15, 5:15] = 255
    params = ColorizeParams(mode=mode, steps=steps, variations=variations, seed=seed)
    return ColorizeJob(two_box_sketch(), reference, params, seed, sketch_mask=mask, reference_mask=ref_mask)


def inner_mask() -> np.ndarray:
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    return mask


def test_both_mode_keeps_each_side_to_its_own_colours() -> None:
    (layers,) = ClassicalColorizer(palette_size=1).colorize(job(Mode.BOTH, inner_mask()), NullContext())
    assert tuple(layers.combined[32, 32, :3]) == (255, 0, 0)
    assert tuple(layers.combined[2, 2, :3]) == (0, 0, 255)
    np.testing.assert_array_equal(layers.foreground[..., 3], inner_mask())
    np.testing.assert_array_equal(layers.background[..., 3], 255 - inner_mask())
    assert (layers.combined[..., 3] == 255).all()


def test_plain_mode_mixes_the_whole_reference() -> None:
    (layers,) = ClassicalColorizer(palette_size=1).colorize(job(Mode.PLAIN, inner_mask()), NullContext())
    mean = np.array([255 * 0.25, 0, 255 * 0.75])  # 100 red pixels of 400
    np.testing.assert_allclose(layers.combined[32, 32, :3], mean, atol=1)
    np.testing.assert_allclose(layers.combined[2, 2, :3], mean, atol=1)


def test_no_sketch_mask_means_everything_is_foreground() -> None:
    (layers,) = ClassicalColorizer(palette_size=1).colorize(job(Mode.BOTH, None), NullContext())
    assert (layers.foreground[..., 3] == 255).all() and (layers.background[..., 3] == 0).all()
    assert tuple(layers.combined[2, 2, :3]) == (255, 0, 0)


def test_progress_every_step_of_every_variation_and_seeds(recorder) -> None:
    layer_sets = ClassicalColorizer().colorize(
        job(Mode.BOTH, inner_mask(), steps=4, variations=3, seed=10), recorder
    )
    assert recorder.steps == [(i, 12) for i in range(1, 13)]
    assert [s.seed for s in layer_sets] == [10, 11, 12]


def test_cancellation_raised_by_the_context_stops_the_job(recorder) -> None:
    recorder.cancel_at = 2
    with pytest.raises(JobCancelled):
        ClassicalColorizer().colorize(job(Mode.BOTH, inner_mask(), steps=50), recorder)
    assert recorder.steps == [(1, 50), (2, 50)]


def test_mask_outline_closes_gaps_in_the_line_art() -> None:
    sketch = two_box_sketch()
    sketch[16, 30:34, :3] = 255  # a gap in the frame: inside and outside are one region
    assert label_regions(sketch)[1] == 1
    labels, count = label_regions(sketch, inner_mask())
    assert count == 2 and labels[32, 32] != labels[2, 2]
    (layers,) = ClassicalColorizer(palette_size=1).colorize(
        ColorizeJob(
            sketch,
            job(Mode.BOTH, None).reference,
            ColorizeParams(steps=1),
            0,
            inner_mask(),
            job(Mode.BOTH, None).reference_mask,
        ),
        NullContext(),
    )
    assert tuple(layers.combined[32, 32, :3]) == (255, 0, 0) and tuple(layers.combined[2, 2, :3]) == (0, 0, 255)
