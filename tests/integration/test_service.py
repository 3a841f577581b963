"""The service end to end over real tcp and ipc sockets (server in a thread)."""

from __future__ import annotations

import numpy as np
import pytest
from support import box_mask, build_request, grid_sketch, result_layers, solid

from refcolor import __version__
from refcolor_protocol import PROTOCOL_VERSION, JobAccepted, Layout, Progress, RemoteError, Stage, Status

W, H = 192, 128


def test_hello_reports_versions_models_and_limits(server) -> None:
    with server.client() as client:
        caps = client.hello()
    assert caps.server_version == __version__
    assert caps.protocol_version == PROTOCOL_VERSION
    assert caps.model.name == "classical" and caps.model.device == "cpu"
    assert caps.model.color_match is None and caps.model.flatten is None  # no finishing pass
    assert {"classical", "classical-mean"} <= set(caps.models)
    assert set(caps.modes) == {"plain", "foreground", "background", "both"}
    assert set(caps.layouts) == {"RGBA8", "BGRA8", "L8"}
    assert caps.limits.max_pixels == server.server.config.max_pixels
    assert caps.server_id == server.server.server_id


def test_ping_and_idle_status(server) -> None:
    with server.client() as client:
        pong = client.ping()
        status = client.status()
    assert pong.nonce == client.session.session and pong.server_id == server.server.server_id
    assert status == Status(server.server.server_id, 0, None, (), busy=False)


def test_colorize_returns_full_size_layers_with_mask_alpha(server) -> None:
    mask = box_mask(W, H, (32, 32, 128, 96))
    # Reference: red character (alpha) on a blue background.
    reference = solid(80, 60, (0, 0, 255))
    reference[10:50, 20:60, :3] = (255, 0, 0)
    ref_mask = np.zeros((60, 80), np.uint8)
    ref_mask[10:50, 20:60] = 255
    request, buffers = build_request(grid_sketch(W, H), reference, mask, ref_mask, steps=4, seed=7, variations=2)
    events = []
    with server.client() as client:
        result = client.colorize(request, buffers, on_event=events.append, timeout=60)
    layers = result_layers(result)
    assert sorted(layers) == [(n, v) for n in ("background", "combined", "foreground") for v in (0, 1)]
    assert result.content.seeds == (7, 8)
    for variation in (0, 1):
        fg, bg, combined = (layers[(n, variation)] for n in ("foreground", "background", "combined"))
        assert fg.shape == bg.shape == combined.shape == (H, W, 4)
        np.testing.assert_array_equal(fg[..., 3], mask)
        np.testing.assert_array_equal(bg[..., 3], 255 - mask)
        assert (combined[..., 3] == 255).all()
        # split: regions inside the mask took the character's red, outside the background's blue
        inside, outside = combined[40:90, 40:120, :3], combined[:, :24, :3]
        assert (inside == (255, 0, 0)).all() and (outside == (0, 0, 255)).all()
    # events: accepted, then progress 0..total in order, previews every 2 steps, small
    assert isinstance(events[0].content, JobAccepted) and events[0].content.job_id == result.content.job_id
    progress = [e for e in events if isinstance(e.content, Progress) and e.content.stage is Stage.DENOISING]
    assert [p.content.step for p in progress] == list(range(0, 9))
    assert all(p.content.total == 8 for p in progress)
    # then the server builds the layers: a stage of its own, announced once, as the last progress
    stages = [(e.content.stage, e.content.step) for e in events if isinstance(e.content, Progress)]
    assert stages[-1] == (Stage.LAYERS, 8) and [s for s, _ in stages].count(Stage.LAYERS) == 1
    with_preview = [p for p in progress if p.content.preview is not None]
    assert [p.content.step for p in with_preview] == [2, 4, 6, 8]
    for p in with_preview:
        ref = p.content.preview
        assert ref.layout is Layout.RGBA8 and max(ref.width, ref.height) <= 64
        assert len(p.buffers[0]) == ref.nbytes


def test_bgra_input_gives_the_same_result_as_rgba(server) -> None:
    sketch = grid_sketch(W, H)
    sketch[..., :3] = np.where(sketch[..., :3] == 0, 0, 255)
    reference = np.random.default_rng(3).integers(0, 256, (50, 70, 4), dtype=np.uint8)
    reference[..., 3] = 255
    with server.client() as client:
        outputs = []
        for layout in (Layout.RGBA8, Layout.BGRA8):
            request, buffers = build_request(sketch, reference, sketch_layout=layout, steps=3, seed=11)
            outputs.append(result_layers(client.colorize(request, buffers, timeout=60)))
    np.testing.assert_array_equal(outputs[0][("combined", 0)], outputs[1][("combined", 0)])


def test_same_seed_same_output_other_seed_other_output(server) -> None:
    reference = np.random.default_rng(5).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    reference[..., 3] = 255
    combined = []
    with server.client() as client:
        for seed in (1, 1, 2):
            request, buffers = build_request(grid_sketch(W, H, 16), reference, steps=3, seed=seed, mode="plain")
            combined.append(result_layers(client.colorize(request, buffers, timeout=60))[("combined", 0)].copy())
    np.testing.assert_array_equal(combined[0], combined[1])
    assert not np.array_equal(combined[0], combined[2])


def test_missing_seed_is_drawn_and_reported(server) -> None:
    request, buffers = build_request(grid_sketch(W, H), solid(8, 8, (9, 9, 9)), steps=1)
    with server.client() as client:
        result = client.colorize(request, buffers, timeout=60)
    (seed,) = result.content.seeds
    assert 0 <= seed < 2**32


def test_client_side_timeout_is_a_clear_error() -> None:
    from refcolor_protocol import Client

    with Client("tcp://127.0.0.1:9", b"k") as client, pytest.raises(RemoteError) as info:
        client.hello(timeout=0.3)
    assert info.value.code == "timeout" and "tcp://127.0.0.1:9" in info.value.message
