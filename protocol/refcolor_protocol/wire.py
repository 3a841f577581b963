"""Messages to and from ZeroMQ multipart frames, signed with HMAC-SHA256.

Frames (see PROTOCOL.md, "Wire format")::

    [identity..., DELIMITER, signature, header, parent_header, content, buffer...]

The signature is the hex HMAC-SHA256, under the connection key, of every frame after
it, each preceded by its length as 8 big-endian bytes. An empty key means no signing:
the signature frame is then empty (allowed on loopback only; the server enforces that).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from typing import Any

from .errors import ProtocolError
from .fields import from_dict, to_dict
from .messages import MESSAGE_TYPES, Buffer, Header, Message
from .spec import DELIMITER, MAX_BUFFERS, MAX_JSON_FRAME_BYTES, PROTOCOL_VERSION, ErrorCode, major

_JSON_FRAMES = ("header", "parent header", "content")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _loads(frame: Buffer, what: str) -> dict[str, Any]:
    view = memoryview(frame)
    if view.nbytes > MAX_JSON_FRAME_BYTES:
        raise ProtocolError(
            ErrorCode.BAD_FRAMES, f"{what} frame is {view.nbytes} bytes; the limit is {MAX_JSON_FRAME_BYTES}"
        )
    try:
        value = json.loads(view.tobytes().decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"{what} is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _dumps(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("utf-8")


class Session:
    """Builds, signs, serializes and checks messages for one peer (client or server).

    Args:
        key: the HMAC key (bytes); empty disables signing.
        session: an id put in every header this side sends; random by default.
    """

    def __init__(self, key: bytes = b"", session: str | None = None) -> None:
        self.key = key
        self.session = session or uuid.uuid4().hex

    # --- signing ---------------------------------------------------------------------------------

    def sign(self, frames: Sequence[Buffer]) -> bytes:
        """The signature frame for the frames after it (b"" when signing is off)."""
        if not self.key:
            return b""
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for frame in frames:
            view = memoryview(frame)
            mac.update(view.nbytes.to_bytes(8, "big"))
            mac.update(view)
        return mac.hexdigest().encode("ascii")

    # --- building --------------------------------------------------------------------------------

    def msg(
        self,
        content: Any,
        parent: Header | None = None,
        buffers: Sequence[Buffer] = (),
        identities: Sequence[bytes] = (),
    ) -> Message:
        """A new message carrying ``content``, replying to ``parent`` if given."""
        header = Header.new(type(content).msg_type, self.session)
        return Message(header, content, parent, tuple(buffers), tuple(identities))

    def serialize(self, msg: Message) -> list[Buffer]:
        """The multipart frames for ``msg``, identities first; buffers are passed through uncopied."""
        signed: list[Buffer] = [
            _dumps(to_dict(msg.header)),
            _dumps(to_dict(msg.parent_header) if msg.parent_header is not None else {}),
            _dumps(to_dict(msg.content)),
            *msg.buffers,
        ]
        return [*msg.identities, DELIMITER, self.sign(signed), *signed]

    # --- parsing ---------------------------------------------------------------------------------

    def split_identities(self, frames: Sequence[Buffer]) -> tuple[tuple[bytes, ...], list[Buffer]]:
        """Routing identities and the frames after the delimiter.

        Raises:
            ProtocolError: ``bad_frames`` if there is no delimiter.
        """
        for index, frame in enumerate(frames):
            if memoryview(frame).nbytes == len(DELIMITER) and bytes(frame) == DELIMITER:
                return tuple(bytes(f) for f in frames[:index]), list(frames[index + 1 :])
        raise ProtocolError(ErrorCode.BAD_FRAMES, f"no delimiter frame {DELIMITER!r} among {len(frames)} frames")

    def peek_header(self, frames: Sequence[Buffer]) -> Header | None:
        """The header of a (possibly bad) message if it can be read, to address an error reply.

        Only used after the signature checked out (or with signing off).
        """
        try:
            _, rest = self.split_identities(frames)
            return from_dict(Header, _loads(rest[1], "header"), "header")
        except (ProtocolError, IndexError):
            return None

    def deserialize(self, frames: Sequence[Buffer]) -> Message:
        """Check and decode one received multipart message.

        Checks, in order: frame layout, signature, JSON, header and version, message type,
        content fields. Buffer sizes against their descriptors are the receiver's next step
        (:func:`refcolor_protocol.messages.check_buffers`), with its own pixel limit.

        Raises:
            ProtocolError: with the code of the first check that failed.
        """
        identities, rest = self.split_identities(frames)
        if len(rest) < 4:
            raise ProtocolError(
                ErrorCode.BAD_FRAMES,
                f"expected signature, header, parent header and content after the delimiter, got {len(rest)} frames",
            )
        if len(rest) - 4 > MAX_BUFFERS:
            raise ProtocolError(
                ErrorCode.BAD_FRAMES, f"{len(rest) - 4} buffer frames; at most {MAX_BUFFERS} are allowed"
            )
        signature, signed = rest[0], rest[1:]
        if self.key:
            expected = self.sign(signed)
            if not hmac.compare_digest(bytes(signature), expected):
                raise ProtocolError(ErrorCode.BAD_SIGNATURE, "the message signature does not match")
        elif memoryview(signature).nbytes:
            raise ProtocolError(ErrorCode.BAD_SIGNATURE, "the message is signed but this server runs without a key")
        header_dict = _loads(signed[0], "header")
        try:
            header = from_dict(Header, header_dict, "header")
        except ProtocolError as exc:
            raise ProtocolError(ErrorCode.BAD_HEADER, exc.message) from None
        try:
            version_major = major(header.version)
        except ValueError as exc:
            raise ProtocolError(ErrorCode.BAD_HEADER, f"header.version: {exc}") from None
        if version_major != major(PROTOCOL_VERSION):
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"message speaks protocol {header.version}; this side speaks {PROTOCOL_VERSION}",
            )
        cls = MESSAGE_TYPES.get(header.msg_type)
        if cls is None:
            raise ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, f"unknown message type {header.msg_type!r}")
        parent_dict = _loads(signed[1], "parent header")
        parent = None
        if parent_dict:
            try:
                parent = from_dict(Header, parent_dict, "parent_header")
            except ProtocolError as exc:
                raise ProtocolError(ErrorCode.BAD_HEADER, exc.message) from None
        content = from_dict(cls, _loads(signed[2], "content"), header.msg_type)
        return Message(header, content, parent, tuple(signed[3:]), identities)
