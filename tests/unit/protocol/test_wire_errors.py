"""What ``Session.deserialize`` refuses, with which code, and that the message names the frame or field."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

import pytest

from refcolor_protocol.errors import ProtocolError
from refcolor_protocol.messages import Cancel, ColorizeRequest, Header, ImageRef, Ping
from refcolor_protocol.spec import (
    DELIMITER,
    MAX_BUFFERS,
    MAX_JSON_FRAME_BYTES,
    PROTOCOL_VERSION,
    ErrorCode,
    Layout,
)
from refcolor_protocol.wire import Session

KEY = b"0123456789abcdef" * 4


def header(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "msg_id": "a" * 32,
        "msg_type": "ping",
        "session": "s",
        "date": "2024-05-01T12:00:00.000+00:00",
        "version": PROTOCOL_VERSION,
    }
    value.update(changes)
    return {k: v for k, v in value.items() if v is not ...}


def as_frame(value: bytes | dict[str, Any] | list[Any]) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def spec_signature(key: bytes, frames: Sequence[bytes]) -> bytes:
    """The signature exactly as PROTOCOL.md defines it, independent of the code under test."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for frame in frames:
        mac.update(len(frame).to_bytes(8, "big") + frame)
    return mac.hexdigest().encode("ascii")


def frames_of(
    head: bytes | dict[str, Any] | None = None,
    content: bytes | dict[str, Any] | list[Any] | None = None,
    parent: bytes | dict[str, Any] = b"{}",
    buffers: Sequence[bytes] = (),
    key: bytes = KEY,
) -> list[bytes]:
    """Frames of a message, properly signed with ``key`` (unsigned if empty)."""
    signed = [
        as_frame(header() if head is None else head),
        as_frame(parent),
        as_frame({} if content is None else content),
        *buffers,
    ]
    return [DELIMITER, spec_signature(key, signed) if key else b"", *signed]


def refused(frames: Sequence[Any], key: bytes = KEY) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        Session(key).deserialize(frames)
    return info.value


def test_valid_frames_are_accepted() -> None:
    msg = Session(KEY).deserialize([b"router-id", *frames_of(content={"nonce": "n"})])
    assert msg.content == Ping("n") and msg.identities == (b"router-id",) and msg.parent_header is None


def test_signature_is_as_specified() -> None:
    session = Session(KEY, scheme="hmac-sha256")  # spec_signature below is the legacy HMAC
    msg = session.msg(Ping("x"), buffers=[b"\x00\x01", b""])
    frames = [bytes(f) for f in session.serialize(msg)]
    assert frames[0] == DELIMITER
    assert frames[1] == spec_signature(KEY, frames[2:])
    assert Session(b"").serialize(msg)[1] == b""


# --- bad_frames ----------------------------------------------------------------------------------


def test_no_delimiter() -> None:
    frames = frames_of()
    error = refused([b"id", *frames[1:]])
    assert error.code is ErrorCode.BAD_FRAMES
    assert error.message == f"no delimiter frame {DELIMITER!r} among 5 frames"
    assert refused([]).code is ErrorCode.BAD_FRAMES
    # A frame that merely starts with the delimiter is not one.
    assert refused([DELIMITER + b"x", *frames[1:]]).code is ErrorCode.BAD_FRAMES


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_too_few_frames(count: int) -> None:
    error = refused(frames_of()[: 1 + count])
    assert error.code is ErrorCode.BAD_FRAMES
    assert error.message == (
        f"expected signature, header, parent header and content after the delimiter, got {count} frames"
    )


def test_too_many_buffers() -> None:
    error = refused(frames_of(buffers=[b"x"] * (MAX_BUFFERS + 1)))
    assert error.code is ErrorCode.BAD_FRAMES
    assert error.message == f"{MAX_BUFFERS + 1} buffer frames; at most {MAX_BUFFERS} are allowed"
    assert Session(KEY).deserialize(frames_of(buffers=[b"x"] * MAX_BUFFERS)).buffers == (b"x",) * MAX_BUFFERS


@pytest.mark.parametrize(("position", "name"), [(0, "header"), (1, "parent header"), (2, "content")])
def test_json_frame_over_limit(position: int, name: str) -> None:
    parts: list[bytes] = [as_frame(header()), b"{}", b"{}"]
    padding = MAX_JSON_FRAME_BYTES + 1 - len(parts[position])
    parts[position] = parts[position][:-1] + b" " * padding + b"}"
    assert len(parts[position]) == MAX_JSON_FRAME_BYTES + 1
    error = refused(frames_of(*[parts[0], parts[2], parts[1]]))
    assert error.code is ErrorCode.BAD_FRAMES
    assert (
        error.message
        == f"{name} frame is {MAX_JSON_FRAME_BYTES + 1} bytes; the limit is {MAX_JSON_FRAME_BYTES}"
    )


def test_json_frame_at_limit_is_accepted() -> None:
    content = b'{"nonce":"' + b"n" * (MAX_JSON_FRAME_BYTES - 12) + b'"}'
    assert len(content) == MAX_JSON_FRAME_BYTES
    assert Session(KEY).deserialize(frames_of(content=content)).content.nonce == "n" * (
        MAX_JSON_FRAME_BYTES - 12
    )


# --- bad_signature -------------------------------------------------------------------------------


def test_wrong_key() -> None:
    error = refused(frames_of(key=b"another key"))
    assert error.code is ErrorCode.BAD_SIGNATURE
    assert error.message == "the message signature does not match"
    assert "connection file" in error.hint


@pytest.mark.parametrize("frame", [2, 3, 4, 5, 6])
def test_tampered_frame(frame: int) -> None:
    """Every byte after the signature is covered: header, parent, content and each buffer."""
    frames = frames_of(content={"nonce": "n"}, buffers=[b"\x10\x20\x30", b"\x40"])
    tampered = bytearray(frames[frame])
    tampered[len(tampered) // 2] ^= 0x01
    frames[frame] = bytes(tampered)
    assert refused(frames).code is ErrorCode.BAD_SIGNATURE


def test_moved_bytes_between_frames() -> None:
    """Length prefixes keep a byte moved from one frame to the next from keeping the signature."""
    frames = frames_of(buffers=[b"ab", b"c"])
    forged = [*frames[:5], b"a", b"bc"]
    forged[1] = frames[1]
    assert refused(forged).code is ErrorCode.BAD_SIGNATURE


def test_dropped_or_added_buffer() -> None:
    frames = frames_of(buffers=[b"ab", b"c"])
    assert refused(frames[:-1]).code is ErrorCode.BAD_SIGNATURE
    assert refused([*frames, b""]).code is ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize("signature", [b"", b"0" * 64, b"zz", None])
def test_bad_or_missing_signature_to_a_keyed_session(signature: bytes | None) -> None:
    frames = frames_of()
    frames[1] = frames[1].upper() if signature is None else signature  # hex must be lowercase, as sent
    error = refused(frames)
    assert error.code is ErrorCode.BAD_SIGNATURE


def test_unsigned_message_to_a_keyed_session() -> None:
    assert refused(frames_of(key=b"")).code is ErrorCode.BAD_SIGNATURE


def test_signed_message_to_a_keyless_session() -> None:
    error = refused(frames_of(key=KEY), key=b"")
    assert error.code is ErrorCode.BAD_SIGNATURE
    assert "signed" in error.message and "without a key" in error.message
    assert Session(b"").deserialize(frames_of(key=b"")).content == Ping()


def test_signature_is_checked_before_parsing() -> None:
    """Garbage in a badly signed message is reported as a bad signature, never parsed."""
    frames = frames_of(head=b"\xff not json", key=b"other")
    assert refused(frames).code is ErrorCode.BAD_SIGNATURE
    big = frames_of(content=b"{" + b" " * MAX_JSON_FRAME_BYTES + b"}", key=b"other")
    assert refused(big).code is ErrorCode.BAD_SIGNATURE


# --- bad_json ------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["header", "parent header", "content"])
@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (b'{"a": "\xff"}', "is not valid UTF-8 JSON"),
        (b'{"a": ', "is not valid UTF-8 JSON"),
        (b"", "is not valid UTF-8 JSON"),
        (b'{"uptime_s": NaN}', "is not valid UTF-8 JSON"),
        (b'{"uptime_s": Infinity}', "is not valid UTF-8 JSON"),
        (b'{"uptime_s": -Infinity}', "is not valid UTF-8 JSON"),
        (b"[]", "must be a JSON object, got list"),
        (b'"text"', "must be a JSON object, got str"),
        (b"null", "must be a JSON object, got NoneType"),
        (b"42", "must be a JSON object, got int"),
    ],
)
def test_bad_json(where: str, frame: bytes, problem: str) -> None:
    parts = {"header": as_frame(header(msg_type="pong")), "parent header": b"{}", "content": b"{}"}
    parts[where] = frame
    error = refused(frames_of(parts["header"], parts["content"], parts["parent header"]))
    assert error.code is ErrorCode.BAD_JSON
    assert error.message.startswith(f"{where} {problem}")


@pytest.mark.parametrize("where", ["header", "parent header", "content"])
@pytest.mark.parametrize("wrap", [lambda deep: deep, lambda deep: b'{"nonce": ' + deep + b"}"])
def test_deep_nesting_does_not_crash(where: str, wrap: Any) -> None:
    deep = wrap(b"[" * 100_000 + b"]" * 100_000)
    parts = {"header": as_frame(header()), "parent header": b"{}", "content": b"{}"}
    parts[where] = deep
    error = refused(frames_of(parts["header"], parts["content"], parts["parent header"]))
    assert error.code is ErrorCode.BAD_JSON
    assert error.message.startswith(f"{where} is not valid UTF-8 JSON")


@pytest.mark.parametrize("number", [b"1e400", b"-1e999", b"9" * 400])
def test_json_numbers_beyond_float_are_invalid_fields(number: bytes) -> None:
    """json reads 1e400 as inf without complaint; the field check must still refuse it."""
    error = refused(frames_of(header(msg_type="pong"), b'{"uptime_s": ' + number + b"}"))
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.message.startswith("pong.uptime_s: expected a finite number")


def test_deep_nesting_in_an_ignored_field_is_refused_too() -> None:
    deep = b'{"x": ' + b"{" * 50_000 + b"}" * 50_000 + b"}"
    assert refused(frames_of(content=deep)).code is ErrorCode.BAD_JSON


# --- bad_header ----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["msg_id", "msg_type", "session", "date", "version"])
def test_header_missing_field(field: str) -> None:
    error = refused(frames_of(header(**{field: ...})))
    assert error.code is ErrorCode.BAD_HEADER
    assert error.message == f"header.{field}: required field is missing"


@pytest.mark.parametrize("value", [5, None, True, ["ping"], {"t": 1}])
@pytest.mark.parametrize("field", ["msg_id", "msg_type", "session", "date", "version"])
def test_header_field_of_wrong_type(field: str, value: object) -> None:
    error = refused(frames_of(header(**{field: value})))
    assert error.code is ErrorCode.BAD_HEADER
    assert error.message.startswith(f"header.{field}: expected a string, got {type(value).__name__}")


@pytest.mark.parametrize(
    "version", ["", "1", "one.zero", "1.", ".1", "1.0.0", "v1.0", "+1.0", " 1.0", "١.٠", "1.x"]
)
def test_malformed_version(version: str) -> None:
    error = refused(frames_of(header(version=version)))
    assert error.code is ErrorCode.BAD_HEADER
    assert error.message.startswith(f"header.version: malformed version {version!r}")


def test_bad_parent_header() -> None:
    error = refused(frames_of(parent={"msg_id": "p"}))
    assert error.code is ErrorCode.BAD_HEADER
    assert error.message == "parent_header.msg_type: required field is missing"
    error = refused(frames_of(parent=header(session=7)))
    assert error.code is ErrorCode.BAD_HEADER and error.message.startswith(
        "parent_header.session: expected a string"
    )


def test_parent_header_is_kept() -> None:
    msg = Session(KEY).deserialize(frames_of(parent=header(msg_type="cancel", version="1.4")))
    assert msg.parent_header == Header("a" * 32, "cancel", "s", "2024-05-01T12:00:00.000+00:00", "1.4")
    assert msg.parent_id == "a" * 32


# --- unsupported_version, unknown_message_type ---------------------------------------------------


@pytest.mark.parametrize("version", ["0.9", "2.0", "2.1", "10.0", "0.0"])
def test_unsupported_version(version: str) -> None:
    error = refused(frames_of(header(version=version)))
    assert error.code is ErrorCode.UNSUPPORTED_VERSION
    assert error.message == f"message speaks protocol {version}; this side speaks {PROTOCOL_VERSION}"


def test_version_is_checked_before_message_type_and_content() -> None:
    error = refused(frames_of(header(version="2.0", msg_type="frobnicate"), content=[]))
    assert error.code is ErrorCode.UNSUPPORTED_VERSION


@pytest.mark.parametrize("msg_type", ["frobnicate", "", "Ping", "hello "])
def test_unknown_message_type(msg_type: str) -> None:
    error = refused(frames_of(header(msg_type=msg_type)))
    assert error.code is ErrorCode.UNKNOWN_MESSAGE_TYPE
    assert error.message == f"unknown message type {msg_type!r}"


# --- content errors through the wire ------------------------------------------------------------


def test_content_errors_name_the_message_type_and_path() -> None:
    sketch = {"width": 2, "height": 2, "layout": "RGBA8", "nbytes": 16, "buffer": 0}
    content = {"sketch": sketch, "reference": sketch, "params": {"steps": True}}
    error = refused(frames_of(header(msg_type="colorize_request"), content))
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.message == "colorize_request.params.steps: expected an integer, got bool True"
    error = refused(frames_of(header(msg_type="cancel"), {}))
    assert (error.code, error.message) == (
        ErrorCode.INVALID_FIELD,
        "cancel.job_id: required field is missing",
    )


def test_wire_decodes_images_and_leaves_buffer_checks_to_the_receiver() -> None:
    sketch = {"width": 2, "height": 2, "layout": "RGBA8", "nbytes": 16, "buffer": 0}
    mask = {"width": 2, "height": 2, "layout": "L8", "nbytes": 4, "buffer": 5}
    content = {"sketch": sketch, "reference": sketch, "sketch_mask": mask}
    msg = Session(KEY).deserialize(frames_of(header(msg_type="colorize_request"), content, buffers=[b"x"]))
    assert isinstance(msg.content, ColorizeRequest)
    assert msg.content.sketch_mask == ImageRef(2, 2, Layout.L8, 4, 5)
    error = refused(
        frames_of(header(msg_type="colorize_request"), {**content, "sketch_mask": {**mask, "nbytes": 5}})
    )
    assert error.code is ErrorCode.BUFFER_MISMATCH
    assert error.message.startswith("colorize_request.sketch_mask: declares nbytes=5")


def test_peek_header_reads_a_bad_message_only_as_far_as_it_can() -> None:
    session = Session(KEY)
    frames = frames_of(header(msg_type="cancel"), {})
    peeked = session.peek_header([b"id", *frames])
    assert peeked is not None and peeked.msg_type == "cancel"
    assert session.peek_header(frames[:2]) is None
    assert session.peek_header([DELIMITER, b"", b"not json"]) is None
    assert Cancel.msg_type == "cancel"
