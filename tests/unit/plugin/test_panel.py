"""The docker's widgets, offscreen (PyQt5, no Krita)."""

from __future__ import annotations

import dataclasses

from refcolor_krita.panel import MODE_HELP, BackendDialog, Choice, Count, OptionalStrength, Panel, Strength

from refcolor_plugin.masks import MaskSource
from refcolor_plugin.pixels import Pixels
from refcolor_plugin.settings import PANEL_PARAMS, Settings
from refcolor_protocol import Capabilities, ColorizeParams, Layout, Limits, Mode, ModelEntry
from refcolor_protocol.schema import PARAMS


def settings(**params: object) -> Settings:
    return Settings(params=ColorizeParams(**params))  # type: ignore[arg-type]


def capabilities(modes: tuple[str, ...] = ("plain", "both"), max_steps: int = 50, max_variations: int = 3,
                 flatten: float | None = 0.5) -> Capabilities:
    return Capabilities(
        server_version="0", protocol_version="1.2", server_id="x",
        model=ModelEntry("nano", "diffusion", "cpu", color_match=1.0, flatten=flatten),
        models=("nano",), modes=modes, schedulers=("dpmpp_2m",), layouts=("RGBA8",),
        limits=Limits(max_pixels=1 << 20, max_queue=1, max_message_bytes=1 << 22, max_steps=max_steps,
                      max_variations=max_variations, preview_every=1, preview_size=64),
    )


def test_the_panel_has_a_control_per_panel_parameter_built_from_the_schema() -> None:
    # The scenario: a parameter marked for the panels in the schema appears with its label, tooltip,
    # range and default, with no other change to the plugin.
    panel = Panel(Settings())
    assert list(panel.controls) == [spec.name for spec in PARAMS if spec.panel] == [s.name for s in PANEL_PARAMS]
    kinds = {name: type(control) for name, control in panel.controls.items()}
    assert kinds["mode"] is Choice and kinds["steps"] is Count and kinds["flatten"] is OptionalStrength
    assert kinds["reference_scale"] is Strength
    for spec in PANEL_PARAMS:
        control = panel.control(spec.name)
        assert control.toolTip().lower() == spec.help.lower()
    assert panel.params() == ColorizeParams()  # the defaults come back exactly (no 4.95 for 5)


def test_controls_start_from_settings_and_read_back(monkeypatch) -> None:
    panel = Panel(settings(mode=Mode.PLAIN, steps=12, seed=99, reference_scale=7.5, variations=3))
    params = panel.params()
    assert (params.mode, params.steps, params.seed, params.variations, params.reference_scale) == (
        Mode.PLAIN, 12, 99, 3, 7.5,
    )
    assert panel.mode_help.text() == MODE_HELP[Mode.PLAIN]
    monkeypatch.setattr("refcolor_krita.panel.random.randrange", lambda n: 1234)
    panel.control("seed").dice.click()
    assert panel.params().seed == 1234
    panel.control("fg_strength").set_value(1.5)
    assert panel.params().fg_strength == 1.5


def test_auto_is_one_spelling_for_seed_and_finishing() -> None:
    panel = Panel(Settings())
    assert (panel.params().seed, panel.params().color_match, panel.params().flatten) == (None, None, None)
    seed = panel.control("seed")
    assert seed.spin.text() == "auto"
    seed.set_value(0)
    assert panel.params().seed == 0  # 0 is a seed, not "auto"
    flatten = panel.control("flatten")
    assert not flatten.slider.isEnabled()
    flatten.auto.setChecked(False)
    flatten.set_value(0.8)
    assert flatten.slider.isEnabled() and panel.params().flatten == 0.8
    flatten.set_value(None)
    assert panel.params().flatten is None


def test_capabilities_clamp_the_controls_and_say_what_auto_means() -> None:
    # The scenario: a backend started with --max-steps 50 --max-variations 3 serving only plain and
    # both. The panel offered 200 steps, 8 variations and all four modes, and the job was refused.
    panel = Panel(settings(steps=120, variations=6, mode=Mode.FOREGROUND))
    panel.apply_capabilities(capabilities(), own_model=True)
    steps, variations, mode = panel.control("steps"), panel.control("variations"), panel.control("mode")
    assert (steps.spin.maximum(), variations.spin.maximum()) == (50, 3)
    assert (panel.params().steps, panel.params().variations) == (50, 3)
    assert [mode.itemData(i) for i in range(mode.count())] == ["plain", "both"]
    assert panel.params().mode is Mode.PLAIN  # foreground is not offered: the first one is
    # the backend says what auto means for its model: shown, and where unticking starts from
    flatten = panel.control("flatten")
    assert flatten.label.text() == "0.5" and panel.control("color_match").label.text() == "1"
    assert panel.params().flatten is None
    flatten.auto.setChecked(False)
    assert panel.params().flatten == 0.5
    other = Panel(Settings())
    other.apply_capabilities(capabilities(flatten=0.9), own_model=False)  # another model runs: unknown
    assert other.control("flatten").label.text() == ""


def test_mask_defaults_follow_what_is_available_until_the_user_picks() -> None:
    panel = Panel(Settings())
    panel.fill_masks(panel.sketch_mask, [MaskSource.NONE])  # no selection yet
    panel.fill_masks(panel.sketch_mask, [MaskSource.SELECTION, MaskSource.NONE])  # now there is one
    assert panel.sketch_mask.currentData() is MaskSource.SELECTION
    panel.sketch_mask.setCurrentIndex(1)
    panel.sketch_mask.activated.emit(1)  # the user picks "None"
    panel.fill_masks(panel.sketch_mask, [MaskSource.SELECTION, MaskSource.LAYER_MASK, MaskSource.NONE])
    assert panel.sketch_mask.currentData() is MaskSource.NONE
    panel.sketch_mask.setCurrentIndex(0)
    panel.sketch_mask.activated.emit(0)  # the user picks the selection, which then goes away
    panel.fill_masks(panel.sketch_mask, [MaskSource.LAYER_MASK, MaskSource.NONE])
    assert panel.sketch_mask.currentData() is MaskSource.LAYER_MASK


def test_running_state_toggles_buttons() -> None:
    panel = Panel(Settings())
    panel.set_running(True)
    assert not panel.colorize.isEnabled() and panel.cancel.isEnabled()
    panel.set_progress(3, 10)
    assert panel.progress.value() == 3 and panel.progress.maximum() == 10
    panel.set_status("Lost the backend", ok=False)
    assert "c0392b" in panel.status.styleSheet()


def test_params_the_panel_does_not_show_stay_at_their_defaults() -> None:
    hidden = [spec.name for spec in PARAMS if not spec.panel]
    assert "scheduler" in hidden and "previews" in hidden
    params = Panel(settings(steps=7)).params()
    defaults = {f.name: f.default for f in dataclasses.fields(ColorizeParams)}
    assert all(getattr(params, name) == defaults[name] for name in hidden)


def test_the_inputs_scroll_while_the_buttons_and_status_lines_stay_below_them() -> None:
    panel = Panel(Settings())
    inside = panel.scroll.widget()
    for widget in (panel.line_art, panel.reference, panel.background, panel.control("mode")):
        assert inside.isAncestorOf(widget)
    for widget in (panel.colorize, panel.cancel, panel.progress, panel.status, panel.connection):
        assert not panel.scroll.isAncestorOf(widget) and panel.isAncestorOf(widget)
    # less used controls fold into "Advanced"; the main ones do not
    assert panel.advanced.isAncestorOf(panel.control("seed")) and panel.advanced.isAncestorOf(panel.control("flatten"))
    assert not panel.advanced.isAncestorOf(panel.control("mode"))
    panel.show_advanced(True)
    assert not panel.advanced.isHidden() and panel.advanced_toggle.isChecked()
    panel.show_advanced(False)
    assert panel.advanced.isHidden()
    assert Panel(Settings(show_advanced=True)).advanced_toggle.isChecked()


def test_a_finished_job_leaves_no_bar_or_preview_behind() -> None:
    panel = Panel(Settings())
    panel.set_running(True)
    assert not panel.progress.isHidden() and panel.progress.maximum() == 0  # busy until the first step
    panel.set_preview(Pixels(bytes(16 * 4), 4, 4, Layout.RGBA8))
    assert not panel.preview.isHidden()
    panel.set_running(False)
    assert panel.progress.isHidden() and panel.preview.isHidden()
    assert panel.preview.pixmap() is None or panel.preview.pixmap().isNull()


def test_the_backend_dialog_edits_how_the_backend_is_started() -> None:
    base = Settings(start_backend=True, backend_python="/old/python", model="nano")
    dialog = BackendDialog(base)
    dialog.python.setText("  /venv/bin/python ")
    dialog.start_backend.setChecked(False)
    dialog.address.setText("tcp://10.0.0.2:5557")
    edited = dialog.settings(base)
    assert edited == dataclasses.replace(
        base, backend_python="/venv/bin/python", start_backend=False, address="tcp://10.0.0.2:5557"
    )
