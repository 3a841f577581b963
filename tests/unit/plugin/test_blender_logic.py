"""The Blender add-on's plain modules (no bpy): pixel conversion, the panel's parameters, and the
session that drives the connection from Blender's timer."""

from __future__ import annotations

import array
import random

import pytest
from plugin_fakes import Sent

from refcolor_blender import pixels_io
from refcolor_blender.controls import INT_MAX, controls, params_from_values
from refcolor_blender.session import BUSY_S, IDLE_S, Session
from refcolor_plugin.controller import Inputs, Placement
from refcolor_plugin.jobs import Snapshot
from refcolor_plugin.pixels import Pixels, PluginError
from refcolor_plugin.settings import Settings
from refcolor_protocol import Capabilities, ColorizeRequest, Layout, Mode


@pytest.mark.parametrize("use_numpy", [True, False])
def test_bytes_and_blender_floats_round_trip_exactly(use_numpy: bool) -> None:
    data = bytes(random.Random(0).randrange(256) for _ in range(4 * 7 * 5))
    floats = pixels_io.to_floats(data, use_numpy)
    assert floats.typecode == "f" and len(floats) == len(data)
    assert pixels_io.to_bytes(floats, use_numpy) == data


@pytest.mark.parametrize("use_numpy", [True, False])
def test_floats_of_a_float_image_are_rounded_and_clipped(use_numpy: bool) -> None:
    floats = array.array("f", [-0.5, 0.0, 0.1, 0.5, 0.999, 1.0, 3.0, 0.2])
    assert list(pixels_io.to_bytes(floats, use_numpy)) == [0, 0, 26, 128, 255, 255, 255, 51]


def test_blender_rows_go_bottom_to_top() -> None:
    # 2x2: Blender's first row is the picture's bottom row.
    bottom, top = [1.0, 0.0, 0.0, 1.0] * 2, [0.0, 0.0, 1.0, 1.0] * 2
    pixels = pixels_io.from_blender(array.array("f", bottom + top), 2, 2)
    assert pixels.layout is Layout.RGBA8
    assert pixels.data[:8] == bytes([0, 0, 255, 255] * 2)  # top row first
    assert pixels_io.to_blender(pixels) == array.array("f", bottom + top)


def test_grey_rgb_and_bgra_images_become_rgba() -> None:
    grey = pixels_io.from_blender([0.0, 1.0], 2, 1, channels=1)
    assert grey.data == bytes([0, 0, 0, 255, 255, 255, 255, 255])
    rgb = pixels_io.from_blender([1.0, 0.0, 0.0], 1, 1, channels=3)
    assert rgb.data == bytes([255, 0, 0, 255])
    bgra = Pixels(bytes([10, 20, 30, 40]), 1, 1, Layout.BGRA8)
    assert pixels_io.to_bytes(pixels_io.to_blender(bgra)) == bytes([30, 20, 10, 40])
    with pytest.raises(PluginError, match="should have 8 values, has 3"):
        pixels_io.from_blender([0.0] * 3, 2, 1)


def test_the_panels_parameters_follow_the_schema() -> None:
    by_name = {c.name: c for c in controls()}
    assert by_name["mode"].kind == "enum" and "both" in by_name["mode"].choices
    assert by_name["seed"].auto and by_name["seed"].auto_default and by_name["seed"].high == INT_MAX
    assert by_name["steps"].kind == "int" and not by_name["steps"].auto
    params = params_from_values({"mode": "foreground", "auto_seed": False, "seed": 5, "steps": 7, "auto_flatten": True})
    assert (params.mode, params.seed, params.steps, params.flatten) == (Mode.FOREGROUND, 5, 7, None)
    assert params_from_values({}).seed is None  # automatic unless the artist says otherwise
    with pytest.raises(PluginError, match="steps"):
        params_from_values({"steps": 0})


class FakeDocuments:
    """Reads a fixed 4x4 picture; places nothing (the session's flow is what is tested here)."""

    def __init__(self) -> None:
        self.placed: list[object] = []
        self.discarded = 0

    def snapshot(self, inputs: Inputs) -> tuple[Snapshot, object]:
        sketch = Pixels(b"\xff" * 64, 4, 4, Layout.RGBA8)
        return Snapshot(sketch, sketch), "target"

    def document_size(self, target: object) -> tuple[int, int]:
        return 4, 4

    def add_results(self, target: object, layers: list, replace_previous: bool) -> Placement:
        self.placed.append(layers)
        return Placement(["sketch colors"], "as new images")

    def discard(self, target: object) -> None:
        self.discarded += 1


def capabilities() -> Capabilities:
    from refcolor_protocol import Limits, ModelEntry

    model = ModelEntry("tiny", "diffusion", "cpu")
    limits = Limits(10**7, 4, 10**9, 200, 8, 5, 256)
    return Capabilities("0", "1.7", "id", model, ("tiny",), ("both",), ("dpmpp_2m",), ("RGBA8",), limits, ("sketch",))


def test_without_a_backend_colorize_says_so_and_sends_nothing(tmp_path) -> None:
    documents = FakeDocuments()
    settings = Settings(connection_file=str(tmp_path / "none.json"), start_backend=False)
    session = Session(settings, documents)  # type: ignore[arg-type]
    session.start()
    assert "No backend running" in session.view.connection and not session.view.connected
    assert session.tick() == pytest.approx(IDLE_S, abs=IDLE_S)  # the retry is due within the idle pause
    session.colorize(Inputs("sketch", "ref"), params_from_values({}))
    assert session.view.failed and session.view.message.startswith("Not connected to a backend: No backend running")
    assert not session.busy and documents.placed == [] and documents.discarded == 0
    session.close()


def test_a_job_runs_on_the_timer_and_its_messages_reach_the_view(tmp_path) -> None:
    documents = FakeDocuments()
    session = Session(Settings(connection_file=str(tmp_path / "none.json"), start_backend=False), documents)  # type: ignore[arg-type]
    sent = Sent()
    session.connection.capabilities = capabilities()  # connected, as after a hello
    session.connection.send = sent.send  # type: ignore[method-assign]
    redraws: list[str] = []
    session.redraw = lambda: redraws.append(session.view.stage)
    session.colorize(Inputs("sketch", "ref"), params_from_values({"steps": 3}))
    assert session.busy and session.view.running and redraws
    (request, _), *_ = sent.sent
    assert isinstance(request, ColorizeRequest) and request.params.steps == 3
    assert session.tick() <= BUSY_S  # polled often while a job is in flight
    session.colorize(Inputs("sketch", "ref"), params_from_values({}))  # a second one is refused
    assert session.view.failed and "running" in session.view.message
    session.cancel()
    assert session.view.cancelling and type(sent.sent[-1][0]).__name__ == "Cancel"
