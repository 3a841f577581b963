"""The split correspondence (feature matching, no training) and the ``correspondence`` model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from refcolor.eval import metrics
from refcolor.imaging.matching import Correspondence, LineFeatures, load_line_features, working_size
from refcolor.models import load_colorizer
from refcolor.models.correspondence import CorrespondenceColorizer
from refcolor.models.job import ColorizeJob, NullContext
from refcolor_protocol import ColorizeParams, Mode

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"
RED, BLUE, GREEN = (210, 30, 30), (30, 50, 200), (40, 160, 60)


@pytest.fixture(scope="module")
def features() -> LineFeatures:
    return load_line_features()


@pytest.fixture(scope="module")
def model(features: LineFeatures) -> CorrespondenceColorizer:
    return CorrespondenceColorizer(features)


def disc_scene(centre: tuple[int, int], side: int = 128, fg=RED, bg=BLUE) -> tuple[np.ndarray, np.ndarray]:
    """(RGBA picture, L8 mask): a disc of ``fg`` with a stripe drawn across it, on a ``bg`` page."""
    yy, xx = np.mgrid[:side, :side]
    inside = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < 30**2
    picture = np.empty((side, side, 4), np.uint8)
    picture[...] = (*bg, 255)
    picture[inside] = (*fg, 255)
    return picture, inside.astype(np.uint8) * 255


def outline_sketch(mask: np.ndarray) -> np.ndarray:
    """White RGBA page with the mask's outline drawn in black."""
    from refcolor.imaging.lineart import mask_outline

    sketch = np.full((*mask.shape, 4), 255, np.uint8)
    sketch[mask_outline(mask, 1), :3] = 0
    return sketch


def job_for(sketch, reference, mask, reference_mask, mode=Mode.BOTH, background=None, **params) -> ColorizeJob:
    return ColorizeJob(
        sketch=sketch,
        reference=reference,
        params=ColorizeParams(mode=mode, **params),
        seed=5,
        sketch_mask=mask,
        reference_mask=reference_mask,
        background=background,
    )


def nearest_share(pixels: np.ndarray, own, other) -> float:
    """Share of (N, 3) RGB pixels nearer ``own`` than ``other``."""
    own_d = np.abs(pixels.astype(int) - own).sum(1)
    other_d = np.abs(pixels.astype(int) - other).sum(1)
    return float((own_d < other_d).mean())


def test_line_features_are_unit_vectors_on_the_stride_8_grid(features):
    paper = torch.ones(1, 1, 64, 96)
    paper[..., 20:22, :] = 0.0
    out = features(paper)
    assert out.shape == (1, 40 + 112, 8, 12)
    assert torch.allclose(out.norm(dim=1), torch.ones(1, 8, 12), atol=1e-5)
    with pytest.raises(ValueError, match="multiples of 16"):
        features(torch.ones(1, 1, 60, 96))
    assert working_size(1000, 500) == (368, 176)


def test_both_mode_gives_each_side_only_its_own_side_of_the_reference(model):
    reference, reference_mask = disc_scene((40, 50))
    _, mask = disc_scene((80, 70))
    sketch = outline_sketch(mask)
    both = model.colorize(job_for(sketch, reference, mask, reference_mask), NullContext())[0]
    fg, bg = mask == 255, mask == 0
    # Split: the foreground's tokens carry only the disc's red, the background's only the blue.
    assert np.abs(both.combined[fg & (sketch[..., 0] == 255), :3].astype(int) - RED).max() <= 2
    assert np.abs(both.combined[bg & (sketch[..., 0] == 255), :3].astype(int) - BLUE).max() <= 2
    plain = model.colorize(job_for(sketch, reference, mask, reference_mask, Mode.PLAIN), NullContext())[0]
    # Without the split both sides draw on the whole reference: the colours mix.
    assert np.abs(plain.combined[fg & (sketch[..., 0] == 255), :3].astype(int) - RED).max() > 20
    assert np.array_equal(both.foreground[..., 3], mask) and np.array_equal(both.background[..., 3], 255 - mask)


def test_a_separate_background_image_colours_the_background(model):
    reference, reference_mask = disc_scene((40, 50))
    _, mask = disc_scene((80, 70))
    background = np.empty_like(reference)
    background[...] = (*GREEN, 255)
    background[::16, :, :3] = (20, 90, 30)  # some lines to match
    out = model.colorize(
        job_for(outline_sketch(mask), reference, mask, reference_mask, background=background), NullContext()
    )[0]
    bg = (mask == 0) & (outline_sketch(mask)[..., 0] == 255)
    assert nearest_share(out.combined[bg, :3], GREEN, BLUE) == 1.0
    assert nearest_share(out.combined[(mask == 255) & (outline_sketch(mask)[..., 0] == 255), :3], RED, GREEN) == 1.0


def test_colours_come_from_the_matching_parts_of_the_reference(model):
    """On the bundled example, the ground truth as the reference (the same pose: the identity
    correspondence) must score better on the palette-segment error than a reference whose sides are
    each one flat colour: the model reads *where* colours are, not only their averages."""

    def load(name: str) -> np.ndarray:
        return np.asarray(Image.open(EXAMPLES / f"{name}.png"))

    sketch, mask, target = load("sketch"), load("sketch-mask"), load("target")
    truth = metrics.truth_for(target, mask, (metrics.to_lab(sketch[..., :3])[..., 0] > 50).astype(np.uint8) * 255)
    target_rgba = np.dstack([target, np.full(mask.shape, 255, np.uint8)])
    flat = target_rgba.copy()
    for side in (mask >= 128, mask < 128):
        flat[side, :3] = np.round(target[side].mean(0)).astype(np.uint8)

    def error(reference: np.ndarray) -> float:
        out = model.colorize(job_for(sketch, reference, mask, mask), NullContext())[0]
        return metrics.image_metrics(out.combined[..., :3], truth)["fg_segment_error"]

    from_truth, from_flat = error(target_rgba), error(flat)
    assert from_truth < 0.8 * from_flat


def test_deterministic_variations_progress_and_flattening(model, recorder):
    reference, reference_mask = disc_scene((40, 50))
    reference[60:64, :, :3] = (250, 240, 20)  # a yellow band: a second colour on both sides
    _, mask = disc_scene((70, 64))
    sketch = outline_sketch(mask)
    first, second = model.colorize(
        job_for(sketch, reference, mask, reference_mask, variations=2, steps=4, flatten=0.0), recorder
    )
    assert np.array_equal(first.combined, second.combined) and (first.seed, second.seed) == (5, 6)
    assert recorder.steps[0] == (0, 8) and recorder.steps[-1] == (8, 8)
    flat = model.colorize(job_for(sketch, reference, mask, reference_mask, flatten=1.0), NullContext())[0]
    inside = (mask == 255) & (sketch[..., 0] == 255)
    # one closed region, one colour (its local mean: the field is smooth, so within two levels)
    assert np.ptp(flat.combined[inside, :3].astype(int), axis=0).max() <= 2
    assert len(np.unique(first.combined[inside, :3], axis=0)) > 1  # unflattened: the field varies
    matched = model.colorize(job_for(sketch, reference, mask, reference_mask, color_match=1.0), NullContext())[0]
    assert not np.array_equal(matched.combined, flat.combined)


def test_fields_are_split_by_mode(features):
    correspondence = Correspondence(features)
    reference, reference_mask = disc_scene((40, 50))
    rgb = reference[..., :3] / 255.0
    paper = 1.0 - (outline_sketch(disc_scene((80, 70))[1])[..., 0] < 128)
    red, blue = (rgb2lab(np.array(c, float)[None, None] / 255.0)[0, 0] for c in (RED, BLUE))
    both = correspondence.fields(paper, rgb, reference_mask >= 128, None, "both")
    # (within a few Lab units: resizing the reference rings a little inside each side)
    assert np.abs(both.foreground - red).max() < 5 and np.abs(both.background - blue).max() < 5
    background_mode = correspondence.fields(paper, rgb, reference_mask >= 128, None, "background")
    assert np.abs(background_mode.background - blue).max() < 5  # split off
    assert np.abs(background_mode.foreground - red).max() > 10  # the whole reference
    unmasked = correspondence.fields(paper, rgb, None, None, "both")  # nothing tells the sides apart
    assert np.array_equal(unmasked.foreground, unmasked.background)


def test_registered_as_a_model():
    colorizer = load_colorizer("correspondence")
    assert colorizer.info.name == "correspondence" and colorizer.info.kind == "classical"
    assert colorizer.info.flatten == 0.0 and colorizer.info.color_match == 0.0
    assert set(colorizer.info.modes) == {m.value for m in Mode}
