"""Dataclass <-> JSON-dict conversion with type and range checks.

Every message content is a frozen dataclass; :func:`from_dict` checks each field
against its annotation (and ``metadata`` ``min``/``max``) and raises a
:class:`ProtocolError` naming the field path, the value received and what was
expected. Unknown keys are ignored, so newer peers can add fields.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from enum import Enum
from typing import Any, TypeVar

from .errors import ProtocolError
from .spec import ErrorCode, Layout

T = TypeVar("T")


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """``cls``'s resolved annotations, computed once per class."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _invalid(path: str, value: object, expected: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_FIELD, f"{path}: expected {expected}, got {_describe(value)}")


def _decode(tp: Any, value: object, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _invalid(path, value, "a value")
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, value, path)
    if origin is tuple:
        (inner, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list):
            raise _invalid(path, value, "a list")
        return tuple(_decode(inner, item, f"{path}[{i}]") for i, item in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _invalid(path, value, "an object")
        return from_dict(tp, value, path)
    if isinstance(tp, type) and issubclass(tp, Enum):
        if isinstance(value, str):
            try:
                return tp(value)
            except ValueError:
                pass
        choices = ", ".join(repr(m.value) for m in tp)
        if tp is Layout:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_LAYOUT,
                f"{path}: unsupported pixel layout {_describe(value)}; use {choices}",
            )
        raise _invalid(path, value, f"one of {choices}")
    if tp is bool:
        if not isinstance(value, bool):
            raise _invalid(path, value, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(path, value, "an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(path, value, "a number")
        # json reads 1e400 as inf and a 400-digit int does not fit a float: refuse both.
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise _invalid(path, value, "a finite number")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise _invalid(path, value, "a string")
        return value
    raise TypeError(f"{path}: unsupported annotation {tp!r}")  # a bug in a message class, not bad input


def _check_range(field: dataclasses.Field[Any], value: object, path: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    low = field.metadata.get("min")
    high = field.metadata.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"{path}: {value!r} is out of range; expected {low} <= value <= {high}"
        )


def from_dict(cls: type[T], data: dict[str, Any], path: str = "") -> T:
    """Build ``cls`` from a JSON object, checking types and ranges; unknown keys are ignored.

    Raises:
        ProtocolError: ``invalid_field`` (or ``unsupported_layout``) naming the field path.
    """
    if not isinstance(data, dict):
        raise _invalid(path or cls.__name__, data, "an object")
    klass: type[Any] = cls
    hints = _hints(klass)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(klass):
        field_path = f"{path}.{field.name}" if path else field.name
        if field.name not in data:
            no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if no_default:
                raise ProtocolError(ErrorCode.INVALID_FIELD, f"{field_path}: required field is missing")
            continue
        value = _decode(hints[field.name], data[field.name], field_path)
        _check_range(field, value, field_path)
        kwargs[field.name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(path or cls.__name__)
    return obj


def _encode(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """The JSON object for a message dataclass (enums as their values, tuples as lists)."""
    return {f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def bounds(low: float | None = None, high: float | None = None) -> dict[str, float | None]:
    """A field's ``metadata``: its inclusive range, which :func:`from_dict` checks
    (``field(metadata=bounds(1, 64))``: a required field, as type checkers see it too)."""
    return {"min": low, "max": high}


def param(
    default: Any,
    *,
    label: str,
    help: str,
    low: float | None = None,
    high: float | None = None,
    unit: str = "",
    limit: str = "",
    panel: bool = False,
    slider_high: float | None = None,
) -> Any:
    """A colorization parameter's field: its default, inclusive range (checked by :func:`from_dict`)
    and what front ends build from it (:mod:`refcolor_protocol.schema` reads it back).

    ``label``: the control's name in the panels. ``help``: one line, for tooltips, CLI help and
    PROTOCOL.md. ``limit``: the ``Limits`` field that caps ``high`` on a given server. ``panel``: shown
    in the paint-app panels. ``slider_high``: a slider's upper end where the range is wider than useful.
    """
    metadata = {"min": low, "max": high, "label": label, "help": help, "unit": unit, "limit": limit}
    metadata.update(panel=panel, slider_high=slider_high)
    return dataclasses.field(default=default, metadata=metadata)
