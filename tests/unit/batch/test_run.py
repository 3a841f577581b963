"""A shot from files to files (refcolor.batch.run and .shot), with the classical model: outputs and
manifest, resuming, frames that fail alone, and colours that stay put."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refcolor.batch.run import MANIFEST, ShotSpec, run_shot
from refcolor.batch.shot import Consistency, Shot, carry, render
from refcolor.eval.flicker import SyntheticShot, flicker, moving_shot
from refcolor.eval.runner import fills_rgb
from refcolor.models import load_colorizer
from refcolor.models.job import Colorizer
from refcolor_protocol.messages import ColorizeParams

FRAMES = 5


def character() -> Image.Image:
    """A figure of a few coloured parts with dark outlines, on transparency."""
    import cv2

    rgba = np.zeros((120, 80, 4), np.uint8)
    cv2.ellipse(rgba, (40, 70), (30, 45), 0, 0, 360, (200, 40, 40, 255), -1)
    cv2.ellipse(rgba, (40, 70), (30, 45), 0, 0, 360, (20, 20, 20, 255), 2)
    cv2.circle(rgba, (40, 26), 18, (240, 200, 150, 255), -1)
    cv2.circle(rgba, (40, 26), 18, (20, 20, 20, 255), 2)
    cv2.rectangle(rgba, (25, 60), (55, 90), (40, 90, 220, 255), -1)
    cv2.rectangle(rgba, (25, 60), (55, 90), (20, 20, 20, 255), 2)
    return Image.fromarray(rgba)


def scenery() -> Image.Image:
    rgb = np.zeros((160, 160, 3), np.uint8)
    rgb[:80] = (120, 180, 230)
    rgb[80:] = (90, 160, 70)
    return Image.fromarray(rgb)


@pytest.fixture(scope="module")
def shot() -> SyntheticShot:
    return moving_shot(character(), scenery(), size=96, frames=FRAMES, seed=3)


def write_shot(shot: SyntheticShot, folder: Path) -> tuple[list[Path], Path, Path]:
    """Frames f1..fN.png, the reference, and a folder of masks named like the frames."""
    frames, masks = folder / "frames", folder / "masks"
    frames.mkdir(parents=True)
    masks.mkdir()
    paths = []
    for i in range(len(shot.frames)):
        path = frames / f"f{i + 1}.png"
        Image.fromarray(shot.sketches[i]).save(path)
        Image.fromarray(shot.masks[i]).save(masks / f"f{i + 1}.png")
        paths.append(path)
    reference = folder / "sheet.png"
    Image.fromarray(np.dstack([shot.reference, shot.reference_mask])).save(reference)
    return paths, reference, masks


def classical() -> Colorizer:
    return load_colorizer("classical")


def never() -> Colorizer:
    raise AssertionError("the model was loaded although every frame was done")


def spec_for(shot: SyntheticShot, folder: Path, out: str = "out", **changes: object) -> ShotSpec:
    paths, reference, masks = write_shot(shot, folder) if not (folder / "frames").exists() else (
        sorted((folder / "frames").glob("*.png")), folder / "sheet.png", folder / "masks"
    )
    params = ColorizeParams(seed=7, steps=4, previews=False)
    spec = ShotSpec(frames=paths, reference=reference, output=folder / out, params=params, model="classical",
                    masks=masks)
    return dataclasses.replace(spec, **changes)


def pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def test_a_shot_is_written_with_its_manifest_and_a_rerun_does_nothing(shot: SyntheticShot, tmp_path: Path) -> None:
    spec = spec_for(shot, tmp_path)
    summary, _ = run_shot(spec, classical)
    assert summary.ok and summary.done == FRAMES
    names = {p.name for p in spec.output.glob("*.png")}
    for i in range(1, FRAMES + 1):
        assert {f"f{i}_combined.png", f"f{i}_foreground.png", f"f{i}_background.png"} <= names
    data = manifest(spec.output)
    assert data["shot"]["seed"] == 7 and data["shot"]["model"] == "classical"
    assert data["shot"]["consistency"] == "carry" and len(data["shot"]["reference"]["sha256"]) == 64
    assert [f["status"] for f in data["frames"]] == ["done"] * FRAMES
    assert [f["age"] for f in data["frames"]] == list(range(FRAMES))  # each carried from the one before
    assert all(len(f["sha256"]) == 64 and f["mask"]["sha256"] and f["key"] for f in data["frames"])
    assert data["summary"] == {"frames": FRAMES, "done": FRAMES, "skipped": 0, "failed": 0, "interrupted": False}
    first = pixels(spec.output)
    # The second run finds everything done: it loads no model and rewrites nothing.
    summary, _ = run_shot(spec, never)
    assert summary.ok and summary.skipped == FRAMES and summary.done == 0
    assert all(np.array_equal(first[k], v) for k, v in pixels(spec.output).items())
    assert not list(spec.output.glob(".*.tmp"))


def test_a_changed_frame_is_redone_with_the_frames_that_carry_its_colours(shot: SyntheticShot, tmp_path: Path) -> None:
    spec = spec_for(shot, tmp_path)
    run_shot(spec, classical)
    off = dataclasses.replace(spec, output=tmp_path / "off", consistency=Consistency.OFF)
    run_shot(off, classical)
    changed = np.asarray(Image.open(spec.frames[2])).copy()
    changed[40:44, 40:44] = 0  # the animator fixed frame 3
    Image.fromarray(changed).save(spec.frames[2])
    summary, _ = run_shot(spec, classical)
    assert (summary.skipped, summary.done) == (2, FRAMES - 2)  # frames 3, 4 and 5
    summary, _ = run_shot(off, classical)
    assert (summary.skipped, summary.done) == (FRAMES - 1, 1)  # frame 3 alone


def test_an_interrupted_run_resumes_to_the_frames_an_uninterrupted_run_makes(
    shot: SyntheticShot, tmp_path: Path
) -> None:
    whole = spec_for(shot, tmp_path, "whole")
    run_shot(whole, classical)
    cut = dataclasses.replace(whole, output=tmp_path / "cut")

    def interrupt(index: int, record: dict) -> None:
        if index == 1:
            raise KeyboardInterrupt

    summary, _ = run_shot(cut, classical, on_frame=interrupt)
    assert summary.interrupted and not summary.ok and summary.done == 2
    assert [f["status"] for f in manifest(cut.output)["frames"]] == ["done", "done"] + ["pending"] * (FRAMES - 2)
    summary, _ = run_shot(cut, classical)
    assert summary.ok and (summary.skipped, summary.done) == (2, FRAMES - 2)
    want, got = pixels(whole.output), pixels(cut.output)
    assert want.keys() == got.keys()
    assert all(np.array_equal(want[name], got[name]) for name in want), "the resumed frames differ"


def test_a_shot_without_a_seed_keeps_the_seed_it_drew_when_resumed(shot: SyntheticShot, tmp_path: Path) -> None:
    spec = spec_for(shot, tmp_path)
    spec = dataclasses.replace(spec, params=dataclasses.replace(spec.params, seed=None))
    _, first = run_shot(spec, classical)
    summary, again = run_shot(spec, never)
    assert again.seed == first.seed == manifest(spec.output)["shot"]["seed"] and summary.skipped == FRAMES


def test_a_frame_that_cannot_be_read_fails_alone(shot: SyntheticShot, tmp_path: Path) -> None:
    spec = spec_for(shot, tmp_path)
    spec.frames[1].write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (spec.masks / "f4.png").unlink()  # type: ignore[operator]
    summary, _ = run_shot(spec, classical)
    assert not summary.ok and summary.done == FRAMES - 2
    failed = dict(summary.failed)
    assert "cannot read the frame" in failed[str(spec.frames[1])]
    assert "no mask for frame f4.png" in failed[str(spec.frames[3])]
    records = manifest(spec.output)["frames"]
    assert [r["status"] for r in records] == ["done", "failed", "done", "failed", "done"]
    assert "outputs" not in records[1] and "cannot read the frame" in records[1]["error"]


def test_carried_colours_cut_the_flicker_of_independent_frames(tmp_path: Path) -> None:
    moving = moving_shot(character(), scenery(), size=128, frames=8, seed=5)
    model = load_colorizer("classical")
    shot_off = Shot(moving.reference_rgba(), ColorizeParams(seed=11, steps=4, previews=False), moving.reference_mask,
                    consistency=Consistency.OFF)
    shot_on = dataclasses.replace(shot_off, consistency=Consistency.CARRY)
    # A fresh seed per frame (a loop over refcolor colorize): the classical model's palette picks
    # differ from frame to frame, the strongest flicker it can make.
    rendered = [
        render(model, dataclasses.replace(shot_off, params=dataclasses.replace(shot_off.params, seed=11 + i)),
               moving.sketch_rgba(i), moving.masks[i])
        for i in range(8)
    ]
    carried, previous = [], None
    for frame in rendered:
        previous = carry(shot_on, frame, previous)
        carried.append(previous)
    independent = flicker([fills_rgb(f.layers) for f in rendered], moving)
    consistent = flicker([fills_rgb(f.layers) for f in carried], moving)
    assert consistent * 2 <= independent, (independent, consistent)
    # The layers still fit together: the foreground's alpha is the frame's mask.
    assert np.array_equal(carried[3].layers.foreground[..., 3], moving.masks[3])


def test_a_shot_has_one_seed_and_one_colouring_per_frame() -> None:
    reference = np.zeros((8, 8, 4), np.uint8)
    with pytest.raises(ValueError, match="one seed"):
        Shot(reference, ColorizeParams(seed=None))
    with pytest.raises(ValueError, match="variations=2"):
        Shot(reference, ColorizeParams(seed=1, variations=2))


def test_two_runs_never_write_one_folder(shot: SyntheticShot, tmp_path: Path) -> None:
    from refcolor.batch.run import ShotError, output_lock

    spec = spec_for(shot, tmp_path)
    spec.output.mkdir()
    with output_lock(spec.output), pytest.raises(ShotError, match="another refcolor batch is writing"):
        run_shot(spec, never)
    stale = spec.output / ".f1_combined.png.999.tmp"  # what a run killed mid-write left
    stale.write_bytes(b"half a png")
    summary, _ = run_shot(spec, classical)
    assert summary.ok and not stale.exists()


def test_a_shot_on_shared_storage_matches_the_local_one_and_resumes(shot: SyntheticShot, tmp_path: Path) -> None:
    """-o with anything fsspec opens (here its in-memory filesystem, as s3:// would be): the same
    files and manifest as a local folder, and the same resume, reading earlier outputs back from it."""
    import uuid

    import fsspec

    from refcolor.batch.output import Output

    local = spec_for(shot, tmp_path)
    url = f"memory://shots/{uuid.uuid4().hex}"
    shared = dataclasses.replace(local, output=url)
    assert run_shot(local, classical)[0].ok
    summary, shot_run = run_shot(shared, classical)
    assert summary.ok and summary.done == FRAMES and shot_run.output.describe(MANIFEST) == f"{url}/{MANIFEST}"
    fs, root = fsspec.core.url_to_fs(url)

    def remote() -> dict[str, np.ndarray]:
        return {
            path.rsplit("/", 1)[1]: np.asarray(Image.open(fs.open(path)))
            for path in sorted(fs.glob(f"{root}/*.png"))
        }

    want = pixels(local.output)
    assert set(remote()) == set(want) and all(np.array_equal(want[k], v) for k, v in remote().items())
    on_storage = json.loads(fs.cat_file(f"{root}/{MANIFEST}"))
    assert [f["key"] for f in on_storage["frames"]] == [f["key"] for f in manifest(local.output)["frames"]]
    assert not fs.glob(f"{root}/.*.tmp")  # one object per file, put whole: no temporaries
    # resumed: everything done, no model loaded; a lost output is redone from the frame before it,
    # read back from the storage
    assert run_shot(shared, never)[0].skipped == FRAMES
    fs.rm(f"{root}/f3_combined.png")
    summary, _ = run_shot(shared, classical)
    assert summary.done == 1 and summary.skipped == FRAMES - 1
    assert all(np.array_equal(want[k], v) for k, v in remote().items())
    assert Output("file://" + str(tmp_path / "x")).folder == tmp_path / "x"  # a file:// URL is a local folder


def test_an_output_that_cannot_be_opened_is_said_before_any_frame(shot: SyntheticShot, tmp_path: Path) -> None:
    from refcolor.batch.run import ShotError

    with pytest.raises(ShotError, match=r"cannot write to the output nope://shot/.*nope"):
        run_shot(spec_for(shot, tmp_path, output="nope://shot/"), never)
