"""Pure rules of the plugin: settings, mask choices, placement, pixel conversions."""

from __future__ import annotations

import pytest

from refcolor_plugin.masks import MaskSource, keep_choice, reference_mask_choices, sketch_mask_choices
from refcolor_plugin.pixels import (
    Pixels,
    PluginError,
    alpha_channel,
    has_transparency,
    is_blank,
    swap_red_blue,
    thumbnail_rgba,
)
from refcolor_plugin.placement import latest_group, next_group_names
from refcolor_plugin.settings import Settings, load_settings, save_settings
from refcolor_protocol import ColorizeParams, Layout


class DictStore:
    """An in-memory settings store (Krita's is its settings API)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def read(self, key: str, default: str) -> str:
        return self.values.get(key, default)

    def write(self, key: str, value: str) -> None:
        self.values[key] = value


def test_settings_round_trip_and_bad_values_fall_back() -> None:
    store = DictStore()
    assert load_settings(store) == Settings()
    params = ColorizeParams(steps=33, reference_scale=7.5, flatten=0.25)
    changed = Settings(address="tcp://127.0.0.1:1234", replace_previous=True, params=params)
    save_settings(store, changed)
    assert store.values["replace_previous"] == "true" and store.values["steps"] == "33"
    assert (store.values["flatten"], store.values["color_match"], store.values["seed"]) == ("0.25", "auto", "auto")
    assert "previews" not in store.values  # only what the panel shows is saved
    assert load_settings(store) == changed
    store.values["steps"] = "lots"
    assert load_settings(store).params.steps == ColorizeParams().steps


def test_settings_saved_by_the_old_plugin_still_load() -> None:
    # The scenario: an artist upgrades; Krita's settings hold the old spellings: -1.0 for "auto"
    # finishing and a seed of 0.
    store = DictStore()
    store.values.update(color_match="-1.0", flatten="0.5", seed="0", mode="plain", steps="12")
    params = load_settings(store).params
    assert (params.color_match, params.flatten, params.seed, params.mode.value, params.steps) == (
        None, 0.5, 0, "plain", 12,
    )


def test_sketch_mask_defaults_to_the_selection_when_there_is_one() -> None:
    assert sketch_mask_choices(True, True) == [
        MaskSource.SELECTION, MaskSource.LAYER_MASK, MaskSource.AUTO, MaskSource.NONE
    ]  # fmt: skip
    assert sketch_mask_choices(False, True)[0] is MaskSource.LAYER_MASK
    assert sketch_mask_choices(False, False) == [MaskSource.AUTO, MaskSource.NONE]  # nothing selected: automatic


def test_reference_mask_defaults_to_alpha_when_transparent() -> None:
    assert reference_mask_choices(True, False) == [MaskSource.ALPHA, MaskSource.AUTO, MaskSource.NONE]
    assert reference_mask_choices(False, True) == [MaskSource.LAYER_MASK, MaskSource.AUTO, MaskSource.NONE]
    assert reference_mask_choices(False, False)[0] is MaskSource.AUTO  # a flattened reference: automatic
    # a backend that cannot compute a mask (protocol 1.5, or no mask model): never offered, never the default
    assert reference_mask_choices(False, False, can_auto=False) == [MaskSource.NONE]
    assert sketch_mask_choices(False, False, can_auto=False) == [MaskSource.NONE]
    assert keep_choice(MaskSource.NONE, [MaskSource.ALPHA, MaskSource.NONE]) is MaskSource.NONE
    assert keep_choice(MaskSource.SELECTION, [MaskSource.NONE]) is MaskSource.NONE


def test_group_names_number_on_from_the_highest() -> None:
    existing = ["Line art", "Colorized 2", "Colorized 10", "Colorized x", "My Colorized 99"]
    assert next_group_names(existing, 2) == ["Colorized 11", "Colorized 12"]
    assert next_group_names([], 1) == ["Colorized 1"]
    assert latest_group(existing) == "Colorized 10" and latest_group(["Paint"]) is None


def test_pixel_conversions() -> None:
    bgra = Pixels(bytes([1, 2, 3, 255, 4, 5, 6, 0]), 2, 1, Layout.BGRA8)
    assert swap_red_blue(bgra.data) == bytes([3, 2, 1, 255, 6, 5, 4, 0])
    assert alpha_channel(bgra) == Pixels(bytes([255, 0]), 2, 1, Layout.L8)
    assert has_transparency(bgra) and not is_blank(bgra)
    assert is_blank(Pixels(bytes(8), 2, 1, Layout.BGRA8))
    with pytest.raises(PluginError, match="needs 8 bytes"):
        Pixels(bytes(7), 2, 1, Layout.BGRA8)


def test_thumbnail_samples_every_nth_pixel() -> None:
    data = bytes(v for i in range(10 * 4) for v in (i, i, i, 255))  # 10x4, pixel value = index
    small = thumbnail_rgba(Pixels(data, 10, 4, Layout.RGBA8), 5)
    assert (small.width, small.height) == (5, 2)
    assert small.data[0::4] == bytes([0, 2, 4, 6, 8, 20, 22, 24, 26, 28])
