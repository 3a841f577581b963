from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from refcolor.data import sources
from refcolor.data.debian import OPENCLIPART, WESNOTH


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def fake_openclipart(root: Path, disc_character) -> Path:
    tree = root / sources.OPENCLIPART_TREE
    save(tree / "animals/red_fox_01.png", disc_character(340, (220, 60, 20)))
    save(tree / "animals/red_fox_02.png", disc_character(340, (210, 70, 20), 0.41))  # variant: same group
    save(tree / "people/small.png", disc_character(100, (220, 60, 20)))  # too small
    save(tree / "food/gray.png", disc_character(340, (128, 128, 128)))  # black and white
    save(tree / "tools/tiny_dot.png", disc_character(340, (220, 60, 20), 0.05))  # near-empty alpha
    full = disc_character(340, (220, 60, 20), 2.0)
    full[0, 0, 3] = 0
    save(tree / "tools/full.png", full)  # near-full alpha
    (tree / "office").mkdir()
    (tree / "office/copy.png").write_bytes((tree / "animals/red_fox_01.png").read_bytes())  # duplicate
    (tree / "recreation").mkdir()
    (tree / "recreation/link.png").symlink_to(tree / "animals/red_fox_01.png")  # symlink: not a candidate
    save(tree / "shapes/circle.png", disc_character(340, (220, 60, 20)))  # excluded category
    save(tree / "computer/icons/theme/disk.png", disc_character(340, (220, 60, 20)))  # excluded folder
    return root


def test_openclipart_filters_count_each_rejection(tmp_path, disc):
    candidates = sources.openclipart_candidates(fake_openclipart(tmp_path, disc))
    assert {c.relpath for c in candidates} == {
        "animals/red_fox_01.png", "animals/red_fox_02.png", "people/small.png", "food/gray.png",
        "tools/tiny_dot.png", "tools/full.png", "office/copy.png",
    }  # fmt: skip
    selection = sources.select(candidates)
    assert [c.relpath for c in selection.characters] == ["animals/red_fox_01.png", "animals/red_fox_02.png"]
    reasons = {reason: n for (_, _, reason), n in selection.rejected.items()}
    assert reasons == {"too small": 1, "black and white": 1, "near-empty alpha": 1, "near-full alpha": 1,
                       "duplicate": 1}  # fmt: skip
    assert selection.seen[(OPENCLIPART, "character")] == 7


def test_wesnoth_portraits_are_characters_and_opaque_story_art_backgrounds(tmp_path, disc):
    disc_character = disc
    tree = tmp_path / sources.WESNOTH_TREE
    save(tree / sources.WESNOTH_PORTRAITS / "humans/knight.png", disc_character(340, (40, 80, 200)))
    rng = np.random.default_rng(0)
    save(tree / "data/core/images/story/hills.jpg", rng.integers(0, 255, (400, 500, 3), dtype=np.uint8))
    save(tree / "data/core/images/story/flat.jpg", np.full((400, 500, 3), 90, np.uint8))
    save(tree / "images/misc/missing-image.png", disc_character(340, (255, 0, 255)))  # outside the folders
    save(tree / "images/dialogs/missing-image.png", rng.integers(0, 255, (400, 400, 3), dtype=np.uint8))
    save(tree / "images/dialogs/frame.png", disc_character(400, (90, 60, 30)))  # transparent
    selection = sources.select(sources.wesnoth_candidates(tmp_path))
    assert [c.relpath for c in selection.characters] == ["data/core/images/portraits/humans/knight.png"]
    assert [c.relpath for c in selection.backgrounds] == ["data/core/images/story/hills.jpg"]
    reasons = sorted(reason for (_, _, reason) in selection.rejected)
    assert reasons == ["flat", "not opaque", "placeholder"]


def make(package: str, relpath: str, kind: str = "character") -> sources.Candidate:
    return sources.Candidate(package, kind, Path("/x") / relpath, relpath)


def test_groups_join_variants():
    assert make(WESNOTH, "p/assassin+female.png").group == make(WESNOTH, "p/assassin.png").group
    assert (
        make(OPENCLIPART, "food/menu_example3.png").group == make(OPENCLIPART, "food/menu_example.png").group
    )
    bridge = make(WESNOTH, "story/landscape-bridge_sun.jpg", "background")
    assert bridge.group == make(WESNOTH, "story/landscape-bridge.jpg", "background").group
    assert bridge.group != make(WESNOTH, "story/landscape-castle.jpg", "background").group


def test_split_is_deterministic_grouped_and_per_package():
    items = [make(OPENCLIPART, f"animals/beast{i}_{v}.png") for i in "abcdefghij" for v in (1, 2)]
    items += [make(WESNOTH, f"p/unit{i}.png") for i in "abcdefghij"]
    heldout = sources.split(items, 0.2, seed=0)
    assert heldout == sources.split(items, 0.2, seed=0)
    assert heldout != sources.split(items, 0.2, seed=1)
    by_group: dict[str, set[bool]] = {}
    for c in items:
        by_group.setdefault(c.group, set()).add(c.name in heldout)
    assert all(len(v) == 1 for v in by_group.values())  # a group is never split
    assert any(n.startswith("wesnoth--") for n in heldout) and any(
        n.startswith("openclipart--") for n in heldout
    )
    assert 4 <= sum(n.startswith("openclipart--") for n in heldout) <= 6


def test_split_keeps_one_group_for_training():
    items = [make(WESNOTH, "story/a.jpg", "background"), make(WESNOTH, "story/b.jpg", "background")]
    assert len(sources.split(items, 0.9, min_heldout=2)) == 1
