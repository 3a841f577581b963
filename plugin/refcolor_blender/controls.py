"""The panel's controls for the colorization parameters, from the protocol's one schema (plain
Python: ``ui`` turns each :class:`Control` into a Blender property).

A parameter that may be ``auto`` gets a value and an "Automatic" switch; Blender's integers are
32-bit, so a range beyond that (the seed's) is cut to what Blender can hold.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from refcolor_plugin.pixels import PluginError
from refcolor_plugin.settings import PANEL_PARAMS
from refcolor_protocol import ColorizeParams, ProtocolError
from refcolor_protocol.schema import params_from

INT_MAX = 2**31 - 1  # Blender's IntProperty holds a C int
AUTO_PREFIX = "auto_"


@dataclass(frozen=True)
class Control:
    name: str
    kind: str  # "enum", "bool", "int", "float"
    label: str
    help: str
    default: Any  # the value shown when the parameter is not automatic
    low: float | None = None
    high: float | None = None
    soft_high: float | None = None
    choices: tuple[str, ...] = ()
    auto: bool = False  # has an "Automatic" switch
    auto_default: bool = False


@functools.cache
def controls() -> tuple[Control, ...]:
    """The panel's controls, in the schema's order (the schema is fixed: built once)."""
    out = []
    for spec in PANEL_PARAMS:
        auto_default = spec.auto and spec.default is None
        if spec.choices:
            kind, default = "enum", spec.default.value if isinstance(spec.default, Enum) else spec.default
        elif spec.kind is bool:
            kind, default = "bool", bool(spec.default)
        elif spec.kind is int:
            kind, default = "int", int(spec.low or 0) if spec.default is None else spec.default
        else:
            mid = ((spec.low or 0.0) + (spec.high if spec.high is not None else 1.0)) / 2
            kind, default = "float", mid if spec.default is None else spec.default
        high = spec.high
        if kind == "int" and high is not None:
            high = min(high, INT_MAX)
        out.append(
            Control(
                spec.name,
                kind,
                spec.label,
                spec.help,
                default,
                spec.low,
                high,
                spec.slider_high,
                spec.choices,
                spec.auto,
                auto_default,
            )
        )
    return tuple(out)


def params_from_values(values: Mapping[str, Any]) -> ColorizeParams:
    """ColorizeParams from the panel's values (``auto_<name>`` True: that parameter is automatic).

    Raises:
        PluginError: a combination the protocol refuses, in its words.
    """
    chosen = {}
    for control in controls():
        automatic = control.auto and bool(values.get(AUTO_PREFIX + control.name, control.auto_default))
        chosen[control.name] = None if automatic else values.get(control.name, control.default)
    try:
        return params_from(chosen)
    except ProtocolError as exc:
        raise PluginError(f"these settings cannot be used: {exc}") from None
