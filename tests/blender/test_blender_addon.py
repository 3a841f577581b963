"""The Blender add-on in a real Blender (Debian's 3.4, headless): the zip installed into an empty
profile, its operators against a real backend serving ``tiny``."""

from __future__ import annotations

from pathlib import Path

import pytest
from blendertest import run_blender

pytestmark = pytest.mark.timeout(600)


def near(values: list[int], expected: list[int], tolerance: int = 2) -> float:
    """The share of values within ``tolerance`` of what was expected."""
    return sum(abs(a - b) <= tolerance for a, b in zip(values, expected, strict=True)) / len(expected)


def test_colorize_an_image_makes_three_images_with_the_masks_alpha(blender, addon_zip, backend, tmp_path) -> None:
    facts = run_blender(blender, addon_zip, tmp_path, "image", backend.connection_file)
    assert Path(facts["installed_at"]).is_relative_to(tmp_path / "blender-profile" / "scripts")
    assert Path(facts["zmq"]).is_relative_to(Path(facts["installed_at"]) / "vendor")
    assert Path(facts["protocol"]).is_relative_to(Path(facts["installed_at"]) / "vendor" / "common")
    assert facts["timer_registered"]
    assert facts["connected"] and facts["finished"]
    assert facts["operator"] == ["FINISHED"]
    assert not facts["failed"], facts["message"]
    assert facts["new_images"] == ["sketch background", "sketch colors", "sketch foreground"]
    mask = facts["mask"]
    for what in ("colors", "foreground", "background"):
        assert facts[what]["size"] == [96, 64] and facts[what]["packed"], what
    assert set(facts["colors"]["alpha"]) == {255}  # the finished picture is opaque
    assert near(facts["foreground"]["alpha"], mask) > 0.97  # the line-art mask painted as an image
    assert near(facts["background"]["alpha"], [255 - m for m in mask]) > 0.97

    # Colorize with the result shown colorizes the line art again; automatic masks become images.
    assert facts["again_operator"] == ["FINISHED"] and facts["again_finished"]
    assert facts["again_new_images"] == [
        "ref auto mask",
        "sketch auto mask",
        "sketch background.001",
        "sketch colors.001",
        "sketch foreground.001",
    ], facts["again_message"]
    assert facts["again_line_art"] == "sketch"
    assert facts["sketch_auto_mask"]["size"] == [96, 64]
    assert "“sketch auto mask”" in facts["again_message"] and "“An image”" in facts["again_message"]


def test_no_backend_says_so_and_makes_nothing(blender, addon_zip, tmp_path) -> None:
    facts = run_blender(blender, addon_zip, tmp_path, "no_backend", tmp_path / "nowhere" / "backend.json")
    assert "No backend running" in facts["connection"] and "refcolor serve" in facts["connection"]
    assert facts["operator"] == ["CANCELLED"]
    assert facts["message"].startswith("Not connected to a backend")
    assert facts["new_images"] == []
    assert "Traceback" not in facts["stdout"]


def test_cancel_mid_job_makes_no_images(blender, addon_zip, backend, tmp_path) -> None:
    facts = run_blender(blender, addon_zip, tmp_path, "cancel", backend.connection_file)
    assert facts["connected"] and facts["started"] and facts["cancelling"] and facts["finished"]
    assert facts["message"].startswith("Cancelled")
    assert facts["new_images"] == []


def test_grease_pencil_drawing_and_frames_go_behind_the_strokes(blender, addon_zip, backend, tmp_path) -> None:
    facts = run_blender(blender, addon_zip, tmp_path, "drawing", backend.connection_file)
    assert facts["connected"] and facts["finished"], facts
    assert not facts["failed"], facts["message"]
    assert facts["foreground"]["size"] == [128, 96]  # the scene's resolution
    assert 0.02 < sum(a > 127 for a in facts["foreground"]["alpha"]) / (128 * 96) < 0.9  # the ring's inside
    still = facts["still_plane"]
    assert still["parent"] == "Camera" and still["plane_depth"] > still["drawing_depth"]
    assert facts["scenes"] == ["Scene"]  # the scratch render scene is gone

    assert facts["frames_finished"] and not facts["frames_failed"], facts["frames_message"]
    plane = facts["plane"]
    assert plane["parent"] == "Camera" and plane["plane_depth"] > plane["drawing_depth"]
    assert plane["sources"] == {"foreground": "SEQUENCE", "background": "SEQUENCE"}
    assert plane["durations"] == {"foreground": 3, "background": 3}
    expected = [f"{layer}_{frame:04d}.png" for layer in ("background", "foreground") for frame in (1, 2, 3)]
    assert facts["sequence_files"] == expected
    assert "keyframes 1–3" in facts["frames_message"]
