"""Property-based round trips for every message type, through dicts and through wire frames.

Strategies are derived from the dataclass annotations (and the ``min``/``max`` field metadata),
so a new message type or field is covered without touching this file. Classes with
cross-field invariants (a ``check`` method) need an entry in ``FIXUPS``; a test fails
if one is missing.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refcolor_protocol.messages as messages_module
from refcolor_protocol import ErrorCode, ProtocolError
from refcolor_protocol.fields import from_dict, to_dict
from refcolor_protocol.messages import (
    MESSAGE_TYPES,
    ColorizeParams,
    ColorizeRequest,
    Header,
    ImageRef,
    MaskName,
    Message,
)
from refcolor_protocol.spec import DELIMITER, MAX_BUFFERS, PROTOCOL_VERSION, Layout
from refcolor_protocol.wire import Session

ALL_TYPES = sorted(MESSAGE_TYPES)
EXAMPLES = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# --- making objects valid where fields depend on each other ---------------------------------------


def _fix_image(ref: ImageRef, layout: Layout | None = None, size: tuple[int, int] | None = None) -> ImageRef:
    width, height = size or (ref.width, ref.height)
    layout = layout or ref.layout
    return dataclasses.replace(
        ref, width=width, height=height, layout=layout, nbytes=width * height * layout.bytes_per_pixel
    )


def _fix_params(params: ColorizeParams) -> ColorizeParams:
    low, high = sorted((params.guidance_start, params.guidance_end))
    return dataclasses.replace(params, guidance_start=low, guidance_end=high)


def _fix_request(request: ColorizeRequest) -> ColorizeRequest:
    changes: dict[str, ImageRef] = {}
    for name in ("sketch", "reference", "background"):
        ref = getattr(request, name)
        if ref is not None and ref.layout is Layout.L8:
            changes[name] = _fix_image(ref, Layout.RGBA8)
    for mask, owner in (("sketch_mask", "sketch"), ("reference_mask", "reference")):
        ref, image = getattr(request, mask), getattr(request, owner)
        if ref is not None:
            changes[mask] = _fix_image(ref, Layout.L8, (image.width, image.height))
    given = {name for name in MaskName if getattr(request, f"{name.value}_mask") is not None}
    auto = tuple(name for name in dict.fromkeys(request.auto_masks) if name not in given)  # each once, not given
    # A previous frame: line art and fills together, the sketch's size, one variation.
    sketch = changes.get("sketch", request.sketch)
    previous: dict[str, Any] = {}
    if request.previous_sketch is not None and request.previous_fills is not None:
        for name, layout in (("previous_sketch", Layout.RGBA8), ("previous_fills", Layout.BGRA8),
                             ("previous_mask", Layout.L8)):
            ref = getattr(request, name)
            if ref is not None:
                previous[name] = _fix_image(ref, layout, (sketch.width, sketch.height))
        previous["params"] = dataclasses.replace(request.params, variations=1)
    else:
        previous = {"previous_sketch": None, "previous_fills": None, "previous_mask": None}
    return dataclasses.replace(request, **changes, auto_masks=auto, **previous)


FIXUPS: dict[type[Any], Callable[[Any], Any]] = {
    ImageRef: _fix_image,
    ColorizeParams: _fix_params,
    ColorizeRequest: _fix_request,
}

# --- strategies from annotations -----------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def strategy_for(tp: Any, field: dataclasses.Field[Any] | None = None) -> st.SearchStrategy[Any]:
    """Values of annotation ``tp``; ``field``'s ``min``/``max`` metadata bound numbers."""
    low = field.metadata.get("min") if field is not None else None
    high = field.metadata.get("max") if field is not None else None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        assert len(inner) == 1, f"unsupported union {tp!r}"
        return st.none() | strategy_for(inner[0], field)
    if origin is tuple:
        (inner_tp, _ellipsis) = typing.get_args(tp)
        return st.lists(strategy_for(inner_tp), max_size=4).map(tuple)
    if dataclasses.is_dataclass(tp):
        return dataclass_strategy(tp)  # type: ignore[arg-type]
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(
            min_value=int(low) if low is not None else -(2**63),
            max_value=int(high) if high is not None else 2**64,
        )
    if tp is float:
        return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    if tp is str:
        return st.text(max_size=16)
    raise AssertionError(f"no strategy for annotation {tp!r}; extend strategy_for")


@cache
def dataclass_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: strategy_for(hints[f.name], f) for f in dataclasses.fields(cls)}
    built = st.builds(cls, **kwargs)
    fixup = FIXUPS.get(cls)
    return built.map(fixup) if fixup is not None else built


def header_strategy(
    msg_type: st.SearchStrategy[str], version: st.SearchStrategy[str]
) -> st.SearchStrategy[Header]:
    return st.builds(
        Header,
        msg_id=st.text(max_size=32),
        msg_type=msg_type,
        session=st.text(max_size=32),
        date=st.text(max_size=32),
        version=version,
    )


compatible_versions = st.integers(0, 999).map(lambda minor: f"{PROTOCOL_VERSION.split('.')[0]}.{minor}")
identities = st.lists(st.binary(min_size=1, max_size=8).filter(lambda b: b != DELIMITER), max_size=2).map(
    tuple
)
buffers = st.lists(st.binary(max_size=64), max_size=5).map(tuple)
keys = st.just(b"") | st.binary(min_size=1, max_size=64)


@st.composite
def messages(draw: st.DrawFn, msg_type: str) -> Message:
    content = draw(dataclass_strategy(MESSAGE_TYPES[msg_type]))
    header = draw(header_strategy(st.just(msg_type), compatible_versions))
    parent = draw(st.none() | header_strategy(st.sampled_from(ALL_TYPES), st.text(max_size=8)))
    return Message(header, content, parent, draw(buffers), draw(identities))


def assert_plain_json(value: object, path: str = "content") -> None:
    """Only what ``json.loads`` itself gives back: no tuples, no enums."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, f"{path}: key {key!r}"
            assert_plain_json(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_plain_json(item, f"{path}[{i}]")
    else:
        assert value is None or type(value) in (bool, int, float, str), (
            f"{path}: {type(value).__name__} {value!r}"
        )


# --- tests ---------------------------------------------------------------------------------------


def test_every_message_type_is_covered() -> None:
    """The parametrized tests run over ALL_TYPES; it must hold every content class there is."""
    assert sorted(MESSAGE_TYPES) == ALL_TYPES
    with_msg_type = {
        obj
        for obj in vars(messages_module).values()
        if dataclasses.is_dataclass(obj) and isinstance(getattr(obj, "msg_type", None), str)
    }
    assert with_msg_type == set(MESSAGE_TYPES.values()), "a content class is missing from MESSAGE_TYPES"
    for msg_type, cls in MESSAGE_TYPES.items():
        assert cls.msg_type == msg_type
        dataclass_strategy(cls)  # fails here if some field's annotation has no strategy


def test_every_class_with_a_check_has_a_fixup() -> None:
    found: set[type[Any]] = set()

    def walk(tp: Any) -> None:
        for arg in typing.get_args(tp):
            walk(arg)
        if dataclasses.is_dataclass(tp) and tp not in found:
            found.add(tp)  # type: ignore[arg-type]
            for inner in typing.get_type_hints(tp).values():
                walk(inner)

    for cls in MESSAGE_TYPES.values():
        walk(cls)
    with_check = {cls for cls in found if hasattr(cls, "check")}
    assert with_check == set(FIXUPS), "a class with cross-field checks needs a FIXUPS entry here"


@pytest.mark.parametrize("msg_type", ALL_TYPES)
@EXAMPLES
@given(data=st.data())
def test_dict_round_trip(msg_type: str, data: st.DataObject) -> None:
    cls = MESSAGE_TYPES[msg_type]
    content = data.draw(dataclass_strategy(cls))
    as_dict = to_dict(content)
    assert_plain_json(as_dict)
    text = json.dumps(as_dict, allow_nan=False)
    assert from_dict(cls, as_dict) == content
    assert from_dict(cls, json.loads(text)) == content


@pytest.mark.parametrize("msg_type", ALL_TYPES)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_defaults_may_be_omitted(msg_type: str, data: st.DataObject) -> None:
    cls = MESSAGE_TYPES[msg_type]
    content = data.draw(dataclass_strategy(cls))
    required = {
        f.name: getattr(content, f.name)
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    as_dict = {name: value for name, value in to_dict(content).items() if name in required}
    assert from_dict(cls, as_dict) == cls(**required)


@pytest.mark.parametrize("msg_type", ALL_TYPES)
@EXAMPLES
@given(data=st.data(), key=keys)
def test_wire_round_trip(msg_type: str, data: st.DataObject, key: bytes) -> None:
    msg = data.draw(messages(msg_type))
    session = Session(key)
    frames = session.serialize(msg)
    assert frames[len(msg.identities)] == DELIMITER
    assert len(frames[len(msg.identities) + 1]) == (71 if key else 0)  # "blake3:" and 64 hex digits
    assert Session(key).deserialize(frames) == msg
    # What pyzmq hands a receiver (recv_multipart(copy=False)) decodes the same.
    received = Session(key).deserialize([zmq.Frame(bytes(f)) for f in frames])
    assert dataclasses.replace(received, buffers=tuple(bytes(b) for b in received.buffers)) == msg


@pytest.mark.parametrize("msg_type", ALL_TYPES)
@settings(EXAMPLES, max_examples=30)
@given(data=st.data(), key=keys)
def test_unknown_fields_are_ignored(msg_type: str, data: st.DataObject, key: bytes) -> None:
    msg = data.draw(messages(msg_type))
    extra_names = st.text(min_size=1, max_size=10).map(lambda s: "x-" + s)

    def widen(value: Any) -> Any:
        if isinstance(value, dict):
            widened = {k: widen(v) for k, v in value.items()}
            for name, extra in data.draw(st.dictionaries(extra_names, json_values, max_size=3)).items():
                widened.setdefault(name, extra)
            return widened
        if isinstance(value, list):
            return [widen(v) for v in value]
        return value

    session = Session(key)
    parent = widen(to_dict(msg.parent_header)) if msg.parent_header is not None else {}
    jsons = [widen(to_dict(msg.header)), parent, widen(to_dict(msg.content))]
    signed = [json.dumps(j).encode() for j in jsons] + list(msg.buffers)
    frames = [*msg.identities, DELIMITER, session.sign(signed), *signed]
    assert session.deserialize(frames) == msg


@EXAMPLES
@given(
    major=st.integers(0, 10**6).filter(lambda m: m != int(PROTOCOL_VERSION.split(".")[0])),
    minor=st.integers(0, 10**6),
    key=keys,
)
def test_other_major_version_is_rejected(major: int, minor: int, key: bytes) -> None:
    session = Session(key)
    msg = session.msg(MESSAGE_TYPES["ping"]())
    msg = dataclasses.replace(msg, header=dataclasses.replace(msg.header, version=f"{major}.{minor}"))
    with pytest.raises(ProtocolError) as info:
        session.deserialize(session.serialize(msg))
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert f"{major}.{minor}" in info.value.message and PROTOCOL_VERSION in info.value.message


@EXAMPLES
@given(minor=st.integers(0, 10**6), key=keys)
def test_other_minor_version_is_accepted(minor: int, key: bytes) -> None:
    session = Session(key)
    msg = session.msg(MESSAGE_TYPES["ping"]())
    version = f"{PROTOCOL_VERSION.split('.')[0]}.{minor}"
    msg = dataclasses.replace(msg, header=dataclasses.replace(msg.header, version=version))
    assert session.deserialize(session.serialize(msg)).header.version == version


def test_max_buffers_round_trip() -> None:
    session = Session(b"k")
    msg = session.msg(MESSAGE_TYPES["ping"](), buffers=[bytes([i]) * i for i in range(MAX_BUFFERS)])
    assert session.deserialize(session.serialize(msg)) == msg
