"""The service running the real diffusion architecture (the `tiny` config, random weights)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from support import box_mask, build_request, grid_sketch, result_layers, solid, thread_server

from refcolor_protocol import CancelOutcome, ErrorCode, Progress, RemoteError, Stage

W, H = 160, 96


@pytest.fixture(scope="module")
def server():
    running = thread_server(model="tiny", preview_every=2, preview_size=64)
    yield running
    running.stop()


def test_tiny_model_serves_layers_with_progress_and_previews(server) -> None:
    mask = box_mask(W, H, (40, 20, 120, 80))
    request, buffers = build_request(grid_sketch(W, H), solid(48, 48, (200, 30, 30)), mask, steps=4, seed=5)
    events = []
    with server.client() as client:
        caps = client.hello()
        assert caps.model.kind == "diffusion"
        assert (caps.model.color_match, caps.model.flatten) == (0.0, 0.0)  # tiny: finishing off
        result = client.colorize(request, buffers, on_event=events.append, timeout=120)
    layers = result_layers(result)
    assert layers[("combined", 0)].shape == (H, W, 4)
    np.testing.assert_array_equal(layers[("foreground", 0)][..., 3], mask)
    progress = [e.content for e in events if isinstance(e.content, Progress)]
    # every stage is announced as it starts (step/total as the denoising left them), in order
    stages = [stage.value for stage, _ in itertools.groupby(p.stage for p in progress)]
    assert stages == ["denoising", "encoding", "denoising", "upsampling", "finishing", "layers"]
    assert [(p.step, p.total) for p in progress if p.stage is not Stage.DENOISING] == [(0, 4)] + [(4, 4)] * (
        len([p for p in progress if p.stage is not Stage.DENOISING]) - 1
    )
    # the full-resolution stages say how far they are, from 0 at their start to 1
    for stage in (Stage.UPSAMPLING, Stage.FINISHING):
        fractions = [p.fraction for p in progress if p.stage is stage]
        assert fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0) and fractions == sorted(fractions)
    assert {p.fraction for p in progress if p.stage in (Stage.ENCODING, Stage.DENOISING, Stage.LAYERS)} == {None}
    assert sorted({p.step for p in progress if p.stage is Stage.DENOISING}) == [0, 1, 2, 3, 4]
    assert any(p.preview is not None for p in progress)


def test_progress_counts_steps_times_variations_when_variations_are_batched(server) -> None:
    # The scenario (issue 15): tiny, steps=3, variations=2. Both variations denoise in one batch,
    # and the server reported 1/3, 2/3, 3/3 against PROTOCOL.md's total = steps x variations.
    request, buffers = build_request(grid_sketch(W, H), solid(48, 48, (200, 30, 30)), steps=3, variations=2, seed=5)
    events = []
    with server.client() as client:
        client.colorize(request, buffers, on_event=events.append, timeout=120)
    progress = [
        (e.content.step, e.content.total, e.content.variation)
        for e in events
        if e.msg_type == "progress" and e.content.stage is Stage.DENOISING
    ]
    assert progress == [(0, 6, 0), (0, 6, 0), (2, 6, 0), (4, 6, 0), (6, 6, 0)]  # start, the stage, 3 steps


def test_tiny_model_job_can_be_cancelled(server) -> None:
    request, buffers = build_request(grid_sketch(W, H), solid(48, 48, (200, 30, 30)), steps=200, seed=5)
    with server.client() as client:
        header = client.send(request, buffers)
        seen = []

        def on_event(msg) -> None:
            if isinstance(msg.content, Progress):
                seen.append(msg.content.step)
                if msg.content.step == 2:
                    assert client.cancel(header.msg_id).outcome is CancelOutcome.STOPPING

        with pytest.raises(RemoteError) as info:
            client.wait(header, timeout=120, on_event=on_event)
    assert info.value.code == ErrorCode.CANCELLED.value and max(seen) < 10
