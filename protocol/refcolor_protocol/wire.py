"""Messages to and from ZeroMQ multipart frames, signed with keyed BLAKE3 (or legacy HMAC-SHA256).

Frames (see PROTOCOL.md, "Wire format")::

    [identity..., DELIMITER, signature, header, parent_header, content, buffer...]

The signature is a MAC, under the connection key, of every frame after it, each preceded by
its length as 8 big-endian bytes. Two schemes (``spec.SIGNATURE_SCHEMES``), told apart by the
signature frame itself:

- ``blake3``: ``b"blake3:"`` + hex keyed BLAKE3, keyed with a 32-byte key derived from the
  connection key (``spec.BLAKE3_KEY_CONTEXT``). Fast, and multi-threaded on big images.
- ``hmac-sha256``: hex HMAC-SHA256 with the connection key, no prefix. Deprecated (1.5
  to 1.7 verify it; 1.8 will not), and what this side signs with when the ``blake3`` package is
  missing (Krita's Python on a platform without a blake3 wheel).

An empty key means no signing: the signature frame is then empty (allowed on loopback only;
the server enforces that).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

from .errors import ProtocolError
from .fields import from_dict, to_dict
from .messages import MESSAGE_TYPES, Buffer, Header, Message
from .spec import (
    BLAKE3_KEY_CONTEXT,
    DELIMITER,
    LEGACY_SIGNATURE_SCHEME,
    MAX_BUFFERS,
    MAX_JSON_FRAME_BYTES,
    PROTOCOL_VERSION,
    SIGNATURE_SCHEME,
    SIGNATURE_SCHEMES,
    ErrorCode,
    major,
)

_blake3: ModuleType | None
try:
    import blake3 as _blake3
except ImportError:  # Krita's Python on a platform without a blake3 wheel: sign with HMAC-SHA256
    _blake3 = None

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


_BLAKE3_PREFIX = f"{SIGNATURE_SCHEME}:".encode("ascii")
_HEX_DIGEST_LENGTH = 64  # both schemes' MACs are 32 bytes
_MAX_SIGNATURE_BYTES = len(_BLAKE3_PREFIX) + _HEX_DIGEST_LENGTH
# Frames up to this size are hashed together with their length prefixes as one piece (one
# update call for a whole message without images); bigger ones are hashed in place, uncopied.
_JOIN_LIMIT = 1 << 16
# From this many signed bytes on, BLAKE3 hashes on every core (its global thread pool): below
# it, handing work to other threads costs more than it saves.
_THREADS_FROM = 1 << 20


def blake3_available() -> bool:
    """Whether the ``blake3`` package is importable, so the ``blake3`` scheme can be used."""
    return _blake3 is not None


def default_scheme() -> str:
    """The scheme a :class:`Session` signs with when given none: ``blake3`` if it can."""
    return SIGNATURE_SCHEME if blake3_available() else LEGACY_SIGNATURE_SCHEME


def usable_scheme(preferred: str) -> str:
    """What to sign with for a server that prefers ``preferred`` (its connection file's
    ``signature_scheme``): that scheme when this side can sign with it, else :func:`default_scheme`."""
    if preferred == LEGACY_SIGNATURE_SCHEME or (preferred == SIGNATURE_SCHEME and blake3_available()):
        return preferred
    return default_scheme()


def check_scheme(scheme: str) -> str:
    """``scheme`` if this side can sign and verify with it.

    Raises:
        ValueError: an unknown scheme, or ``blake3`` without the ``blake3`` package.
    """
    if scheme not in SIGNATURE_SCHEMES:
        raise ValueError(f"unknown signature scheme {scheme!r}; expected one of {', '.join(SIGNATURE_SCHEMES)}")
    if scheme == SIGNATURE_SCHEME and not blake3_available():
        raise ValueError(
            f"signature scheme {scheme!r} needs the blake3 package, which is not installed: "
            f"pip install blake3, or sign with {LEGACY_SIGNATURE_SCHEME!r}"
        )
    return scheme


def _length_prefixed(views: Sequence[memoryview]) -> Iterator[Buffer]:
    """The signed bytes ``L(f0) f0 L(f1) f1 ...`` in few pieces: small frames are joined with
    their length prefixes into one piece, big ones (images) are passed on uncopied."""
    joined = bytearray()
    for view in views:
        joined += view.nbytes.to_bytes(8, "big")
        if view.nbytes <= _JOIN_LIMIT:
            joined += view
        else:
            yield joined
            yield view
            joined = bytearray()
    if joined:
        yield joined


def _scheme_of(signature: memoryview) -> str:
    """Which scheme a signature frame claims, from its prefix and length (checked by a keyed side)."""
    if not signature.nbytes:
        raise ProtocolError(
            ErrorCode.BAD_SIGNATURE, "the signature frame is empty (an unsigned message), but this side has a key"
        )
    if signature.nbytes <= _MAX_SIGNATURE_BYTES:
        if signature.nbytes == _MAX_SIGNATURE_BYTES and signature[: len(_BLAKE3_PREFIX)] == _BLAKE3_PREFIX:
            return SIGNATURE_SCHEME
        if signature.nbytes == _HEX_DIGEST_LENGTH:
            return LEGACY_SIGNATURE_SCHEME
    raise ProtocolError(
        ErrorCode.BAD_SIGNATURE,
        f"the signature frame is {signature.nbytes} bytes; expected {_MAX_SIGNATURE_BYTES} "
        f"({_BLAKE3_PREFIX.decode()} and {_HEX_DIGEST_LENGTH} hex digits), or {_HEX_DIGEST_LENGTH} for the "
        f"legacy {LEGACY_SIGNATURE_SCHEME}",
    )


class Session:
    """Builds, signs, serializes and checks messages for one peer (client or server).

    Args:
        key: the connection key (bytes); empty disables signing.
        session: an id put in every header this side sends; random by default.
        scheme: the signature scheme this side signs with, one of ``spec.SIGNATURE_SCHEMES``;
            default ``blake3`` when the blake3 package is installed, else ``hmac-sha256``.
            Received messages are verified under whichever scheme they were signed with.

    Raises:
        ValueError: ``scheme`` is unknown, or is ``blake3`` without the blake3 package.
    """

    def __init__(self, key: bytes = b"", session: str | None = None, scheme: str | None = None) -> None:
        self.key = key
        self.session = session or uuid.uuid4().hex
        self.scheme = check_scheme(scheme) if scheme is not None else default_scheme()

    @property
    def key(self) -> bytes:
        return self._key

    @key.setter
    def key(self, key: bytes) -> None:
        # A new key (Client.reconnect) also needs a new derived BLAKE3 key; made on first use.
        self._key = key
        self._blake3_key: bytes | None = None

    # --- signing ---------------------------------------------------------------------------------

    def sign(self, frames: Sequence[Buffer], scheme: str | None = None) -> bytes:
        """The signature frame for the frames after it (b"" when signing is off).

        Args:
            frames: header, parent header, content and buffer frames, exactly as sent.
            scheme: sign with this scheme instead of the session's (a server answers a request
                in the scheme the request came in).

        Raises:
            ValueError: as :func:`check_scheme`.
        """
        if not self.key:
            return b""
        scheme = check_scheme(self.scheme if scheme is None else scheme)
        views = [memoryview(frame) for frame in frames]  # zmq.Frame too; nothing is copied
        if scheme == SIGNATURE_SCHEME:
            return _BLAKE3_PREFIX + self._blake3_mac(views)
        mac = hmac.new(self.key, digestmod=hashlib.sha256)
        for piece in _length_prefixed(views):
            mac.update(piece)
        return mac.hexdigest().encode("ascii")

    def _blake3_mac(self, views: Sequence[memoryview]) -> bytes:
        if _blake3 is None:  # check_scheme has refused the scheme then; this tells the type checker
            raise ValueError("the blake3 package is not installed")
        hasher_class = _blake3.blake3
        if self._blake3_key is None:
            self._blake3_key = hasher_class(self.key, derive_key_context=BLAKE3_KEY_CONTEXT).digest()
        total = sum(view.nbytes for view in views)
        threads = hasher_class.AUTO if total >= _THREADS_FROM else 1
        mac = hasher_class(key=self._blake3_key, max_threads=threads)
        for piece in _length_prefixed(views):
            mac.update(piece)
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

    def serialize(self, msg: Message, scheme: str | None = None) -> list[Buffer]:
        """The multipart frames for ``msg``, identities first; buffers are passed through uncopied.

        Signed with ``scheme`` if given (a reply: its request's :attr:`Message.scheme`), else
        with the session's.
        """
        signed: list[Buffer] = [
            _dumps(to_dict(msg.header)),
            _dumps(to_dict(msg.parent_header) if msg.parent_header is not None else {}),
            _dumps(to_dict(msg.content)),
            *msg.buffers,
        ]
        return [*msg.identities, DELIMITER, self.sign(signed, scheme), *signed]

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

    def claimed_scheme(self, frames: Sequence[Buffer]) -> str | None:
        """The scheme a (possibly bad) message's signature frame claims, if this side can sign
        with it: an error reply to it is signed so, for its sender to read. Unverified; None
        when the frames have no readable signature frame."""
        try:
            _, rest = self.split_identities(frames)
            scheme = _scheme_of(memoryview(rest[0]))
        except (ProtocolError, IndexError):
            return None
        return scheme if scheme != SIGNATURE_SCHEME or blake3_available() else None

    def deserialize(self, frames: Sequence[Buffer]) -> Message:
        """Check and decode one received multipart message.

        Checks, in order: frame layout, signature, JSON, header and version, message type,
        content fields. Buffer sizes against their descriptors are the receiver's next step
        (:func:`refcolor_protocol.messages.check_buffers`), with its own pixel limit. Either
        signature scheme is accepted; the returned message's ``scheme`` says which one it was.

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
        signature, signed = memoryview(rest[0]), rest[1:]
        scheme = ""
        if self.key:
            scheme = _scheme_of(signature)
            if scheme == SIGNATURE_SCHEME and not blake3_available():
                raise ProtocolError(
                    ErrorCode.BAD_SIGNATURE,
                    f"the message is signed with {scheme}, but the blake3 package is not installed on this side; "
                    f"install it (pip install blake3), or have the peer sign with {LEGACY_SIGNATURE_SCHEME}",
                )
            if not hmac.compare_digest(signature.tobytes(), self.sign(signed, scheme)):
                raise ProtocolError(ErrorCode.BAD_SIGNATURE, "the message signature does not match")
        elif signature.nbytes:
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
        return Message(header, content, parent, tuple(signed[3:]), identities, scheme)
