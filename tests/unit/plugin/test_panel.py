"""The docker's widgets, offscreen (PyQt5, no Krita)."""

from __future__ import annotations

from refcolor_krita.masks import MaskSource
from refcolor_krita.panel import MODE_HELP, Panel
from refcolor_krita.settings import Settings

from refcolor_protocol import Mode


def test_controls_start_from_settings_and_read_back(monkeypatch) -> None:
    panel = Panel(Settings(mode="plain", steps=12, seed=99, reference_scale=7.5, variations=3))
    controls = panel.controls("tiny")
    assert (controls.mode, controls.steps, controls.seed, controls.variations, controls.model) == (
        Mode.PLAIN,
        12,
        99,
        3,
        "tiny",
    )
    assert controls.reference_scale == 7.5
    assert panel.mode_help.text() == MODE_HELP[Mode.PLAIN]
    monkeypatch.setattr("refcolor_krita.panel.random.randrange", lambda n: 1234)
    panel.new_seed.click()
    assert panel.controls().seed == 1234
    panel.fg_strength.set_value(1.5)
    assert panel.controls().fg_strength == 1.5
    # defaults come back exactly (a 100-position slider over 0..15 used to send 4.95 for 5)
    defaults = Panel(Settings()).controls()
    assert (defaults.reference_scale, defaults.sketch_scale, defaults.bg_strength) == (5.0, 1.0, 1.0)


def test_finishing_controls_default_to_the_model_and_can_be_set() -> None:
    panel = Panel(Settings())
    assert (panel.controls().color_match, panel.controls().flatten) == (None, None)
    assert not panel.flatten.slider.isEnabled()
    panel.flatten.auto.setChecked(False)
    panel.flatten.set_value(0.8)
    assert panel.flatten.slider.isEnabled() and panel.controls().flatten == 0.8
    panel.flatten.set_value(None)
    assert panel.controls().flatten is None
    # the backend says what auto means for its model: shown, and where unticking starts from
    panel.show_model_defaults(1.0, 0.5)
    assert panel.flatten.label.text() == "0.5" and panel.color_match.label.text() == "1"
    assert panel.controls().flatten is None
    panel.flatten.auto.setChecked(False)
    assert panel.controls().flatten == 0.5
    saved = Panel(Settings(color_match=0.25, flatten=-1.0))
    assert (saved.controls().color_match, saved.controls().flatten) == (0.25, None)


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
