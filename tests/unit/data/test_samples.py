from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refcolor.data.samples import SampleSource, composite, load_character


def test_samples_have_the_documented_shapes_and_are_deterministic(folders):
    characters, backgrounds = folders
    a = SampleSource.from_folders(characters, backgrounds, size=64, seed=3)
    b = SampleSource.from_folders(characters, backgrounds, size=64, seed=3)
    s, t = a[5], b[5]
    assert s.target.shape == s.reference.shape == (64, 64, 3)
    assert s.sketch.shape == s.mask.shape == s.reference_mask.shape == (64, 64)
    for field in ("target", "sketch", "mask", "reference", "reference_mask"):
        assert np.array_equal(getattr(s, field), getattr(t, field)), field
    assert not np.array_equal(a[6].target, s.target)
    assert set(np.unique(s.mask)) <= {0, 255} and (s.mask == 255).any() and (s.mask == 0).any()


def test_mask_is_where_the_character_is_and_background_comes_from_the_background(folders):
    characters, backgrounds = folders
    sample = SampleSource.from_folders(characters, backgrounds, size=64, seed=0)[0]
    # Synthetic characters are saturated red/green/yellow discs on blue backgrounds: after any
    # hue shift, foreground and background hues still differ, so compare the two sides' means.
    fg = sample.target[sample.mask == 255].mean(0)
    bg = sample.target[sample.mask == 0].mean(0)
    assert np.abs(fg - bg).max() > 40


def test_reference_is_mismatched_but_shares_the_colour_shift(folders):
    characters, backgrounds = folders
    source = SampleSource.from_folders(characters, backgrounds, size=64, seed=1)
    moved = 0
    for i in range(8):
        s = source[i]
        moved += not np.array_equal(s.mask, s.reference_mask)
        # Same hue shift: the reference's foreground mean colour is near the target's.
        ref_fg, fg = s.reference[s.reference_mask == 255].mean(0), s.target[s.mask == 255].mean(0)
        assert np.abs(ref_fg - fg).max() < 40
    assert moved == 8


def test_composite_is_straight_alpha_over():
    layer = np.zeros((1, 3, 4), np.uint8)
    layer[0] = [(200, 0, 0, 255), (200, 0, 0, 0), (200, 0, 0, 128)]
    out = composite(layer, np.full((1, 3, 3), 100, np.uint8))
    assert out[0, 0].tolist() == [200, 0, 0] and out[0, 1].tolist() == [100, 100, 100]
    assert out[0, 2].tolist() == [150, 50, 50]


def test_opaque_character_is_refused_and_skipped(folders, tmp_path):
    _, backgrounds = folders
    opaque = tmp_path / "opaque.png"
    Image.new("RGBA", (32, 32), (10, 20, 30, 255)).save(opaque)
    with pytest.raises(ValueError, match="no transparent pixels"):
        load_character(opaque, 64)
    only_opaque = SampleSource([opaque], sorted(backgrounds.iterdir()), size=32)
    with pytest.raises(ValueError, match="transparency"):
        only_opaque[0]


def test_empty_or_missing_folders_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        SampleSource.from_folders(tmp_path / "nope", tmp_path)
    with pytest.raises(ValueError, match="no character images"):
        SampleSource.from_folders(tmp_path, tmp_path)
