"""The colorization parameters, described once: what every front end builds from.

:class:`~refcolor_protocol.messages.ColorizeParams` declares each parameter with :func:`param`:
its type and default (the dataclass field), its range, unit, label and one-line help, which
server limit caps it, and whether the paint-app panels show it. This module reads that back as
:data:`PARAMS`, one :class:`ParamSpec` per field in declaration order, and from it come

* PROTOCOL.md's ColorizeParams table (:func:`markdown_table`, checked by a test),
* the CLI flags of ``refcolor colorize`` and the limit flags of ``refcolor serve``,
* the plugins' controls, tooltips and saved settings (text via :meth:`ParamSpec.parse` and
  :meth:`ParamSpec.format`), clamped to the limits a server advertises (:meth:`ParamSpec.high_for`).

"Auto", the model's or the server's own choice, has one spelling: ``None`` in Python, ``null`` on
the wire, ``auto`` in text. A parameter may be auto exactly when its annotation allows ``None``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .fields import from_dict
from .messages import ColorizeParams, Limits, Mode

AUTO = "auto"


@dataclass(frozen=True)
class ParamSpec:
    """One colorization parameter, read from its :class:`ColorizeParams` field."""

    name: str
    kind: type[Any]  # int, float, bool, or a str Enum
    default: Any  # the wire default; None = auto
    low: float | None
    high: float | None  # the protocol's bound; a server may advertise a lower one (``limit``)
    auto: bool  # None ("auto") is allowed
    label: str  # the control's label in the panels
    help: str  # one line: the tooltip, the CLI help and PROTOCOL.md's "meaning"
    unit: str = ""
    limit: str = ""  # the Limits field that caps ``high`` on a given server, or ""
    panel: bool = False  # shown in the paint-app panels
    slider_high: float | None = None  # a slider's upper end when the protocol's range is wider than useful

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def choices(self) -> tuple[str, ...]:
        """An enum parameter's values (none for others)."""
        return tuple(m.value for m in self.kind) if issubclass(self.kind, Enum) else ()

    def high_for(self, limits: Limits | None) -> float | None:
        """The upper bound on a server that advertises ``limits`` (None: the protocol's)."""
        if not self.limit or limits is None:
            return self.high
        capped = getattr(limits, self.limit)
        return capped if self.high is None else min(self.high, capped)

    def parse(self, text: str) -> Any:
        """A value from text (a CLI argument, a saved setting); ``auto`` is None.

        Raises:
            ValueError: the text is not a value of this parameter, naming what it accepts.
        """
        text = text.strip()
        if text.lower() == AUTO:
            if self.auto:
                return None
            raise ValueError(f"{self.name} has no '{AUTO}'; use {self.accepts()}")
        try:
            if self.kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(text)
                value: Any = text.lower() in ("true", "1", "yes", "on")
            else:
                value = self.kind(text)  # int, float, or the enum of its values
        except ValueError:
            raise ValueError(f"{self.name}: {text!r} is not {self.accepts()}") from None
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"{self.name}: {text} is out of range; use {self.accepts()}")
        return value

    def format(self, value: Any) -> str:
        """The text :meth:`parse` reads back."""
        if value is None:
            return AUTO
        if isinstance(value, Enum):
            return str(value.value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return f"{value:g}" if isinstance(value, float) else str(value)

    def accepts(self) -> str:
        """What this parameter accepts, in words."""
        if self.choices:
            text = "one of " + ", ".join(self.choices)
        elif self.kind is bool:
            text = "true or false"
        else:
            kind = "an integer" if self.kind is int else "a number"
            text = f"{kind} from {_number(self.low)} to {_number(self.high)}"
        return f"{text} or '{AUTO}'" if self.auto else text


def _number(value: float | None) -> str:
    return "any" if value is None else f"{value:g}"


def _encode(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _spec(field: dataclasses.Field[Any], annotation: Any) -> ParamSpec:
    args = typing.get_args(annotation)
    auto = type(None) in args
    kind = next(a for a in args if a is not type(None)) if auto else annotation
    meta = field.metadata
    if "label" not in meta:
        raise TypeError(f"ColorizeParams.{field.name} is not declared with param()")  # a bug, not input
    return ParamSpec(
        name=field.name,
        kind=kind,
        default=field.default,
        low=meta.get("min"),
        high=meta.get("max"),
        auto=auto,
        label=meta["label"],
        help=meta["help"],
        unit=meta.get("unit", ""),
        limit=meta.get("limit", ""),
        panel=meta.get("panel", False),
        slider_high=meta.get("slider_high"),
    )


def _specs() -> tuple[ParamSpec, ...]:
    hints = typing.get_type_hints(ColorizeParams)
    return tuple(_spec(f, hints[f.name]) for f in dataclasses.fields(ColorizeParams))


PARAMS: tuple[ParamSpec, ...] = _specs()
BY_NAME: Mapping[str, ParamSpec] = {spec.name: spec for spec in PARAMS}


def parse_mode(mode: str | Mode) -> Mode:
    """``mode`` as a :class:`Mode` (its value, or the enum itself).

    Raises:
        ValueError: not a mode, naming the ones there are.
    """
    return mode if isinstance(mode, Mode) else BY_NAME["mode"].parse(mode)


def params_from(values: Mapping[str, Any]) -> ColorizeParams:
    """ColorizeParams from Python values (enums or their strings), checked as the wire checks them;
    a missing name takes its default.

    Raises:
        refcolor_protocol.ProtocolError: a value out of range or of the wrong type, naming it.
    """
    return from_dict(ColorizeParams, {name: _encode(value) for name, value in values.items()})


# --- PROTOCOL.md ---------------------------------------------------------------------------------


def _doc_type(spec: ParamSpec) -> str:
    base = "string" if spec.choices else {int: "int", float: "float", bool: "bool"}[spec.kind]
    return f"{base} or null" if spec.auto else base


def _doc_default(spec: ParamSpec) -> str:
    if spec.default is None:
        return "`null`"
    if isinstance(spec.default, Enum):
        return f"`{spec.default.value}`"
    if isinstance(spec.default, bool):
        return "true" if spec.default else "false"
    return repr(spec.default)


def _doc_number(value: float) -> str:
    return "2³²−1" if value == 2**32 - 1 else f"{value:g}"


def _doc_range(spec: ParamSpec) -> str:
    if spec.choices:
        return ", ".join(spec.choices)
    if spec.low is None and spec.high is None:
        return ""
    text = f"{_doc_number(spec.low or 0)} … {_doc_number(spec.high or 0)}"
    if spec.limit:
        text += f", and ≤ limits.{spec.limit}"
    return text


def markdown_table() -> str:
    """PROTOCOL.md's ColorizeParams table, made from :data:`PARAMS`."""
    rows = ["| field | type | default | range | meaning |", "| --- | --- | --- | --- | --- |"]
    for spec in PARAMS:
        meaning = spec.help + (f" ({spec.unit})" if spec.unit else "")
        rows.append(f"| {spec.name} | {_doc_type(spec)} | {_doc_default(spec)} | {_doc_range(spec)} | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
