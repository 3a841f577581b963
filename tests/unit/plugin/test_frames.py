"""Colorize frames without Krita: which keyframes, one job after the other with the previous frame
carried, one seed, Cancel after the frame in flight, failures that keep the done frames."""

from __future__ import annotations

from typing import Any

import pytest
from plugin_fakes import Sent

from refcolor_plugin.controller import Inputs, Placement
from refcolor_plugin.frames import (
    FrameInput,
    FrameRange,
    Packed,
    ShotCallbacks,
    ShotController,
    ShotOutcome,
    ShotSnapshot,
    ShotState,
    shot_times,
    span_words,
)
from refcolor_plugin.masks import MaskSource
from refcolor_plugin.pixels import Pixels, PluginError
from refcolor_protocol import (
    Cancel,
    ColorizeParams,
    ColorizeRequest,
    Error,
    Header,
    ImageRef,
    LayerName,
    Layout,
    MaskName,
    Message,
    Progress,
    Result,
    ResultLayer,
    ResultMask,
)

W, H = 4, 3


def frame_pixels(value: int, alpha: int = 255) -> Pixels:
    return Pixels(bytes([value, value, value, alpha]) * (W * H), W, H, Layout.BGRA8)


def l8(value: int, width: int = W, height: int = H) -> Pixels:
    return Pixels(bytes([value]) * (width * height), width, height, Layout.L8)


def test_the_shot_is_the_keyframes_that_show_in_the_range() -> None:
    assert shot_times([0, 2, 4, 6], FrameRange(0, 5)) == [0, 2, 4]
    # a drawing held from before the range is on screen at its start: it is part of the shot
    assert shot_times([6, 0, 3, 3], FrameRange(4, 10)) == [3, 6]
    assert shot_times([0, 4], FrameRange(4, 10)) == [4]
    assert shot_times([5], FrameRange(0, 3)) == []
    assert shot_times([], FrameRange(0, 3)) == []
    assert span_words([0, 1, 2, 3]) == "0–3" and span_words([0, 2, 4]) == "0, 2, 4" and span_words([7]) == "7"
    with pytest.raises(PluginError, match="the first frame must be ≤ the last"):
        FrameRange(5, 2)


def test_packed_layers_come_back_as_they_were() -> None:
    pixels = Pixels(bytes(range(48)), W, H, Layout.BGRA8)
    packed = Packed(pixels)
    assert packed.unpack() == pixels and len(packed.data) < 100


class FakeShot:
    """A document with keyframes ``times``: frame t's line art is grey t (alpha 0: an empty keyframe)."""

    def __init__(self, times: list[int], empty: tuple[int, ...] = (), auto: bool = True, fail_at: int = -1) -> None:
        self.times, self.empty, self.auto, self.fail_at = times, empty, auto, fail_at
        self.read: list[int] = []
        self.placed: list[tuple[Any, ShotOutcome, bool]] = []
        self.discarded: list[Any] = []

    def shot_snapshot(self, inputs: Inputs, frames: FrameRange) -> tuple[ShotSnapshot, Any]:
        times = shot_times(self.times, frames)
        if not times:
            raise PluginError(f"no keyframe in frames {frames.words}")
        snapshot = ShotSnapshot(tuple(times), frame_pixels(200), None, None, self.auto, True, "“sheet”")
        return snapshot, "target"

    def read_frame(self, target: Any, time: int) -> FrameInput:
        if time == self.fail_at:
            raise PluginError("the layer was deleted")
        self.read.append(time)
        mask = None if self.auto else l8(255)
        return FrameInput(time, frame_pixels(time, 0 if time in self.empty else 255), mask)

    def add_frames(self, target: Any, outcome: ShotOutcome, replace_previous: bool) -> Placement:
        self.placed.append((target, outcome, replace_previous))
        name = "Colorized 1" + (f" ({outcome.label})" if outcome.label else "")
        return Placement([name], "below “line art”")

    def discard(self, target: Any) -> None:
        self.discarded.append(target)


class Backend(Sent):
    """Records what the controller sends and answers as a server would."""

    def callbacks(self) -> ShotCallbacks:
        return ShotCallbacks(
            state=lambda s: self.events.append(("state", s)),
            progress=lambda step, total: self.events.append(("progress", (step, total))),
            done=lambda names, where: self.events.append(("done", (names, where))),
            failed=lambda text: self.events.append(("failed", text)),
        )

    def requests(self) -> list[tuple[ColorizeRequest, list[bytes]]]:
        return [(c, [bytes(b) for b in bufs]) for c, bufs in self.sent if isinstance(c, ColorizeRequest)]

    def last_job(self) -> Header:
        return Header(f"m{len(self.sent)}", "colorize_request", "s", "d", "1.0")

    def result(self, fg: int, age: int, sketch_mask: int | None = 255, reference_mask: bool = True) -> Message:
        """A result for the last request: foreground RGBA (fg, 0, 0), background (0, fg, 0)."""
        buffers: list[bytes] = []
        layers = []
        for name, rgba in (
            (LayerName.FOREGROUND, bytes([fg, 0, 0, 255])),
            (LayerName.BACKGROUND, bytes([0, fg, 0, 255])),
        ):
            layers.append(ResultLayer(name, 0, ImageRef(W, H, Layout.RGBA8, W * H * 4, len(buffers))))
            buffers.append(rgba * (W * H))
        masks = []
        if sketch_mask is not None:
            masks.append(ResultMask(MaskName.SKETCH, ImageRef(W, H, Layout.L8, W * H, len(buffers))))
            buffers.append(bytes([sketch_mask]) * (W * H))
        if reference_mask:
            masks.append(ResultMask(MaskName.REFERENCE, ImageRef(W, H, Layout.L8, W * H, len(buffers))))
            buffers.append(bytes([77]) * (W * H))
        job = self.last_job()
        result = Result(job.msg_id, "tiny", tuple(layers), (5,), masks=tuple(masks), age=age)
        return Message(Header("r", "result", "s", "d", "1.0"), result, job, tuple(buffers))

    def error(self, code: str, message: str) -> Message:
        return Message(Header("e", "error", "s", "d", "1.0"), Error(code, message), self.last_job())


INPUTS = Inputs(line_art="la", reference="ref", sketch_mask=MaskSource.AUTO, replace_previous=True)


def run_shot(
    docs: FakeShot, backend: Backend, params: ColorizeParams, frames: FrameRange, carry: bool = True
) -> ShotController:
    shots = ShotController(docs, backend.send, backend.callbacks())
    shots.start(INPUTS, params, frames, "tiny", ("sketch", "reference"), carry=carry)
    return shots


def test_a_shot_sends_each_frame_with_the_previous_one_and_one_seed() -> None:
    docs, backend = FakeShot([0, 2, 4]), Backend()
    shots = run_shot(docs, backend, ColorizeParams(steps=3, seed=None, variations=4), FrameRange(0, 5))
    assert docs.read == [0] and len(backend.requests()) == 1  # one frame read and sent at a time
    shots.handle(backend.result(fg=10, age=0, sketch_mask=200))
    shots.handle(backend.result(fg=20, age=1, sketch_mask=100))
    shots.handle(backend.result(fg=30, age=2))
    requests = backend.requests()
    assert docs.read == [0, 2, 4] and len(requests) == 3
    seeds = {r.params.seed for r, _ in requests}
    assert len(seeds) == 1 and None not in seeds  # drawn once, for the whole shot
    assert all(r.params.variations == 1 and r.params.steps == 3 and r.model == "tiny" for r, _ in requests)
    first, first_buffers = requests[0]
    assert first.previous_sketch is None and first.previous_fills is None and first.previous_age == 0
    assert first.auto_masks == (MaskName.SKETCH, MaskName.REFERENCE)
    second, buffers = requests[1]
    # the previous frame: its line art as sent, its foreground as received, its computed mask, its age
    assert buffers[second.previous_sketch.buffer] == first_buffers[first.sketch.buffer] == frame_pixels(0).data
    assert buffers[second.previous_fills.buffer] == bytes([0, 0, 10, 255]) * (W * H)  # BGRA of RGBA (10, 0, 0)
    assert second.previous_fills.layout is Layout.BGRA8
    assert buffers[second.previous_mask.buffer] == bytes([200]) * (W * H)
    assert second.previous_age == 0
    # the reference's mask found with the first frame is sent with the others, not found again
    assert second.auto_masks == (MaskName.SKETCH,)
    assert buffers[second.reference_mask.buffer] == bytes([77]) * (W * H)
    third, buffers = requests[2]
    assert third.previous_age == 1 and buffers[third.previous_mask.buffer] == bytes([100]) * (W * H)
    # placed once, whole: every frame's layers, at their keyframes
    ((target, outcome, replace),) = docs.placed
    assert target == "target" and replace is True and outcome.complete and outcome.label == ""
    assert [f.time for f in outcome.frames] == [0, 2, 4] and outcome.times == (0, 2, 4)
    assert outcome.frames[1].foreground.unpack().data == bytes([0, 0, 20, 255]) * (W * H)
    assert outcome.frames[2].background.unpack().data == bytes([0, 30, 0, 255]) * (W * H)
    seed = seeds.pop()
    assert backend.events[-1] == (
        "done",
        ([f"Colorized 1 (seed {seed})"], "below “line art”: keyframes 0, 2, 4, in the colours of “sheet”"),
    )
    assert shots.state is ShotState.IDLE


def test_progress_counts_frames_and_steps() -> None:
    docs, backend = FakeShot([0, 1]), Backend()
    shots = run_shot(docs, backend, ColorizeParams(steps=4, seed=1), FrameRange(0, 1))
    stages: list[str] = []
    shots.callbacks.stage = lambda text, busy: stages.append(text)
    shots.handle(Message(Header("p", "progress", "s", "d", "1.0"), Progress("m1", 3, 4), backend.last_job()))
    shots.handle(backend.result(fg=1, age=0))
    shots.handle(Message(Header("p", "progress", "s", "d", "1.0"), Progress("m2", 2, 4), backend.last_job()))
    progress = [value for kind, value in backend.events if kind == "progress"]
    assert progress == [(0, 8), (3, 8), (4, 8), (6, 8)]
    assert "Colorizing frame 1 of 2 (keyframe 0): step 3 of 4…" in stages
    assert "Colorizing frame 2 of 2 (keyframe 1): step 2 of 4…" in stages


def test_without_carry_or_after_an_empty_keyframe_nothing_is_carried() -> None:
    docs, backend = FakeShot([0, 1, 2, 3], empty=(1,), auto=False), Backend()
    shots = run_shot(docs, backend, ColorizeParams(seed=9), FrameRange(0, 3))
    for fg in (1, 2, 3):
        shots.handle(backend.result(fg=fg, age=0, sketch_mask=None, reference_mask=False))
    requests = backend.requests()
    assert len(requests) == 3  # the empty keyframe is not sent
    assert [r.previous_sketch is None for r, _ in requests] == [True, True, False]  # 0, 2 (after the empty), 3
    assert requests[0][0].sketch_mask is not None and requests[2][0].previous_mask is not None
    (_, outcome, _) = docs.placed[0]
    assert [f.time for f in outcome.frames] == [0, 1, 2, 3] and outcome.frames[1].foreground is None
    assert outcome.complete
    docs, backend = FakeShot([0, 1]), Backend()
    shots = run_shot(docs, backend, ColorizeParams(seed=9), FrameRange(0, 1), carry=False)
    shots.handle(backend.result(fg=1, age=0))
    shots.handle(backend.result(fg=2, age=0))
    assert len(backend.requests()) == 2
    assert all(r.previous_sketch is None and r.previous_fills is None for r, _ in backend.requests())
    kind, (_, where) = backend.events[-1]
    assert kind == "done" and "does not carry colours from frame to frame" in where  # the artist is told


def test_cancel_stops_after_the_frame_in_flight_and_keeps_the_done_frames() -> None:
    docs, backend = FakeShot([0, 2, 4, 6]), Backend()
    shots = run_shot(docs, backend, ColorizeParams(seed=3), FrameRange(0, 6))
    shots.handle(backend.result(fg=1, age=0))
    shots.cancel()  # frame 2 of 4 is in flight: it finishes, nothing more is sent
    assert shots.state is ShotState.STOPPING and not any(isinstance(c, Cancel) for c, _ in backend.sent)
    shots.handle(backend.result(fg=2, age=1))
    assert len(backend.requests()) == 2 and shots.state is ShotState.IDLE
    ((_, outcome, _),) = docs.placed
    assert not outcome.complete and outcome.label == "2 of 4 frames"
    assert [f.time for f in outcome.frames] == [0, 2]
    kind, text = backend.events[-1]
    assert kind == "failed" and text.startswith("Stopped. Kept keyframes 0, 2 (2 of 4 frames) in Colorized 1"), text
    assert "keyframes 4, 6 were not colorized and are empty there" in text


def test_a_second_cancel_stops_the_frame_in_flight_too() -> None:
    docs, backend = FakeShot([0, 1, 2]), Backend()
    shots = run_shot(docs, backend, ColorizeParams(seed=3), FrameRange(0, 2))
    shots.cancel()
    shots.cancel()
    assert shots.state is ShotState.CANCELLING
    cancel = backend.sent[-1][0]
    assert isinstance(cancel, Cancel) and cancel.job_id == "m1"
    backend.sent.pop()  # the error answers the frame's request
    shots.handle(backend.error("cancelled", "job m1 was cancelled"))
    assert docs.placed == [] and docs.discarded == ["target"]
    assert backend.events[-1] == ("failed", "Cancelled: no frame was colorized, so the document was not changed.")


def test_a_failing_frame_ends_the_shot_keeping_the_frames_before_it() -> None:
    docs, backend = FakeShot([0, 1, 2]), Backend()
    shots = run_shot(docs, backend, ColorizeParams(seed=3), FrameRange(0, 2))
    shots.handle(backend.result(fg=1, age=0))
    shots.handle(backend.error("job_failed", "out of memory"))
    ((_, outcome, _),) = docs.placed
    assert [f.time for f in outcome.frames] == [0] and outcome.label == "1 of 3 frames"
    kind, text = backend.events[-1]
    assert kind == "failed" and text.startswith("frame 2 of 3 (keyframe 1) failed: out of memory. Kept keyframes 0"), (
        text
    )
    # a frame that cannot be read (the layer deleted mid-shot) ends it the same way
    docs, backend = FakeShot([0, 1, 2], fail_at=1), Backend()
    shots = run_shot(docs, backend, ColorizeParams(seed=3), FrameRange(0, 2))
    shots.handle(backend.result(fg=1, age=0))
    assert len(backend.requests()) == 1
    kind, text = backend.events[-1]
    assert text.startswith("frame 2 of 3 (keyframe 1) could not be read: the layer was deleted. Kept keyframes 0"), text


def test_other_messages_are_ignored_and_problems_are_said_before_anything_is_sent() -> None:
    docs, backend = FakeShot([0, 1]), Backend()
    shots = run_shot(docs, backend, ColorizeParams(seed=3), FrameRange(0, 1))
    other = Message(
        Header("r", "result", "s", "d", "1.0"), Result("zz", "tiny", (), (1,)), Header("zz", "x", "s", "d", "1.0")
    )
    shots.handle(other)
    assert len(backend.requests()) == 1 and shots.state is ShotState.RUNNING
    shots.start(INPUTS, ColorizeParams(), FrameRange(0, 1))
    assert backend.events[-1] == ("failed", "frames are already being colorized; cancel them or wait")
    docs, backend = FakeShot([5]), Backend()
    run_shot(docs, backend, ColorizeParams(), FrameRange(0, 3))
    assert backend.sent == [] and backend.events == [("failed", "no keyframe in frames 0–3")]
    # every keyframe empty: nothing sent, nothing placed, and said so
    docs, backend = FakeShot([0, 1], empty=(0, 1)), Backend()
    run_shot(docs, backend, ColorizeParams(), FrameRange(0, 1))
    assert backend.sent == [] and docs.placed == [] and docs.discarded == ["target"]
    assert backend.events[-1] == ("failed", "every keyframe in the range is empty: nothing to colorize")
