"""Varied backgrounds for the mask network's training (refcolor.data.scenery)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from refcolor.data import scenery


def _only(kind: str) -> tuple[float, ...]:
    return tuple(1.0 if k == kind else 0.0 for k in scenery.KINDS)


def test_procedural_backdrops_vary_and_repeat_for_one_seed() -> None:
    first = np.asarray(scenery.procedural(np.random.default_rng(1), 96))
    again = np.asarray(scenery.procedural(np.random.default_rng(1), 96))
    other = np.asarray(scenery.procedural(np.random.default_rng(2), 96))
    assert first.shape == (96, 96, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 10
    assert first.reshape(-1, 3).std(axis=0).max() > 5  # not one flat colour


def test_restyled_background_keeps_its_size_and_changes_its_colours(folders: tuple[Path, Path]) -> None:
    background = Image.open(folders[1] / "b0.png").convert("RGB")
    changed = [np.asarray(scenery.restyled(background, np.random.default_rng(seed))) for seed in range(4)]
    before = np.asarray(background).astype(int)
    assert all(c.shape == before.shape for c in changed)
    assert min(np.abs(c.astype(int) - before).mean() for c in changed) > 3


def test_a_crowd_is_pasted_on_the_background_only_where_the_others_stand(disc: object) -> None:
    background = Image.new("RGB", (200, 160), (10, 20, 30))
    other = Image.fromarray(disc(64, (240, 40, 40)))  # type: ignore[operator]
    crowd = np.asarray(scenery.crowded(background, [other] * 3, np.random.default_rng(0)))
    red = (crowd[..., 0] > 150) & (crowd[..., 1] < 100)
    assert red.any()
    assert red.mean() < 0.3  # small figures: each at most 30 % of the short side tall
    untouched = crowd[~red & (np.abs(crowd.astype(int) - (10, 20, 30)).sum(-1) > 0)]
    assert len(untouched) < 0.1 * crowd.shape[0] * crowd.shape[1]  # only the figures' soft edges besides


def test_only_the_samples_own_character_is_foreground_in_a_crowd(folders: tuple[Path, Path]) -> None:
    source = scenery.VariedSource.from_folders(*folders, size=96, seed=4, shares=_only("crowded"))
    for index in range(4):
        sample = source[index]
        assert sample.meta["background_kind"] == "crowded"
        _, parts = ndimage.label(sample.mask >= 128)
        assert parts == 1  # one disc: the crowd behind it is background


def test_varied_sources_draw_each_kind_in_its_share_and_stay_deterministic(folders: tuple[Path, Path]) -> None:
    source = scenery.VariedSource.from_folders(*folders, size=64, seed=2)
    kinds = [source[i].meta["background_kind"] for i in range(60)]
    assert set(kinds) == set(scenery.KINDS)
    assert 12 <= kinds.count("plain") <= 36  # 40 % of 60
    again = scenery.VariedSource.from_folders(*folders, size=64, seed=2)
    np.testing.assert_array_equal(source[5].target, again[5].target)
    procedural = scenery.VariedSource.from_folders(*folders, size=64, seed=2, shares=_only("procedural"))
    assert {procedural[i].meta["background"] for i in range(5)} == {"procedural"}


def test_plain_shares_take_the_folders_backgrounds_as_they_are(folders: tuple[Path, Path]) -> None:
    plain = scenery.VariedSource.from_folders(*folders, size=64, seed=3, shares=_only("plain"))
    names = {path.name for path in folders[1].iterdir()}
    assert {plain[i].meta["background"] for i in range(6)} <= names
    assert {plain[i].meta["background_kind"] for i in range(6)} == {"plain"}


@pytest.mark.parametrize("shares", [(1.0, 0.0), (-1.0, 1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 0.0)])
def test_bad_shares_are_refused_naming_the_kinds(folders: tuple[Path, Path], shares: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match=r"shares=.*'plain', 'restyled'"):
        scenery.VariedSource.from_folders(*folders, shares=shares)
