"""The colorize flow without Krita: request building, result decoding, the controller."""

from __future__ import annotations

from typing import Any

import pytest
from plugin_fakes import Sent

from refcolor_plugin.controller import Callbacks, ColorizeController, ComputedMasks, Inputs, Placement, State
from refcolor_plugin.jobs import Snapshot, VariationLayers, build_request, result_layers, result_masks
from refcolor_plugin.masks import MaskSource
from refcolor_plugin.pixels import Pixels, PluginError, coverage, faded_outside
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
    Mode,
    Progress,
    Result,
    ResultLayer,
    ResultMask,
    Stage,
)

W, H = 4, 3


def bgra(width: int = W, height: int = H, value: int = 7) -> Pixels:
    return Pixels(bytes([value, 0, 0, 255]) * (width * height), width, height, Layout.BGRA8)


def mask(width: int = W, height: int = H) -> Pixels:
    return Pixels(b"\xff" * (width * height), width, height, Layout.L8)


def test_build_request_carries_images_masks_and_controls() -> None:
    snapshot = Snapshot(bgra(), bgra(2, 2), mask(), mask(2, 2), bgra(3, 3))
    params = ColorizeParams(mode=Mode.FOREGROUND, steps=9, seed=5, variations=2, fg_strength=1.5, flatten=0.3)
    request, buffers = build_request(snapshot, params, "tiny")
    assert request.sketch == ImageRef(W, H, Layout.BGRA8, W * H * 4, 0)
    assert request.sketch_mask == ImageRef(W, H, Layout.L8, W * H, 2)
    assert request.background is not None and request.background.buffer == 4
    assert [bytes(b) for b in buffers] == [
        p.data
        for p in (
            snapshot.sketch,
            snapshot.reference,
            snapshot.sketch_mask,
            snapshot.reference_mask,
            snapshot.background,
        )
    ]
    p = request.params
    assert (p.mode, p.steps, p.seed, p.variations, p.fg_strength, request.model) == (
        Mode.FOREGROUND,
        9,
        5,
        2,
        1.5,
        "tiny",
    )
    assert (p.color_match, p.flatten) == (None, 0.3)  # None: left to the model


def test_build_request_refuses_a_mask_of_another_size() -> None:
    with pytest.raises(PluginError, match="line-art mask is 2x2 but the line-art is 4x3"):
        build_request(Snapshot(bgra(), bgra(), mask(2, 2)), ColorizeParams())


def test_automatic_masks_are_asked_for_only_from_a_backend_that_can_find_them() -> None:
    auto = Snapshot(bgra(), bgra(2, 2), auto_masks=(MaskName.SKETCH, MaskName.REFERENCE))
    request, buffers = build_request(auto, ColorizeParams(), can_compute=("sketch", "reference"))
    assert request.auto_masks == (MaskName.SKETCH, MaskName.REFERENCE) and len(buffers) == 2
    assert request.sketch_mask is None and request.reference_mask is None
    assert build_request(auto, ColorizeParams())[0].auto_masks == auto.auto_masks  # not known yet: the backend says
    with pytest.raises(PluginError, match=r"reference mask automatically \(its mask model.*pip install onnxruntime"):
        build_request(auto, ColorizeParams(), can_compute=("sketch",))
    with pytest.raises(PluginError, match=r"line-art mask automatically \(it is older than protocol 1\.6"):
        build_request(auto, ColorizeParams(), can_compute=())


def test_masks_are_shown_faded_outside_and_measured() -> None:
    image = Pixels(bytes([1, 2, 3, 200]) * 4, 2, 2, Layout.BGRA8)
    half = Pixels(bytes([255, 0, 130, 127]), 2, 2, Layout.L8)
    faded = faded_outside(image, half)
    assert faded.data[3::4] == bytes([200, 50, 200, 50]) and faded.data[0::4] == image.data[0::4]
    assert coverage(half) == 0.5 and coverage(Pixels(b"", 0, 0, Layout.L8)) == 0.0
    with pytest.raises(PluginError, match="does not fit"):
        faded_outside(image, Pixels(b"\xff", 1, 1, Layout.L8))


def result_message(
    job: Header, variations: int = 1, size: tuple[int, int] = (W, H), masks: dict[MaskName, Pixels] | None = None
) -> Message:
    layers, buffers = [], []
    for v in range(variations):
        for name, value in (("foreground", 10 + v), ("background", 20 + v), ("combined", 30 + v)):
            data = bytes([value, 1, 2, 128]) * (size[0] * size[1])
            layers.append(
                ResultLayer(LayerName(name), v, ImageRef(size[0], size[1], Layout.RGBA8, len(data), len(buffers)))
            )
            buffers.append(data)
    found = []
    for name, pixels in (masks or {}).items():
        ref = ImageRef(pixels.width, pixels.height, pixels.layout, len(pixels.data), len(buffers))
        found.append(ResultMask(name, ref))
        buffers.append(pixels.data)
    header = Header("r", "result", "s", "d", "1.0")
    result = Result(job.msg_id, "tiny", tuple(layers), tuple(range(variations)), masks=tuple(found))
    return Message(header, result, job, tuple(buffers))


def test_result_layers_become_bgra_per_variation() -> None:
    job = Header("job", "colorize_request", "s", "d", "1.0")
    (first, second) = result_layers(result_message(job, 2), (W, H))
    assert first.foreground.layout is Layout.BGRA8
    assert first.foreground.data[:4] == bytes([2, 1, 10, 128]) and second.background.data[:4] == bytes([2, 1, 21, 128])
    with pytest.raises(PluginError, match="expected RGBA8 at the document's 5x5"):
        result_layers(result_message(job), (5, 5))


class FakeDocuments:
    def __init__(self, fail: str = "") -> None:
        self.fail = fail
        self.added: list[tuple[Any, list[VariationLayers], bool]] = []
        self.discarded: list[Any] = []

    def snapshot(self, inputs: Inputs) -> tuple[Snapshot, Any]:
        if self.fail:
            raise PluginError(self.fail)
        return Snapshot(bgra(), bgra(2, 2), mask()), "target"

    def document_size(self, target: Any) -> tuple[int, int]:
        return W, H

    def add_results(self, target: Any, layers: list[VariationLayers], replace_previous: bool) -> Placement:
        self.added.append((target, layers, replace_previous))
        return Placement([f"Colorized {i + 1}" for i in range(len(layers))], "below “line art”")

    def discard(self, target: Any) -> None:
        self.discarded.append(target)


class Recorder(Sent):
    def callbacks(self) -> Callbacks:
        return Callbacks(
            state=lambda s: self.events.append(("state", s)),
            progress=lambda step, total: self.events.append(("progress", (step, total))),
            preview=lambda p: self.events.append(("preview", p.size)),
            done=lambda names, where: self.events.append(("done", names)),
            failed=lambda text: self.events.append(("failed", text)),
            masks=lambda computed: self.events.append(("masks", computed)),
        )


INPUTS = Inputs(line_art="la", reference="ref", sketch_mask=MaskSource.SELECTION, replace_previous=True)


def test_controller_runs_a_job_to_its_layers() -> None:
    docs, rec = FakeDocuments(), Recorder()
    controller = ColorizeController(docs, rec.send, rec.callbacks())
    controller.colorize(INPUTS, ColorizeParams(steps=2))
    ((request, buffers),) = rec.sent
    assert isinstance(request, ColorizeRequest) and len(buffers) == 3
    job = Header("m1", "colorize_request", "s", "d", "1.0")
    other = Header("zzz", "colorize_request", "s", "d", "1.0")
    preview = ImageRef(2, 1, Layout.RGBA8, 8, 0)
    controller.handle(
        Message(Header("p", "progress", "s", "d", "1.0"), Progress("m1", 1, 2, 0, preview), job, (bytes(8),))
    )
    controller.handle(result_message(other))  # another job's result: ignored
    assert docs.added == []
    controller.handle(result_message(job))
    assert [kind for kind, _ in rec.events] == ["state", "progress", "progress", "preview", "state", "done"]
    assert rec.events[0] == ("state", State.RUNNING) and rec.events[-1] == ("done", ["Colorized 1 (seed 0)"])
    ((target, layers, replace),) = docs.added
    assert target == "target" and replace is True and layers[0].foreground.size == (W, H)
    assert controller.state is State.IDLE


def test_controller_cancel_and_errors() -> None:
    docs, rec = FakeDocuments(), Recorder()
    controller = ColorizeController(docs, rec.send, rec.callbacks())
    controller.colorize(INPUTS, ColorizeParams())
    controller.colorize(INPUTS, ColorizeParams())  # refused while running
    assert len(rec.sent) == 1 and rec.events[-1][0] == "failed"
    controller.cancel()
    assert isinstance(rec.sent[-1][0], Cancel) and rec.sent[-1][0].job_id == "m1"
    assert controller.state is State.CANCELLING
    job = Header("m1", "colorize_request", "s", "d", "1.0")
    controller.handle(Message(Header("e", "error", "s", "d", "1.0"), Error("cancelled", "job m1 was cancelled"), job))
    assert rec.events[-1] == ("failed", "Cancelled: the document was not changed.") and docs.added == []
    controller.colorize(INPUTS, ColorizeParams())
    job = Header("m3", "colorize_request", "s", "d", "1.0")
    controller.handle(Message(Header("e", "error", "s", "d", "1.0"), Error("queue_full", "full", "wait"), job))
    assert rec.events[-1] == ("failed", "full (wait)") and controller.state is State.IDLE


def test_controller_reports_document_problems_without_sending() -> None:
    rec = Recorder()
    controller = ColorizeController(FakeDocuments(fail="the line-art layer is empty"), rec.send, rec.callbacks())
    controller.colorize(INPUTS, ColorizeParams())
    assert rec.sent == [] and rec.events == [("failed", "the line-art layer is empty")]


def test_controller_names_every_stage_and_forgets_the_target_of_a_job_without_result() -> None:
    docs, rec = FakeDocuments(), Recorder()
    stages: list[tuple[str, bool]] = []
    callbacks = rec.callbacks()
    callbacks.stage = lambda text, busy: stages.append((text, busy))
    controller = ColorizeController(docs, rec.send, callbacks)
    controller.colorize(INPUTS, ColorizeParams(steps=2))
    job = Header("m1", "colorize_request", "s", "d", "1.0")

    def progress(step: int, stage: Stage) -> Message:
        return Message(Header("p", "progress", "s", "d", "1.0"), Progress("m1", step, 2, stage=stage), job)

    for step, stage in [(0, Stage.DENOISING), (0, Stage.ENCODING), (0, Stage.DENOISING), (1, Stage.DENOISING),
                        (2, Stage.DENOISING), (2, Stage.UPSAMPLING), (2, Stage.FINISHING), (2, Stage.LAYERS)]:
        controller.handle(progress(step, stage))
    controller.handle(result_message(job))
    texts = [text.split(" ", 1)[0] for text, _ in stages]
    assert texts == ["Reading", "Sending", "Waiting", "Started…", "Encoding", "Colorizing:", "Colorizing:",
                     "Colorizing:", "Bringing", "Finishing", "Building", "Placing"]  # fmt: skip
    busy = dict(stages)
    assert busy["Colorizing: step 1 of 2…"] is False and busy["Bringing the colours to full resolution…"] is True
    # a full-resolution stage that reports how far it is moves the bar and says so
    controller.colorize(INPUTS, ColorizeParams(steps=2))
    moving = Header("m2", "colorize_request", "s", "d", "1.0")
    controller.handle(Message(Header("p", "progress", "s", "d", "1.0"),
                              Progress("m2", 2, 2, stage=Stage.UPSAMPLING, fraction=0.4), moving))  # fmt: skip
    assert stages[-1] == ("Bringing the colours to full resolution… 40%", False)
    assert rec.events[-1] == ("progress", (40, 100))
    controller.handle(result_message(moving))
    assert rec.events[-1] == ("done", ["Colorized 1 (seed 0)"]) and docs.discarded == []
    # a job that fails or is cancelled lets go of its target (a copy made for it is closed)
    controller.colorize(INPUTS, ColorizeParams())
    failed = Header("m3", "colorize_request", "s", "d", "1.0")
    controller.handle(Message(Header("e", "error", "s", "d", "1.0"), Error("job_failed", "boom"), failed))
    assert docs.discarded == ["target"] and rec.events[-1] == ("failed", "boom")


def test_masks_the_backend_found_are_handed_on_with_the_job_they_belong_to() -> None:
    docs, rec = FakeDocuments(), Recorder()
    controller = ColorizeController(docs, rec.send, rec.callbacks())
    inputs = Inputs(line_art="la", reference="ref", sketch_mask=MaskSource.AUTO, reference_mask=MaskSource.AUTO)
    controller.colorize(inputs, ColorizeParams(steps=2))
    job = Header("m1", "colorize_request", "s", "d", "1.0")
    found = {MaskName.SKETCH: Pixels(bytes([0, 255] * 6), W, H, Layout.L8), MaskName.REFERENCE: mask(2, 2)}
    assert result_masks(result_message(job, masks=found), (W, H)) == found
    with pytest.raises(PluginError, match="2x2 line-art mask for a 4x3 document"):
        result_masks(result_message(job, masks={MaskName.SKETCH: mask(2, 2)}), (W, H))
    controller.handle(result_message(job, masks=found))
    kinds = [kind for kind, _ in rec.events]
    assert kinds[-2:] == ["masks", "done"]  # shown before the status says Done
    computed = rec.events[-2][1]
    assert computed == ComputedMasks(inputs, "target", found)
    controller.colorize(INPUTS, ColorizeParams(steps=2))  # no automatic mask: nothing to hand on
    controller.handle(result_message(Header("m2", "colorize_request", "s", "d", "1.0")))
    assert [kind for kind, _ in rec.events].count("masks") == 1
    # a mask the plugin cannot use costs "Use as selection", never the result's layers
    controller.colorize(INPUTS, ColorizeParams(steps=2))
    bad = {MaskName.SKETCH: mask(2, 2)}
    controller.handle(result_message(Header("m3", "colorize_request", "s", "d", "1.0"), masks=bad))
    assert rec.events[-1] == ("done", ["Colorized 1 (seed 0)"]) and len(docs.added) == 3
    assert [kind for kind, _ in rec.events].count("masks") == 1
