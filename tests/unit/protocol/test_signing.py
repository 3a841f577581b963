"""Message signatures: the blake3 scheme, the legacy hmac-sha256 one, and a side without blake3.

Expected signatures are computed here from PROTOCOL.md's definition with the blake3 library and
hmac directly, never with ``Session``, and pinned by known answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import subprocess
import sys
from collections.abc import Sequence

import blake3
import pytest
import zmq

import refcolor_protocol.wire as wire
from refcolor_protocol.errors import ProtocolError
from refcolor_protocol.messages import Buffer, Header, Message, Ping, Pong
from refcolor_protocol.spec import (
    DELIMITER,
    LEGACY_SIGNATURE_SCHEME,
    PROTOCOL_VERSION,
    SIGNATURE_SCHEME,
    SIGNATURE_SCHEMES,
    ErrorCode,
)
from refcolor_protocol.wire import Session

KEY = b"0123456789abcdef" * 4  # what connection files hold: the ASCII of 64 hex digits
CONTEXT = "refcolor 2026-12 message signature v1"  # PROTOCOL.md, "Wire format"
BIG = 3 << 20  # over the size from which BLAKE3 hashes on every core


def signed_bytes(frames: Sequence[bytes]) -> bytes:
    return b"".join(len(frame).to_bytes(8, "big") + frame for frame in frames)


def spec_blake3(key: bytes, frames: Sequence[bytes]) -> bytes:
    derived = blake3.blake3(key, derive_key_context=CONTEXT).digest()
    return b"blake3:" + blake3.blake3(signed_bytes(frames), key=derived).hexdigest().encode("ascii")


def spec_hmac(key: bytes, frames: Sequence[bytes]) -> bytes:
    return hmac.new(key, signed_bytes(frames), hashlib.sha256).hexdigest().encode("ascii")


SPEC_SIGNATURE = {SIGNATURE_SCHEME: spec_blake3, LEGACY_SIGNATURE_SCHEME: spec_hmac}


def ping(buffers: Sequence[Buffer] = (b"\x00\x01", b"")) -> Message:
    header = Header("a" * 32, "ping", "s", "2024-05-01T12:00:00.000+00:00", PROTOCOL_VERSION)
    return Message(header, Ping("n"), None, tuple(buffers))


def frames_of(msg: Message, scheme: str, key: bytes = KEY) -> list[bytes]:
    return [bytes(frame) for frame in Session(key, scheme=scheme).serialize(msg)]


def refused(frames: Sequence[Buffer], key: bytes = KEY) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        Session(key).deserialize(frames)
    assert info.value.code is ErrorCode.BAD_SIGNATURE
    return info.value


def test_constants() -> None:
    assert SIGNATURE_SCHEMES == (SIGNATURE_SCHEME, LEGACY_SIGNATURE_SCHEME) == ("blake3", "hmac-sha256")
    assert wire.blake3_available() and Session(KEY).scheme == SIGNATURE_SCHEME


# --- round trips -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SIGNATURE_SCHEMES)
@pytest.mark.parametrize("size", [0, 100, BIG])
def test_round_trip(scheme: str, size: int) -> None:
    msg = ping([(bytes(range(256)) * (size // 256 + 1))[:size]] * 2)
    frames = frames_of(msg, scheme)
    assert frames[1] == SPEC_SIGNATURE[scheme](KEY, frames[2:])
    received = Session(KEY).deserialize(frames)  # a receiver of either preferred scheme takes both
    assert received == msg and received.scheme == scheme
    assert Session(KEY, scheme=LEGACY_SIGNATURE_SCHEME).deserialize(frames).scheme == scheme
    # What pyzmq hands a receiver (recv_multipart(copy=False)) checks out the same.
    assert Session(KEY).deserialize([zmq.Frame(frame) for frame in frames]).scheme == scheme


@pytest.mark.parametrize("scheme", SIGNATURE_SCHEMES)
def test_signature_frame_format(scheme: str) -> None:
    signature = frames_of(ping(), scheme)[1]
    digits = signature.removeprefix(b"blake3:") if scheme == SIGNATURE_SCHEME else signature
    assert len(signature) == (71 if scheme == SIGNATURE_SCHEME else 64)
    assert len(digits) == 64 and digits == digits.lower() and bytes.fromhex(digits.decode())


def test_serialize_scheme_overrides_the_session() -> None:
    session = Session(KEY)
    frames = session.serialize(ping(), scheme=LEGACY_SIGNATURE_SCHEME)
    assert bytes(frames[1]) == spec_hmac(KEY, [bytes(f) for f in frames[2:]])
    assert session.sign(frames[2:], LEGACY_SIGNATURE_SCHEME) == bytes(frames[1])
    assert session.sign(frames[2:]) == spec_blake3(KEY, [bytes(f) for f in frames[2:]])


@pytest.mark.parametrize("scheme", SIGNATURE_SCHEMES)
@pytest.mark.parametrize("size", [4096, BIG])
def test_shaped_buffers_sign_as_their_bytes(scheme: str, size: int) -> None:
    flat = bytes(range(256)) * (size // 256)
    shaped = memoryview(bytearray(flat)).cast("B", (size // 16, 4, 4))  # like a numpy image's
    assert frames_of(ping([shaped]), scheme)[1] == frames_of(ping([flat]), scheme)[1]


def test_unsigned_is_unchanged() -> None:
    frames = Session(b"").serialize(ping())
    assert frames[1] == b""
    assert Session(b"").deserialize(frames).scheme == ""
    error = refused(frames_of(ping(), SIGNATURE_SCHEME), key=b"")
    assert "without a key" in error.message
    assert "unsigned" in refused(frames).message  # an unsigned message to a keyed side


def test_a_new_key_is_used_at_once() -> None:
    session = Session(KEY)
    session.sign([b"warm the derived key"])
    session.key = b"another key"
    frames = session.serialize(ping())
    assert bytes(frames[1]) == spec_blake3(b"another key", [bytes(f) for f in frames[2:]])
    refused(frames)


# --- known answers -----------------------------------------------------------------------------------

KNOWN_FRAMES = [b'{"msg_type":"ping"}', b"{}", b'{"nonce":"n"}', b"\x00\x01\x02", b""]
KNOWN_BLAKE3 = b"blake3:9dcfd34b70321b1ea6689b676be58faceeaf991b8c9bcf70d7940ff344ee4f50"
KNOWN_HMAC = b"82f9f0f1fb84504159868f51d4edef79c8af034848ac9d5e5134e5c07cbf680c"


def test_known_answers() -> None:
    # The pinned values are the spec's definition computed with blake3 and hmac directly.
    assert spec_blake3(KEY, KNOWN_FRAMES) == KNOWN_BLAKE3
    assert spec_hmac(KEY, KNOWN_FRAMES) == KNOWN_HMAC
    assert Session(KEY).sign(KNOWN_FRAMES) == KNOWN_BLAKE3
    assert Session(KEY, scheme=LEGACY_SIGNATURE_SCHEME).sign(KNOWN_FRAMES) == KNOWN_HMAC


def test_known_answer_multithreaded() -> None:
    frames = [b"{}", b"{}", b"{}", bytes(range(251)) * (BIG // 251), bytes(BIG + 5)]
    assert Session(KEY).sign(frames) == spec_blake3(KEY, frames)


# --- legacy ----------------------------------------------------------------------------------------


def test_legacy_hmac_messages_still_verify() -> None:
    msg = ping()
    signed = frames_of(msg, SIGNATURE_SCHEME)[2:]  # the same JSON frames, signed as a 1.4 peer does
    received = Session(KEY).deserialize([DELIMITER, spec_hmac(KEY, signed), *signed])
    assert received == msg and received.scheme == LEGACY_SIGNATURE_SCHEME


# --- refused -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SIGNATURE_SCHEMES)
@pytest.mark.parametrize("index", range(2, 7))  # header, parent, content, buffer 0, buffer 1
def test_tampered_frame_is_refused(scheme: str, index: int) -> None:
    frames = frames_of(ping((b"\x00\x01" * 10, bytes(BIG))), scheme)
    tampered = bytearray(frames[index] or b"x")
    tampered[len(tampered) // 2] ^= 0x01
    frames[index] = bytes(tampered)
    assert "does not match" in refused(frames).message


@pytest.mark.parametrize("scheme", SIGNATURE_SCHEMES)
def test_moved_dropped_or_added_bytes_are_refused(scheme: str) -> None:
    frames = frames_of(ping((b"abcd", b"efgh")), scheme)
    moved = [*frames[:5], b"abc", b"defgh"]  # the same bytes after the signature, split elsewhere
    assert b"".join(moved[2:]) == b"".join(frames[2:])
    refused(moved)
    refused(frames[:-1])
    refused([*frames, b""])


@pytest.mark.parametrize("scheme", SIGNATURE_SCHEMES)
def test_tampered_signature_is_refused(scheme: str) -> None:
    frames = frames_of(ping(), scheme)
    signature = frames[1]
    flipped = signature[:-1] + (b"0" if signature[-1:] != b"0" else b"1")
    refused([DELIMITER, flipped, *frames[2:]])
    refused([DELIMITER, signature.upper(), *frames[2:]])


def test_scheme_cannot_be_swapped() -> None:
    frames = frames_of(ping(), SIGNATURE_SCHEME)
    legacy = spec_hmac(KEY, frames[2:])
    refused([DELIMITER, b"blake3:" + legacy, *frames[2:]])  # an HMAC relabelled as blake3
    refused([DELIMITER, frames[1].removeprefix(b"blake3:"), *frames[2:]])  # a blake3 MAC relabelled


@pytest.mark.parametrize("signature", [b"x", b"0" * 63, b"0" * 65, b"blake4:" + b"0" * 64, b"blake3:" + b"0" * 65])
def test_malformed_signature_frame_is_refused(signature: bytes) -> None:
    error = refused([DELIMITER, signature, *frames_of(ping(), SIGNATURE_SCHEME)[2:]])
    assert f"{len(signature)} bytes" in error.message


def test_huge_signature_frame_is_refused_uncopied() -> None:
    frames = frames_of(ping(), SIGNATURE_SCHEME)
    assert "expected 71" in refused([DELIMITER, zmq.Frame(bytes(BIG)), *frames[2:]]).message


@pytest.mark.parametrize("scheme", SIGNATURE_SCHEMES)
def test_wrong_key_is_refused(scheme: str) -> None:
    frames = frames_of(ping(), scheme)
    refused(frames, key=b"another key")
    refused(frames_of(ping(), scheme, key=b"another key"))


def test_unknown_scheme_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown signature scheme 'hmac-md5'"):
        Session(KEY, scheme="hmac-md5")
    with pytest.raises(ValueError, match="unknown signature scheme"):
        Session(KEY).serialize(ping(), scheme="sha1")


# --- a side without the blake3 package ---------------------------------------------------------------


@pytest.fixture
def no_blake3(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if ``import blake3`` had failed in wire.py (Krita's Python without a blake3 wheel)."""
    monkeypatch.setattr(wire, "_blake3", None)


def test_without_blake3_hmac_is_the_default(no_blake3: None) -> None:
    assert not wire.blake3_available() and wire.default_scheme() == LEGACY_SIGNATURE_SCHEME
    session = Session(KEY)
    assert session.scheme == LEGACY_SIGNATURE_SCHEME
    frames = [bytes(f) for f in session.serialize(ping())]
    assert frames[1] == spec_hmac(KEY, frames[2:])
    assert session.deserialize(frames).scheme == LEGACY_SIGNATURE_SCHEME
    with pytest.raises(ValueError, match="needs the blake3 package"):
        Session(KEY, scheme=SIGNATURE_SCHEME)


def test_without_blake3_a_blake3_message_is_refused_clearly(no_blake3: None) -> None:
    frames = [DELIMITER, spec_blake3(KEY, KNOWN_FRAMES[:3]), *KNOWN_FRAMES[:3]]
    assert "blake3 package is not installed" in refused(frames).message


def test_client_without_blake3_talks_to_a_blake3_server(monkeypatch: pytest.MonkeyPatch) -> None:
    server = Session(KEY)
    assert server.scheme == SIGNATURE_SCHEME
    monkeypatch.setattr(wire, "_blake3", None)
    client = Session(KEY)
    request = client.msg(Ping("hello"))
    frames = client.serialize(request)
    monkeypatch.undo()  # the server has blake3
    received = server.deserialize(frames)
    assert received == request and received.scheme == LEGACY_SIGNATURE_SCHEME
    answer = server.serialize(server.msg(Pong("hello"), received.header), received.scheme)
    monkeypatch.setattr(wire, "_blake3", None)
    reply = client.deserialize(answer)
    assert reply.content == Pong("hello") and reply.parent_id == request.header.msg_id
    assert reply.scheme == LEGACY_SIGNATURE_SCHEME


def test_package_imports_and_signs_without_blake3() -> None:
    # The real import failure, in a fresh interpreter: sys.modules["blake3"] = None makes it raise.
    code = (
        "import sys; sys.modules['blake3'] = None\n"
        "from refcolor_protocol import Ping, Session\n"
        "s = Session(b'k')\n"
        "f = s.serialize(s.msg(Ping('x')))\n"
        "print(s.scheme, len(f[1]), s.deserialize(f).scheme)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [LEGACY_SIGNATURE_SCHEME, "64", LEGACY_SIGNATURE_SCHEME]


def test_usable_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wire.usable_scheme(SIGNATURE_SCHEME) == SIGNATURE_SCHEME
    assert wire.usable_scheme(LEGACY_SIGNATURE_SCHEME) == LEGACY_SIGNATURE_SCHEME  # a 1.4 server's file
    assert wire.usable_scheme("blake9") == SIGNATURE_SCHEME
    monkeypatch.setattr(wire, "_blake3", None)
    assert wire.usable_scheme(SIGNATURE_SCHEME) == LEGACY_SIGNATURE_SCHEME


def test_claimed_scheme_of_a_refused_message(monkeypatch: pytest.MonkeyPatch) -> None:
    session = Session(KEY)
    for scheme in SIGNATURE_SCHEMES:
        frames = frames_of(ping(), scheme, key=b"another key")  # refused, yet its sender can read the error
        assert session.claimed_scheme([b"id", *frames]) == scheme
    assert session.claimed_scheme([DELIMITER, b"x" * 70, b"{}"]) is None
    assert session.claimed_scheme([b"no delimiter"]) is None
    assert session.claimed_scheme([DELIMITER]) is None
    monkeypatch.setattr(wire, "_blake3", None)
    assert session.claimed_scheme(frames_of(ping(), LEGACY_SIGNATURE_SCHEME)) == LEGACY_SIGNATURE_SCHEME
    assert session.claimed_scheme([DELIMITER, b"blake3:" + b"0" * 64, b"{}"]) is None


def test_scheme_is_not_part_of_equality() -> None:
    msg = ping()
    assert dataclasses.replace(msg, scheme=SIGNATURE_SCHEME) == msg
