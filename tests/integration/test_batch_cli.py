"""`refcolor batch` as an animator runs it: a folder of frames, progress, a summary and an exit
status; killed with -9 or Ctrl-C and run again, it finishes what is left and loses nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import REFCOLOR

SIDE = 320


def make_shot(folder: Path, frames: int) -> tuple[Path, Path, Path]:
    """A ball and a box moving right over ``frames`` frames (line art and masks), and a sheet."""
    import cv2

    (folder / "frames").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(frames):
        ink = np.full((SIDE, SIDE), 255, np.uint8)
        mask = np.zeros((SIDE, SIDE), np.uint8)
        x = 90 + 6 * i
        cv2.circle(mask, (x, 160), 60, 255, -1)
        cv2.circle(ink, (x, 160), 60, 0, 2)
        cv2.rectangle(ink, (x - 30, 140), (x + 30, 180), 0, 2)
        cv2.line(ink, (0, 280), (SIDE - 1, 280), 0, 2)
        Image.fromarray(ink).save(folder / "frames" / f"shot_{i + 1}.png")
        Image.fromarray(mask).save(folder / "masks" / f"shot_{i + 1}.png")
    sheet = np.zeros((SIDE, SIDE, 4), np.uint8)
    sheet[..., :3] = (60, 140, 220)
    sheet[..., 3] = 255
    cv2.circle(sheet, (160, 160), 70, (220, 50, 40, 255), -1)
    cv2.rectangle(sheet, (130, 140), (190, 180), (250, 220, 60, 255), -1)
    reference = folder / "sheet.png"
    Image.fromarray(sheet).save(reference)
    return folder / "frames", reference, folder / "masks"


def batch(*args: object, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REFCOLOR, "batch", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def images(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def common(frames: Path, reference: Path, masks: Path, out: Path) -> list[object]:
    return [frames, "--reference", reference, "--masks", masks, "--model", "classical", "--seed", 5,
            "--steps", 40, "-o", out]


def test_a_folder_of_frames_is_colorized_with_progress_and_a_summary(tmp_path: Path) -> None:
    frames, reference, masks = make_shot(tmp_path, 3)
    done = batch(*common(frames, reference, masks, tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "3 frames colorized, 0 already done, 0 failed of 3 (seed 5)" in done.stderr
    assert "frame/s" in done.stderr or "s/frame" in done.stderr  # the bar's rate
    assert len(list((tmp_path / "out").glob("shot_*_combined.png"))) == 3
    again = batch(*common(frames, reference, masks, tmp_path / "out"))
    assert again.returncode == 0 and "0 frames colorized, 3 already done" in again.stderr


def test_a_failed_frame_is_named_and_sets_the_exit_status(tmp_path: Path) -> None:
    frames, reference, masks = make_shot(tmp_path, 3)
    (frames / "shot_2.png").write_bytes(b"not a png at all")
    done = batch(*common(frames, reference, masks, tmp_path / "out"))
    assert done.returncode == 1
    assert "2 frames colorized, 0 already done, 1 failed of 3" in done.stderr
    assert "failed: " in done.stderr and "shot_2.png: cannot read the frame" in done.stderr
    assert (tmp_path / "out" / "shot_3_combined.png").exists()


def test_a_shot_that_cannot_start_says_why(tmp_path: Path) -> None:
    frames, _, masks = make_shot(tmp_path, 1)
    done = batch(*common(frames, tmp_path / "missing.png", masks, tmp_path / "out"))
    assert done.returncode == 2 and "cannot read the reference" in done.stderr
    done = batch(tmp_path / "nothing-here", "--reference", tmp_path / "x.png", "-o", tmp_path / "out")
    assert done.returncode == 2 and "no frame at" in done.stderr
    done = batch(*common(frames, frames / "shot_1.png", masks, tmp_path / "out")[:-2], "--model", "no-such-model",
                 "-o", tmp_path / "out")
    assert done.returncode == 2 and "cannot load the model" in done.stderr


def wait_for_done(manifest: Path, count: int, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the batch ended before it could be interrupted"
        try:
            frames = json.loads(manifest.read_text())["frames"]
        except (OSError, ValueError):  # not written yet (it is replaced whole, never half-written)
            frames = []
        if sum(f["status"] == "done" for f in frames) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} frames were not done within {timeout} s")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill -9", "Ctrl-C"])
def test_an_interrupted_batch_resumes_to_what_an_uninterrupted_one_makes(tmp_path: Path, how: signal.Signals) -> None:
    frames, reference, masks = make_shot(tmp_path, 8)
    whole = batch(*common(frames, reference, masks, tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "cut"
    process = subprocess.Popen([*REFCOLOR, "batch", *map(str, common(frames, reference, masks, out))],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_done(out / "manifest.json", 2, process)
        process.send_signal(how)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    if how == signal.SIGINT:
        assert process.returncode == 1 and "interrupted: run the same command again" in stderr
    for path in out.glob("*.png"):  # every file under its final name is whole
        Image.open(path).load()
    finished = json.loads((out / "manifest.json").read_text())
    done_before = sum(f["status"] == "done" for f in finished["frames"])
    assert 2 <= done_before < 8
    resumed = batch(*common(frames, reference, masks, out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{8 - done_before} frames colorized, {done_before} already done" in resumed.stderr
    assert not list(out.glob(".*.tmp"))
    want, got = images(tmp_path / "whole"), images(out)
    assert want.keys() == got.keys()
    assert all(np.array_equal(want[name], got[name]) for name in want)
