"""Constants of the wire protocol: version, delimiter, pixel layouts, error codes, limits.

``PROTOCOL.md`` beside this package is the authority; ``tests/unit/protocol/test_spec_doc.py``
checks that these values and the message table match it.
"""

from __future__ import annotations

import re
from enum import Enum

PROTOCOL_VERSION = "1.7"
"""major.minor: a peer rejects messages of another major version, accepts any minor."""

DELIMITER = b"<REFCOLOR|MSG>"
"""Separates the routing identities from the signed part of a message."""

SIGNATURE_SCHEME = "blake3"
"""The preferred signature scheme: keyed BLAKE3, written in connection files."""

LEGACY_SIGNATURE_SCHEME = "hmac-sha256"
"""The signature scheme of protocol 1.4 and before: still verified by 1.5 to 1.7, to be removed in 1.8
(the removal was planned for 1.7 and moved: 1.7 adds frames of a shot and nothing else).
Also what a side without the blake3 package signs with."""

SIGNATURE_SCHEMES = (SIGNATURE_SCHEME, LEGACY_SIGNATURE_SCHEME)

BLAKE3_KEY_CONTEXT = "refcolor 2026-12 message signature v1"
"""BLAKE3's key derivation context: the blake3 scheme's 32-byte key is
BLAKE3-derive_key(BLAKE3_KEY_CONTEXT, connection key)."""

MAX_JSON_FRAME_BYTES = 1 << 20
"""Header, parent header and content are small; anything bigger is refused unparsed."""

MAX_BUFFERS = 64
"""Buffer frames one message may carry (ImageRef.buffer indexes them)."""

MAX_ASPECT = 16
"""A sketch's longer side may be at most this many times its shorter side: the model's working
image keeps the aspect ratio with a shortest side of 64, so a thinner strip would make it many
times larger than the resolution asks for."""


class Layout(str, Enum):
    """How the pixels of an image buffer are laid out: rows top to bottom, tightly packed."""

    RGBA8 = "RGBA8"
    BGRA8 = "BGRA8"  # what Krita's pixelData() gives for 8-bit RGBA documents
    L8 = "L8"  # one byte a pixel: masks (255 = foreground)

    @property
    def bytes_per_pixel(self) -> int:
        return 1 if self is Layout.L8 else 4


class ErrorCode(str, Enum):
    """Stable error codes; clients switch on these, never on the message text."""

    BAD_FRAMES = "bad_frames"
    BAD_SIGNATURE = "bad_signature"
    BAD_JSON = "bad_json"
    BAD_HEADER = "bad_header"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    INVALID_FIELD = "invalid_field"
    BUFFER_MISMATCH = "buffer_mismatch"
    IMAGE_TOO_LARGE = "image_too_large"
    BAD_ASPECT_RATIO = "bad_aspect_ratio"
    SIZE_MISMATCH = "size_mismatch"
    UNSUPPORTED_LAYOUT = "unsupported_layout"
    QUEUE_FULL = "queue_full"
    UNKNOWN_MODEL = "unknown_model"
    CANCELLED = "cancelled"
    JOB_FAILED = "job_failed"
    JOB_TIMED_OUT = "job_timed_out"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL_ERROR = "internal_error"
    # Made by the client itself, never sent by a server:
    CONNECTION_LOST = "connection_lost"
    TIMEOUT = "timeout"


DEFAULT_HINTS: dict[ErrorCode, str] = {
    ErrorCode.BAD_FRAMES: "send [delimiter, signature, header, parent, content, buffers...] as one multipart message",
    ErrorCode.BAD_SIGNATURE: "use the key from the server's connection file (refcolor ping shows which file)",
    ErrorCode.BAD_JSON: "header, parent header and content must each be a UTF-8 JSON object",
    ErrorCode.BAD_HEADER: "the header needs string fields msg_id, msg_type, session, date and version",
    ErrorCode.UNSUPPORTED_VERSION: "update the plugin or the backend so both speak the same major protocol version",
    ErrorCode.UNKNOWN_MESSAGE_TYPE: "see PROTOCOL.md for the message types this server understands",
    ErrorCode.INVALID_FIELD: "fix the named field; PROTOCOL.md lists every field with its type and range",
    ErrorCode.BUFFER_MISMATCH: "each image's buffer must hold exactly width * height * bytes-per-pixel bytes",
    ErrorCode.IMAGE_TOO_LARGE: "scale the image down or start the server with a larger --max-pixels",
    ErrorCode.BAD_ASPECT_RATIO: "crop the canvas or split it into panels, each at most 16 times longer than wide",
    ErrorCode.SIZE_MISMATCH: "a mask must have the same width and height as the image it belongs to",
    ErrorCode.UNSUPPORTED_LAYOUT: "send images as RGBA8 or BGRA8 and masks as L8",
    ErrorCode.QUEUE_FULL: "wait for a running job to finish, or cancel one, then send again",
    ErrorCode.UNKNOWN_MODEL: "pick one of the models listed in the server's capabilities",
    ErrorCode.CANCELLED: "the job was cancelled; send it again to run it",
    ErrorCode.JOB_FAILED: "see the server's log for details; try other parameters or another model",
    ErrorCode.JOB_TIMED_OUT: "try fewer steps or a lower resolution, or a server with a larger --max-job-seconds",
    ErrorCode.SHUTTING_DOWN: "the backend is stopping; start it again and resend",
    ErrorCode.INTERNAL_ERROR: "this is a bug in the backend; see its log and report it",
    ErrorCode.CONNECTION_LOST: "the backend stopped or restarted; start it again (refcolor serve) and resend",
    ErrorCode.TIMEOUT: "check that the backend is running (refcolor ping) and reachable at this address",
}


def major(version: str) -> int:
    """The major number of a "major.minor" version string; raises ValueError if malformed."""
    match = re.fullmatch(r"([0-9]+)\.[0-9]+", version)
    if match is None:
        raise ValueError(f"malformed version {version!r}: expected 'major.minor'")
    return int(match.group(1))
