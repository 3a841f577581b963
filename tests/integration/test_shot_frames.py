"""Frames of a shot over the protocol (issue 20, protocol 1.7): a request that names its previous
frame gets that frame's colours carried into it, exactly as ``refcolor batch`` carries them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support import build_request, result_layers, thread_server

from refcolor.batch.shot import Consistency, Shot, carry, render
from refcolor.models import load_colorizer
from refcolor.models.carry import Frame
from refcolor_protocol import Attachments, ColorizeParams, ErrorCode, Layout, RemoteError

cv2 = pytest.importorskip("cv2")

SIDE = 160


def frame(i: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGBA line art on white, L8 mask) of a figure that moves 5 pixels right per frame."""
    ink = np.full((SIDE, SIDE), 255, np.uint8)
    mask = np.zeros((SIDE, SIDE), np.uint8)
    x = 60 + 5 * i
    cv2.circle(mask, (x, 80), 40, 255, -1)
    cv2.circle(ink, (x, 80), 40, 0, 2)
    cv2.rectangle(ink, (x - 20, 65), (x + 20, 95), 0, 2)
    cv2.line(ink, (0, 140), (SIDE - 1, 140), 0, 2)
    return np.dstack([ink, ink, ink, np.full_like(ink, 255)]), mask


def sheet() -> np.ndarray:
    rgba = np.zeros((SIDE, SIDE, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (60, 140, 220), 255
    cv2.circle(rgba, (80, 80), 45, (220, 50, 40, 255), -1)
    cv2.rectangle(rgba, (60, 65), (100, 95), (250, 220, 60, 255), -1)
    return rgba


def with_previous(request, buffers, sketch, fills, mask, age):
    att = Attachments(list(buffers))
    return dataclasses.replace(
        request,
        previous_sketch=att.add(sketch.tobytes(), SIDE, SIDE, Layout.RGBA8),
        previous_fills=att.add(fills.tobytes(), SIDE, SIDE, Layout.RGBA8),
        previous_mask=att.add(mask.tobytes(), SIDE, SIDE, Layout.L8),
        previous_age=age,
    ), att.buffers


@pytest.fixture
def server():
    running = thread_server()
    yield running
    running.stop()


def test_a_frame_that_names_its_previous_frame_carries_its_colours(server) -> None:
    reference = sheet()
    params = {"steps": 3, "seed": 11, "previews": False}
    results = []
    with server.client() as client:
        assert client.hello().carry_colors
        previous = None
        for i in range(3):
            sketch, mask = frame(i)
            # A fresh seed per frame: the classical model then picks other palette colours each time.
            request, buffers = build_request(sketch, reference, sketch_mask=mask, **{**params, "seed": 11 + i})
            if previous is not None:
                request, buffers = with_previous(request, buffers, *previous)
            result = client.colorize(request, buffers, timeout=120)
            layers = result_layers(result)
            assert result.content.age == i
            results.append(layers)
            previous = (sketch, layers[("foreground", 0)], mask, result.content.age)
    # The same frames through refcolor batch's code, in this process: the same pixels.
    model = load_colorizer("classical")
    carried: Frame | None = None
    for i in range(3):
        sketch, mask = frame(i)
        shot = Shot(reference, ColorizeParams(**{**params, "seed": 11 + i}), consistency=Consistency.CARRY)
        carried = carry(shot, render(model, shot, sketch, mask), carried)
        for name, pixels in carried.layers.named().items():
            np.testing.assert_array_equal(results[i][(name, 0)], pixels, err_msg=f"frame {i} {name}")
    # And the colours stayed closer to frame 1's (moved with the figure) than frame 3 alone.
    shot = Shot(reference, ColorizeParams(**{**params, "seed": 13}), consistency=Consistency.OFF)
    alone = render(model, shot, *frame(2)).layers.foreground[80, 100, :3].astype(int)
    first = results[0][("foreground", 0)][80, 90, :3].astype(int)
    kept = results[2][("foreground", 0)][80, 100, :3].astype(int)
    assert np.abs(kept - first).sum() < np.abs(alone - first).sum() / 2, (first, kept, alone)


def test_a_previous_frame_of_another_size_is_refused_and_the_server_keeps_serving(server) -> None:
    sketch, mask = frame(0)
    request, buffers = build_request(sketch, sheet(), sketch_mask=mask, steps=2)
    att = Attachments(list(buffers))
    small = np.zeros((SIDE // 2, SIDE // 2, 4), np.uint8)
    request = dataclasses.replace(
        request,
        previous_sketch=att.add(small.tobytes(), SIDE // 2, SIDE // 2, Layout.RGBA8),
        previous_fills=att.add(small.tobytes(), SIDE // 2, SIDE // 2, Layout.RGBA8),
    )
    with server.client() as client:
        with pytest.raises(RemoteError) as caught:
            client.colorize(request, att.buffers, timeout=60)
        assert caught.value.code == ErrorCode.SIZE_MISMATCH.value
        assert "frames of a shot have one size" in caught.value.message
        assert client.ping().server_id
