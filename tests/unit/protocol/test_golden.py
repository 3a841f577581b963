"""Golden frame files: the exact bytes of one example message of every type.

A change that alters what goes on the wire (field order, JSON spacing, signature,
enum spelling) fails here and must be a deliberate, versioned protocol change.
Regenerate after such a change with ``REFCOLOR_UPDATE_GOLDEN=1 pytest tests/unit/protocol/test_golden.py``
and review the diff; see ``tests/golden/README.md``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from refcolor_protocol.errors import ProtocolError
from refcolor_protocol.messages import (
    MESSAGE_TYPES,
    Attachments,
    Buffer,
    Cancel,
    CancelOutcome,
    CancelReply,
    Capabilities,
    ColorizeParams,
    ColorizeRequest,
    Error,
    Header,
    Hello,
    JobAccepted,
    JobPhase,
    JobState,
    LayerName,
    Limits,
    MaskName,
    Message,
    Mode,
    ModelEntry,
    Ping,
    Pong,
    Progress,
    Result,
    ResultLayer,
    ResultMask,
    Scheduler,
    Status,
    StatusRequest,
)
from refcolor_protocol.spec import PROTOCOL_VERSION, ErrorCode, Layout
from refcolor_protocol.wire import Session

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden"
GOLDEN_KEY = b"golden-key"
UPDATE = os.environ.get("REFCOLOR_UPDATE_GOLDEN") == "1"
CLIENT_SESSION = "c1e2n3t4000000000000000000000000"
SERVER_SESSION = "5e7e7000000000000000000000000000"


def header(msg_type: str, number: int, session: str) -> Header:
    return Header(
        msg_id=f"{number:032x}",
        msg_type=msg_type,
        session=session,
        date=f"2024-05-01T12:{number // 60:02d}:{number % 60:02d}.000+00:00",
        version=PROTOCOL_VERSION,
    )


def pixels(count: int, seed: int) -> bytes:
    """Deterministic, not valid UTF-8 (so stored as base64), different per image."""
    return bytes((seed * 37 + i * 11) % 256 | 0x80 for i in range(count))


# Fixed per type, so adding a message type leaves the other golden files alone.
REPLY_NUMBERS = {
    "capabilities": 101,
    "pong": 102,
    "status": 103,
    "job_accepted": 104,
    "progress": 105,
    "result": 106,
    "error": 107,
    "cancel_reply": 108,
}
REQUEST = header("colorize_request", 5, CLIENT_SESSION)
HELLO = header("hello", 1, CLIENT_SESSION)
PING = header("ping", 2, CLIENT_SESSION)
STATUS_REQUEST = header("status_request", 3, CLIENT_SESSION)
CANCEL = header("cancel", 4, CLIENT_SESSION)


def colorize_request() -> tuple[ColorizeRequest, list[Buffer]]:
    files = Attachments()
    sketch = files.add(pixels(4 * 3 * 4, 1), 4, 3, Layout.RGBA8)
    reference = files.add(pixels(2 * 2 * 4, 2), 2, 2, Layout.BGRA8)
    sketch_mask = files.add(pixels(4 * 3, 3), 4, 3, Layout.L8)
    reference_mask = files.add(pixels(2 * 2, 4), 2, 2, Layout.L8)
    background = files.add(pixels(3 * 1 * 4, 5), 3, 1, Layout.RGBA8)
    params = ColorizeParams(
        mode=Mode.FOREGROUND,
        seed=4242,
        steps=12,
        variations=1,
        scheduler=Scheduler.EULER_A,
        reference_scale=7.5,
        sketch_scale=1.25,
        guidance_start=0.1,
        guidance_end=0.9,
        fg_strength=1.5,
        bg_strength=0.5,
        merge=0.25,
        mask_threshold=0.4,
        resolution=512,
        color_match=0.75,
        flatten=0.25,
        previews=False,
    )
    content = ColorizeRequest(sketch, reference, sketch_mask, reference_mask, background, params, "classical")
    return content, files.buffers


def result() -> tuple[Result, list[Buffer]]:
    files = Attachments()
    layers = tuple(
        ResultLayer(name, 0, files.add(pixels(4 * 3 * 4, 10 + i), 4, 3, Layout.RGBA8))
        for i, name in enumerate(LayerName)
    )
    masks = (ResultMask(MaskName.REFERENCE, files.add(pixels(2 * 2, 13), 2, 2, Layout.L8)),)
    return Result(
        job_id=REQUEST.msg_id, model="classical", layers=layers, seeds=(4242,), elapsed_s=1.5, masks=masks
    ), files.buffers


def progress() -> tuple[Progress, list[Buffer]]:
    files = Attachments()
    preview = files.add(pixels(2 * 1 * 4, 20), 2, 1, Layout.RGBA8)
    return Progress(job_id=REQUEST.msg_id, step=3, total=12, variation=0, preview=preview), files.buffers


def example(msg_type: str) -> Message:
    """The one fixed example message of ``msg_type``."""
    model = ModelEntry("tiny", "diffusion", "cpu", ("plain", "both"), 64, "random weights", 1.0, 0.5)
    limits = Limits(67108864, 8, 269484032, 200, 8, 5, 256)
    buffers: list[Buffer] = []
    parent: Header | None = None
    content: Any
    if msg_type == "hello":
        content = Hello("Krita — refcolor plugin", "0.1.0", PROTOCOL_VERSION)
    elif msg_type == "capabilities":
        content = Capabilities(
            "0.1.0",
            PROTOCOL_VERSION,
            "5e7e7-1",
            model,
            ("classical",),
            tuple(m.value for m in Mode),
            tuple(s.value for s in Scheduler),
            tuple(layout.value for layout in Layout),
            limits,
            ("sketch", "reference"),
        )
        parent = HELLO
    elif msg_type == "ping":
        content = Ping("n-1")
    elif msg_type == "pong":
        content, parent = Pong("n-1", "5e7e7-1", 12.5), PING
    elif msg_type == "status_request":
        content = StatusRequest()
    elif msg_type == "status":
        running = JobState(REQUEST.msg_id, JobPhase.RUNNING, 0, 3, 12)
        queued = JobState("f" * 32, JobPhase.QUEUED, 1)
        content, parent = Status("5e7e7-1", 1, running, (running, queued), True), STATUS_REQUEST
    elif msg_type == "colorize_request":
        content, buffers = colorize_request()
    elif msg_type == "job_accepted":
        content, parent = JobAccepted(REQUEST.msg_id, 0), REQUEST
    elif msg_type == "progress":
        (content, buffers), parent = progress(), REQUEST
    elif msg_type == "result":
        (content, buffers), parent = result(), REQUEST
    elif msg_type == "error":
        content = Error(
            ErrorCode.CANCELLED.value, "the job was cancelled", "send it again to run it", REQUEST.msg_id
        )
        parent = REQUEST
    elif msg_type == "cancel":
        content = Cancel(REQUEST.msg_id)
    elif msg_type == "cancel_reply":
        content, parent = CancelReply(REQUEST.msg_id, CancelOutcome.STOPPING), CANCEL
    else:
        raise AssertionError(f"no golden example for {msg_type!r}: add one to example()")
    if msg_type == "colorize_request":
        own = REQUEST
    elif parent is None:
        own = {"hello": HELLO, "ping": PING, "status_request": STATUS_REQUEST, "cancel": CANCEL}[msg_type]
    else:
        own = header(msg_type, REPLY_NUMBERS[msg_type], SERVER_SESSION)
    return Message(own, content, parent, tuple(buffers))


def encode_frame(frame: Buffer) -> str | dict[str, str]:
    data = bytes(frame)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def decode_frame(stored: str | dict[str, str]) -> bytes:
    if isinstance(stored, str):
        return stored.encode("utf-8")
    assert set(stored) == {"base64"}, f"unknown frame encoding {stored!r}"
    return base64.b64decode(stored["base64"], validate=True)


def golden_path(msg_type: str) -> Path:
    return GOLDEN_DIR / f"{msg_type}.frames.json"


def read_golden(msg_type: str) -> list[bytes]:
    path = golden_path(msg_type)
    if not path.exists():
        pytest.fail(f"{path} is missing; create it with REFCOLOR_UPDATE_GOLDEN=1 and review it")
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["msg_type"] == msg_type and stored["key"] == GOLDEN_KEY.decode("ascii")
    return [decode_frame(frame) for frame in stored["frames"]]


def write_golden(msg_type: str, frames: list[Buffer]) -> None:
    stored = {
        "msg_type": msg_type,
        "key": GOLDEN_KEY.decode("ascii"),
        "frames": [encode_frame(frame) for frame in frames],
    }
    golden_path(msg_type).write_text(json.dumps(stored, indent=1) + "\n", encoding="utf-8")


@pytest.mark.parametrize("msg_type", sorted(MESSAGE_TYPES))
def test_serialize_matches_golden(msg_type: str) -> None:
    frames = [bytes(f) for f in Session(GOLDEN_KEY).serialize(example(msg_type))]
    if UPDATE:
        write_golden(msg_type, frames)
    golden = read_golden(msg_type)
    assert len(frames) == len(golden), f"{msg_type}: {len(frames)} frames, golden has {len(golden)}"
    for index, (made, expected) in enumerate(zip(frames, golden, strict=True)):
        assert made == expected, f"{msg_type}: frame {index} differs from {golden_path(msg_type).name}"


@pytest.mark.parametrize("msg_type", sorted(MESSAGE_TYPES))
def test_deserialize_golden(msg_type: str) -> None:
    msg = Session(GOLDEN_KEY).deserialize(read_golden(msg_type))
    assert msg == example(msg_type)
    assert msg.content.msg_type == msg_type


def test_golden_files_are_exactly_the_message_types() -> None:
    on_disk = {p.name.removesuffix(".frames.json") for p in GOLDEN_DIR.glob("*.frames.json")}
    assert on_disk == set(MESSAGE_TYPES)


def test_golden_examples_use_every_image_slot() -> None:
    request = example("colorize_request")
    assert len(request.content.images()) == 5 and len(request.buffers) == 5
    assert len(example("result").content.layers) == 3 and len(example("result").content.masks) == 1
    assert len(example("result").buffers) == 4
    assert example("progress").content.preview is not None


def test_golden_frames_are_signed_with_the_golden_key() -> None:
    frames = read_golden("ping")
    with pytest.raises(ProtocolError) as info:
        Session(b"another-key").deserialize(frames)
    assert info.value.code is ErrorCode.BAD_SIGNATURE
