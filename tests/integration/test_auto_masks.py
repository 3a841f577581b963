"""Automatic masks (issue 19): filled in from a job's own images as a paint app sends them; over the
protocol advertised, computed, used for the split and returned."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import support
from support import build_request, result_layers, thread_server

from refcolor.models import masks
from refcolor.models.job import ColorizeJob
from refcolor_protocol import ColorizeParams, ColorizeRequest, ErrorCode, Layout, MaskName, RemoteError
from refcolor_protocol.errors import ProtocolError
from refcolor_protocol.fields import from_dict

cv2 = pytest.importorskip("cv2")

W, H = 256, 224


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    a, b = mask > 127, truth > 127
    return float((a & b).sum() / max((a | b).sum(), 1))


def line_art_layer() -> tuple[np.ndarray, np.ndarray]:
    return support.line_art_layer(W, H)


def flat_reference() -> tuple[np.ndarray, np.ndarray]:
    return support.flat_reference(192, 192)


def test_a_transparent_line_art_layer_is_read_as_lines_on_white_paper() -> None:
    """A Krita line-art layer is black lines on transparency whose colour channels are black too:
    read as it is, every pixel would be ink and nothing enclosed."""
    sketch, truth = line_art_layer()
    reference, _ = flat_reference()
    job = ColorizeJob(sketch=sketch, reference=reference, params=ColorizeParams(), seed=1)
    filled, computed = masks.fill(job, (MaskName.SKETCH,))
    assert set(computed) == {MaskName.SKETCH}
    assert filled.sketch_mask is computed[MaskName.SKETCH] and filled.reference_mask is None
    assert iou(computed[MaskName.SKETCH], truth) > 0.9


def test_a_given_mask_is_kept_when_only_the_other_is_computed() -> None:
    sketch, truth = line_art_layer()
    reference, reference_truth = flat_reference()
    job = ColorizeJob(sketch=sketch, reference=reference, params=ColorizeParams(), seed=1, sketch_mask=truth)
    filled, computed = masks.fill(job, (MaskName.REFERENCE,))
    assert filled.sketch_mask is truth and set(computed) == {MaskName.REFERENCE}
    assert iou(computed[MaskName.REFERENCE], reference_truth) > 0.8


def test_on_white_ignores_what_transparent_pixels_hold() -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgba[1, 1] = (0, 0, 0, 128)
    white = masks.on_white(rgba)
    assert white[0, 0].tolist() == [10, 20, 30] and white[0, 1].tolist() == [255, 255, 255]
    assert white[1, 1].tolist() == [127, 127, 127]


def test_the_installed_backend_can_compute_both_masks_and_says_when_it_cannot(monkeypatch) -> None:
    assert masks.available() == (MaskName.SKETCH, MaskName.REFERENCE)
    real_find_spec = masks.automask.importlib.util.find_spec

    def no_onnxruntime(name: str) -> object:
        return None if name == "onnxruntime" else real_find_spec(name)

    monkeypatch.setattr(masks.automask.importlib.util, "find_spec", no_onnxruntime)
    assert masks.available() == (MaskName.SKETCH,)  # no onnxruntime: line art only
    monkeypatch.undo()

    monkeypatch.setattr(masks.automask, "MASK_NET", masks.automask.MASK_NET.with_name("gone.onnx"))
    assert masks.available() == (MaskName.SKETCH,)  # the network's file missing: line art only


@pytest.mark.parametrize(
    ("auto", "given", "message"),
    [
        (["sketch", "sketch"], {}, "'sketch' is listed twice"),
        (["reference"], {"reference_mask": True}, "reference_mask is given too"),
        (["face"], {}, "one of 'sketch', 'reference'"),
    ],
)
def test_bad_auto_masks_are_refused_naming_the_field(auto: list[str], given: dict[str, bool], message: str) -> None:
    image = {"width": 2, "height": 2, "layout": "RGBA8", "nbytes": 16, "buffer": 0}
    data = {"sketch": image, "reference": {**image, "buffer": 1}, "auto_masks": auto}
    if given:
        data["reference_mask"] = {"width": 2, "height": 2, "layout": "L8", "nbytes": 4, "buffer": 2}
    with pytest.raises(ProtocolError) as info:
        from_dict(ColorizeRequest, data, "colorize_request")
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert "colorize_request.auto_masks" in info.value.message and message in info.value.message


@pytest.fixture
def server():
    running = thread_server()
    yield running
    running.stop()


def test_capabilities_list_both_automatic_masks(server) -> None:
    with server.client() as client:
        assert client.hello().auto_masks == ("sketch", "reference")


def test_auto_masks_split_a_flat_reference_and_come_back_with_the_result(server) -> None:
    sketch, sketch_truth = line_art_layer()
    reference, reference_truth = flat_reference()
    request, buffers = build_request(sketch, reference, mode="both", steps=2, seed=5)
    request = dataclasses.replace(request, auto_masks=(MaskName.SKETCH, MaskName.REFERENCE))
    with server.client() as client:
        result = client.colorize(request, buffers, timeout=120)
    masks = {m.name: m.image for m in result.content.masks}
    assert set(masks) == {MaskName.SKETCH, MaskName.REFERENCE}
    assert (masks[MaskName.SKETCH].width, masks[MaskName.SKETCH].height) == (W, H)
    assert (masks[MaskName.REFERENCE].width, masks[MaskName.REFERENCE].height) == (192, 192)
    arrays = {}
    for name, ref in masks.items():
        assert ref.layout is Layout.L8
        arrays[name] = np.frombuffer(result.buffers[ref.buffer], np.uint8).reshape(ref.height, ref.width)
    assert iou(arrays[MaskName.SKETCH], sketch_truth) > 0.9
    assert iou(arrays[MaskName.REFERENCE], reference_truth) > 0.8
    layers = result_layers(result)
    # The split followed the computed sketch mask, and each side took its side's colours (classical:
    # the mean colour of each side of the reference).
    np.testing.assert_array_equal(layers[("foreground", 0)][..., 3], arrays[MaskName.SKETCH])
    combined = layers[("combined", 0)][..., :3].astype(int)
    inside, outside = combined[170, 128], combined[8, 8]
    character = [(230, 40, 50), (250, 215, 180)]  # the foreground's palette: its red and its face
    assert min(np.abs(inside - c).max() for c in character) < 40, inside
    assert outside[1] > 110 and outside[0] < 110, outside  # the field's green


def test_without_auto_masks_a_flat_reference_is_not_split(server) -> None:
    """What auto masks change: without them the whole sketch is foreground (the flat reference
    has no alpha to split it either)."""
    sketch, _ = line_art_layer()
    reference, _ = flat_reference()
    request, buffers = build_request(sketch, reference, mode="both", steps=2)
    with server.client() as client:
        result = client.colorize(request, buffers, timeout=120)
    assert result.content.masks == ()
    layers = result_layers(result)
    assert (layers[("foreground", 0)][..., 3] == 255).all()  # no split: all foreground


def test_a_mask_given_and_asked_for_is_refused(server) -> None:
    sketch, truth = line_art_layer()
    reference, _ = flat_reference()
    request, buffers = build_request(sketch, reference, truth)
    request = dataclasses.replace(request, auto_masks=(MaskName.SKETCH,))
    with server.client() as client, pytest.raises(RemoteError) as info:
        client.colorize(request, buffers, timeout=60)
    assert info.value.code == ErrorCode.INVALID_FIELD
    assert "sketch_mask is given too" in info.value.message


def test_a_server_without_the_mask_network_refuses_auto_reference_masks_and_keeps_serving(server) -> None:
    server.server.auto_masks = (MaskName.SKETCH,)  # as when onnxruntime is not installed
    sketch, _ = line_art_layer()
    reference, _ = flat_reference()
    request, buffers = build_request(sketch, reference, steps=2)
    with server.client() as client:
        with pytest.raises(RemoteError) as info:
            client.colorize(dataclasses.replace(request, auto_masks=(MaskName.REFERENCE,)), buffers, timeout=60)
        assert info.value.code == ErrorCode.INVALID_FIELD
        assert "cannot compute reference masks" in info.value.message
        assert "pip install onnxruntime" in info.value.hint
        result = client.colorize(dataclasses.replace(request, auto_masks=(MaskName.SKETCH,)), buffers, timeout=60)
    assert [m.name for m in result.content.masks] == [MaskName.SKETCH]
