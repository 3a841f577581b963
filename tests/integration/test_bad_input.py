"""Every kind of bad input gets an error with a stable code, and the server keeps serving.

A raw DEALER socket sends hand-made frames, so the client library cannot tidy them up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import zmq
from broken_models import GatedColorizer
from support import build_request, grid_sketch, raw_dealer, solid, thread_server

from refcolor import models
from refcolor_protocol import DELIMITER, Attachments, ColorizeRequest, ErrorCode, Layout, Ping, RemoteError, Session
from refcolor_protocol.messages import Error, Message

KEY = b"test-key"


@pytest.fixture(scope="module")
def server() -> Iterator[object]:
    models.register("failing", "broken_models:load_failing")
    models.register("gated", "broken_models:load_gated")
    running = thread_server(key=KEY, max_pixels=300 * 300, max_queue=1, max_steps=50)
    yield running
    running.stop()


@pytest.fixture
def raw(server) -> Iterator[zmq.Socket]:
    sock = raw_dealer(server.address, KEY)
    yield sock
    sock.close()


SESSION = Session(KEY)


def exchange(sock: zmq.Socket, frames: list[bytes]) -> Message:
    """Send raw frames; return the (verified) reply."""
    sock.send_multipart(frames)
    return SESSION.deserialize(sock.recv_multipart())


def assert_error(reply: Message, code: ErrorCode, *words: str) -> Error:
    assert reply.msg_type == "error", reply
    error = reply.content
    assert error.code == code.value, error
    assert error.hint, "every error carries a hint"
    for word in words:
        assert word in error.message, (word, error.message)
    return error


def signed(header: dict, parent: dict, content: dict, buffers: list[bytes] = ()) -> list[bytes]:
    parts = [json.dumps(header).encode(), json.dumps(parent).encode(), json.dumps(content).encode(), *buffers]
    return [DELIMITER, SESSION.sign(parts), *parts]


def header(msg_type: str = "ping", **changes: object) -> dict:
    now = datetime.now(timezone.utc).isoformat()
    base = {"msg_id": "m1", "msg_type": msg_type, "session": "s", "date": now, "version": "1.0"}
    base.update(changes)
    return base


def request_frames(request: ColorizeRequest, buffers: list) -> list[bytes]:
    msg = SESSION.msg(request, buffers=buffers)
    return [bytes(f) for f in SESSION.serialize(msg)]


def still_serving(sock: zmq.Socket) -> None:
    reply = exchange(sock, [bytes(f) for f in SESSION.serialize(SESSION.msg(Ping("alive")))])
    assert reply.msg_type == "pong" and reply.content.nonce == "alive"


def test_wrong_frame_count(raw) -> None:
    assert_error(exchange(raw, [b"just one frame"]), ErrorCode.BAD_FRAMES, "delimiter")
    assert_error(exchange(raw, [DELIMITER, b"sig", b"{}"]), ErrorCode.BAD_FRAMES, "got 2 frames")
    still_serving(raw)


def test_too_many_buffers(raw) -> None:
    frames = signed(header(), {}, {}, [b"x"] * 65)
    assert_error(exchange(raw, frames), ErrorCode.BAD_FRAMES, "65 buffer frames")
    still_serving(raw)


@pytest.mark.parametrize("tamper", ["signature", "content", "buffer", "missing"])
def test_bad_or_missing_signature(raw, tamper: str) -> None:
    frames = signed(header(), {}, {"nonce": "x"}, [b"payload"])
    if tamper == "signature":
        frames[1] = Session(b"other-key").sign(frames[2:])
    elif tamper == "content":
        frames[4] = b'{"nonce":"y"}'
    elif tamper == "buffer":
        frames[5] = b"paylaod"
    else:
        frames[1] = b""
    reply = exchange(raw, frames)
    assert_error(reply, ErrorCode.BAD_SIGNATURE, "signature")
    assert reply.parent_header is None  # nothing from an unauthenticated message is echoed
    still_serving(raw)


@pytest.mark.parametrize(
    "frame",
    [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"a": NaN}', b"[" * 100_000 + b"]" * 100_000],
    ids=["syntax", "utf8", "not-object", "nan", "deep"],
)
def test_bad_json(raw, frame: bytes) -> None:
    parts = [json.dumps(header()).encode(), b"{}", frame]
    assert_error(exchange(raw, [DELIMITER, SESSION.sign(parts), *parts]), ErrorCode.BAD_JSON)
    still_serving(raw)


def test_bad_header(raw) -> None:
    bad = header()
    del bad["msg_id"]
    assert_error(exchange(raw, signed(bad, {}, {})), ErrorCode.BAD_HEADER, "msg_id")
    assert_error(exchange(raw, signed(header(session=5), {}, {})), ErrorCode.BAD_HEADER, "session")
    assert_error(exchange(raw, signed(header(version="one"), {}, {})), ErrorCode.BAD_HEADER, "version")
    still_serving(raw)


def test_unsupported_major_version_but_newer_minor_is_fine(raw) -> None:
    reply = exchange(raw, signed(header(version="2.0"), {}, {}))
    assert_error(reply, ErrorCode.UNSUPPORTED_VERSION, "2.0")
    assert reply.parent_header is not None and reply.parent_header.msg_id == "m1"
    reply = exchange(raw, signed(header(version="1.7"), {}, {"nonce": "n", "future_field": [1]}))
    assert reply.msg_type == "pong" and reply.content.nonce == "n"


def test_unknown_message_type(raw) -> None:
    assert_error(exchange(raw, signed(header("teleport"), {}, {})), ErrorCode.UNKNOWN_MESSAGE_TYPE, "teleport")
    content = {"job_id": "j", "model": "m", "layers": [], "seeds": []}
    assert_error(exchange(raw, signed(header("result"), {}, content)), ErrorCode.UNKNOWN_MESSAGE_TYPE, "result")
    still_serving(raw)


def test_invalid_fields_are_named(raw) -> None:
    request, buffers = build_request(grid_sketch(64, 64), solid(8, 8, (1, 2, 3)))
    content = json.loads(request_frames(request, buffers)[4])
    cases = [
        ({k: v for k, v in content.items() if k != "sketch"}, "sketch: required field is missing"),
        ({**content, "params": {"steps": "many"}}, "colorize_request.params.steps: expected an integer"),
        ({**content, "params": {"steps": True}}, "params.steps: expected an integer, got bool"),
        ({**content, "params": {"mode": "rainbow"}}, "params.mode"),
        ({**content, "params": {"merge": 3.0}}, "params.merge: 3.0 is out of range"),
        ({**content, "params": {"guidance_start": 0.8, "guidance_end": 0.2}}, "guidance_start=0.8"),
        ({**content, "params": {"steps": 51}}, "max_steps=50"),
    ]
    for bad, words in cases:
        assert_error(
            exchange(raw, signed(header("colorize_request"), {}, bad, buffers)), ErrorCode.INVALID_FIELD, words
        )
    still_serving(raw)


def test_buffer_not_matching_its_descriptor(raw) -> None:
    request, buffers = build_request(grid_sketch(64, 64), solid(8, 8, (1, 2, 3)))
    frames = request_frames(request, buffers)
    content = json.loads(frames[4])
    # declared nbytes disagree with the size
    bad = json.loads(frames[4])
    bad["sketch"]["nbytes"] = 10
    assert_error(
        exchange(raw, signed(header("colorize_request"), {}, bad, buffers)), ErrorCode.BUFFER_MISMATCH, "nbytes=10"
    )
    # buffer shorter than declared
    short = [bytes(buffers[0])[:-1], buffers[1]]
    reply = exchange(raw, signed(header("colorize_request"), {}, content, short))
    assert_error(reply, ErrorCode.BUFFER_MISMATCH, "16383 bytes")
    # refers to a buffer that is not there
    assert_error(
        exchange(raw, signed(header("colorize_request"), {}, content, buffers[:1])),
        ErrorCode.BUFFER_MISMATCH,
        "buffer 1",
    )
    still_serving(raw)


def test_image_over_the_pixel_limit_is_refused_before_reading(raw) -> None:
    # Declares a 100000 x 100000 image but sends 4 bytes: refused on the declaration alone.
    att = Attachments()
    request = ColorizeRequest(
        sketch=att.add(b"\0" * 4, 1, 1, Layout.RGBA8), reference=att.add(b"\0" * 4, 1, 1, Layout.RGBA8)
    )
    content = json.loads(request_frames(request, att.buffers)[4])
    content["sketch"].update(width=100_000, height=100_000, nbytes=4 * 10**10)
    reply = exchange(raw, signed(header("colorize_request"), {}, content, att.buffers))
    assert_error(reply, ErrorCode.IMAGE_TOO_LARGE, "10000000000 pixels", "90000")
    still_serving(raw)


def test_mask_of_the_wrong_size(raw) -> None:
    request, buffers = build_request(
        grid_sketch(64, 64), solid(8, 8, (1, 2, 3)), sketch_mask=np.zeros((32, 64), np.uint8)
    )
    reply = exchange(raw, request_frames(request, buffers))
    assert_error(reply, ErrorCode.SIZE_MISMATCH, "sketch_mask: 64x32", "64x64")
    still_serving(raw)


def test_unsupported_layouts(raw) -> None:
    request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)))
    content = json.loads(request_frames(request, buffers)[4])
    content["sketch"]["layout"] = "CMYK16"
    assert_error(
        exchange(raw, signed(header("colorize_request"), {}, content, buffers)), ErrorCode.UNSUPPORTED_LAYOUT, "CMYK16"
    )
    # a mask must be L8
    att = Attachments()
    sk = att.add(b"\0" * 16 * 16 * 4, 16, 16, Layout.RGBA8)
    request = ColorizeRequest(sketch=sk, reference=sk, sketch_mask=sk)
    reply = exchange(raw, request_frames(request, att.buffers))
    assert_error(reply, ErrorCode.UNSUPPORTED_LAYOUT, "sketch_mask", "expected L8")
    still_serving(raw)


def test_unknown_model(raw) -> None:
    request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)), model="dall-e")
    assert_error(exchange(raw, request_frames(request, buffers)), ErrorCode.UNKNOWN_MODEL, "dall-e", "classical")


def test_model_failure_is_reported_and_the_server_goes_on(server) -> None:
    request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)), model="failing", steps=3)
    with server.client() as client:
        with pytest.raises(RemoteError) as info:
            client.colorize(request, buffers, timeout=30)
        assert info.value.code == ErrorCode.JOB_FAILED.value
        assert "simulated out of memory" in info.value.message and info.value.job_id
        request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)), steps=2)
        assert client.colorize(request, buffers, timeout=30).msg_type == "result"


def test_queue_full(server) -> None:
    # max_queue=1: one running (held at its first step) + one waiting; the third is refused.
    GatedColorizer.gate.clear()
    request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)), steps=2, model="gated")
    with server.client() as client:
        first = client.send(request, buffers)
        started = []
        while not started:  # the worker has taken the first job: it no longer counts as waiting
            started = [m for m in client.poll_events() if m.parent_id == first.msg_id and m.msg_type == "progress"]
            time.sleep(0.005)
        second, third = client.send(request, buffers), client.send(request, buffers)
        with pytest.raises(RemoteError) as info:
            client.wait(third, timeout=30)
        assert info.value.code == ErrorCode.QUEUE_FULL.value and "1 jobs are already waiting" in info.value.message
        GatedColorizer.gate.set()
        assert client.wait(first, timeout=30).msg_type == "result"
        assert client.wait(second, timeout=30).msg_type == "result"


def test_internal_error_is_contained(server, raw, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> object:
        raise KeyError("bug")

    monkeypatch.setattr(server.server, "_status_for", broken)
    status = [bytes(f) for f in SESSION.serialize(SESSION.msg(__import__("refcolor_protocol").StatusRequest()))]
    assert_error(exchange(raw, status), ErrorCode.INTERNAL_ERROR)
    monkeypatch.undo()
    still_serving(raw)


def test_keyless_server_refuses_signed_messages() -> None:
    running = thread_server(key=b"")
    try:
        sock = raw_dealer(running.address)
        sock.send_multipart(signed(header(), {}, {}))
        reply = Session(b"").deserialize(sock.recv_multipart())
        assert reply.content.code == ErrorCode.BAD_SIGNATURE.value and "without a key" in reply.content.message
        sock.close()
    finally:
        running.stop()


def test_work_amplification_shapes_are_refused_before_they_run(server) -> None:
    # The scenarios (issue 18, item 2): an 8x8 sketch with resolution=4096 ran for minutes without a
    # step; a 1x1048576 (here 1x2000, within this server's max_pixels) strip made the model's
    # working image thousands of times larger than its resolution. Both are refused on admission,
    # with codes a client can act on, and the server serves on.
    with server.client() as client:
        request, buffers = build_request(grid_sketch(8, 8), solid(8, 8, (1, 2, 3)), resolution=4096)
        with pytest.raises(RemoteError) as info:
            client.colorize(request, buffers, timeout=30)
        assert info.value.code == ErrorCode.INVALID_FIELD.value
        assert "resolution: 4096 exceeds this server's max_resolution=1024" in info.value.message
        for width, height in ((2000, 1), (1, 2000), (170, 10)):
            request, buffers = build_request(grid_sketch(width, height), solid(8, 8, (1, 2, 3)), steps=2)
            with pytest.raises(RemoteError) as info:
                client.colorize(request, buffers, timeout=30)
            assert info.value.code == ErrorCode.BAD_ASPECT_RATIO.value, (width, height)
            assert f"{width}x{height}" in info.value.message and info.value.hint
        request, buffers = build_request(grid_sketch(160, 10), solid(8, 8, (1, 2, 3)), steps=2)  # 16:1 is fine
        assert client.colorize(request, buffers, timeout=30).msg_type == "result"


def test_a_job_past_max_job_seconds_ends_with_job_timed_out() -> None:
    # A job that never finishes a step (the gate stays shut) on a server with a 0.5 s limit: it is
    # stopped with job_timed_out, not left running, and the server takes the next job.
    models.register("gated", "broken_models:load_gated")
    running = thread_server(key=KEY, max_job_seconds=0.5)
    try:
        GatedColorizer.gate.clear()
        with running.client() as client:
            assert client.hello().limits.max_job_seconds == 0.5
            request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)), steps=3, model="gated")
            start = time.monotonic()
            with pytest.raises(RemoteError) as info:
                client.colorize(request, buffers, timeout=30)
            assert info.value.code == ErrorCode.JOB_TIMED_OUT.value and "--max-job-seconds" in info.value.message
            assert time.monotonic() - start < 5
            request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)), steps=2)
            assert client.colorize(request, buffers, timeout=30).msg_type == "result"
    finally:
        GatedColorizer.gate.set()
        running.stop()


def test_buffers_no_image_refers_to_are_refused_not_held(raw) -> None:
    # The scenario (issue 18, item 3): a valid request plus buffers its content never mentions; the
    # job kept every one of them while it waited (62 such frames could hold 15.6 GiB a job).
    request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)), steps=2)
    frames = request_frames(request, [*buffers, b"\0" * 1024, b"\1" * 1024])
    reply = exchange(raw, frames)
    assert_error(reply, ErrorCode.BUFFER_MISMATCH, "buffer(s) 2, 3 of 4 belong to no image")
    still_serving(raw)


def test_a_replayed_message_is_refused_and_a_replayed_request_runs_once(raw) -> None:
    # The scenario (issue 18, item 6): an identical signed message was accepted again, 100 times out
    # of 100, and a replayed colorize_request ran twice.
    ping = [bytes(f) for f in SESSION.serialize(SESSION.msg(Ping("once")))]
    assert exchange(raw, ping).msg_type == "pong"
    assert_error(exchange(raw, ping), ErrorCode.BAD_SIGNATURE, "replay")
    request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)), steps=2)
    frames = request_frames(request, buffers)
    assert exchange(raw, frames).msg_type == "job_accepted"
    replies = []
    raw.send_multipart(frames)
    # The replay's refusal and the first job's events and result, in whatever order they come.
    while not {"error", "result"} <= {r.msg_type for r in replies}:
        replies.append(SESSION.deserialize(raw.recv_multipart()))
    (refusal,) = [r for r in replies if r.msg_type == "error"]
    assert_error(refusal, ErrorCode.BAD_SIGNATURE, "replay")
    assert [r.msg_type for r in replies].count("result") == 1
    raw.setsockopt(zmq.RCVTIMEO, 500)
    with pytest.raises(zmq.Again):  # no second result follows
        while True:
            assert SESSION.deserialize(raw.recv_multipart()).msg_type != "result"
    raw.setsockopt(zmq.RCVTIMEO, 10_000)
    still_serving(raw)


def test_only_the_client_that_sent_a_job_can_cancel_it_or_reuse_its_id(server) -> None:
    # The scenario (issue 18, item 6): any key holder could cancel another client's job, or push a job
    # with the same msg_id beside it.
    GatedColorizer.gate.clear()
    request, buffers = build_request(grid_sketch(16, 16), solid(8, 8, (1, 2, 3)), steps=2, model="gated")
    try:
        with server.client() as owner, server.client() as other:
            job = owner.send(request, buffers)
            started: list[Message] = []
            while not started:
                started = [m for m in owner.poll_events() if m.parent_id == job.msg_id and m.msg_type == "progress"]
                time.sleep(0.005)
            assert other.cancel(job.msg_id).outcome == "unknown"  # not theirs: as if there were none
            fresh = other.session.msg(request, buffers=buffers)  # a new message that reuses the job's msg_id
            copy = dataclasses.replace(fresh, header=dataclasses.replace(fresh.header, msg_id=job.msg_id))
            other._sockets()[0].send_multipart(other.session.serialize(copy), copy=False)
            other._pending[job.msg_id] = copy.header
            with pytest.raises(RemoteError) as info:
                other.wait(copy.header, timeout=30)
            assert info.value.code == ErrorCode.INVALID_FIELD.value and "already a job's id" in info.value.message
            GatedColorizer.gate.set()
            assert owner.wait(job, timeout=30).msg_type == "result"  # untouched by the other client
    finally:
        GatedColorizer.gate.set()


def test_wire_values_cannot_forge_or_flood_log_lines(raw, caplog: pytest.LogCaptureFixture) -> None:
    # The faults (issue 18, item 11): a newline in client_name forged a log line; msg_type,
    # version and client_name were logged in full, up to 1 MiB a message; every refusal was a line.
    caplog.set_level(logging.INFO, logger="refcolor")
    evil = "krita\n2026-12-01 12:00:00 INFO refcolor.service.server: job forged done" + "x" * 500_000
    reply = exchange(raw, signed(header("hello", msg_id="h-evil"), {}, {"client_name": evil, "client_version": evil}))
    assert reply.msg_type == "capabilities"
    for _ in range(300):
        exchange(raw, signed(header("no_such_type\n" + "y" * 100_000, msg_id=uuid.uuid4().hex), {}, {}))
    bad = signed(header(), {}, {})
    bad[1] = b"0" * 64
    for _ in range(300):
        exchange(raw, bad)
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("refcolor")]
    assert lines, "nothing was logged at all"
    assert not any("\n" in line for line in lines), [line[:200] for line in lines if "\n" in line]
    assert max(len(line) for line in lines) < 600
    assert any(line.startswith("hello from krita\\n2026-12-01") for line in lines), lines
    refusals = [line for line in lines if line.startswith("refused")]
    assert len(refusals) <= 6, refusals  # one per kind per 10 s, not one line per message (600)
    still_serving(raw)


def test_a_job_id_that_could_not_be_logged_safely_is_refused(server) -> None:
    request, buffers = build_request(grid_sketch(32, 32), solid(8, 8, (1, 2, 3)), steps=1)
    session = Session(KEY)
    msg = session.msg(request, buffers=buffers)
    msg = dataclasses.replace(msg, header=dataclasses.replace(msg.header, msg_id="job\nforged"))
    with raw_dealer(server.address, KEY) as sock:
        reply = exchange(sock, [bytes(f) for f in session.serialize(msg)])
    assert_error(reply, ErrorCode.INVALID_FIELD, "header.msg_id", "letters, digits")


@pytest.mark.parametrize(
    ("msg_type", "content"),
    [("result", {}), ("progress", {"job_id": 5}), ("capabilities", {"nonsense": True}), ("pong", {})],
)
def test_server_only_message_types_are_unknown_to_the_server(raw, msg_type: str, content: dict) -> None:
    # The fault (issue 18, item 12): a server-only type with content that did not parse got
    # invalid_field (about its fields) instead of unknown_message_type.
    reply = exchange(raw, signed(header(msg_type, msg_id=uuid.uuid4().hex), {}, content))
    assert_error(reply, ErrorCode.UNKNOWN_MESSAGE_TYPE, f"'{msg_type}' is sent by the server, not to it")
    still_serving(raw)


@pytest.mark.parametrize(
    ("date", "words"),
    [
        (lambda now: (now - timedelta(minutes=10)).isoformat(), "s old"),
        (lambda now: (now + timedelta(minutes=10)).isoformat(), "s in the future"),
        (lambda now: now.replace(tzinfo=None).isoformat(), "has no time zone"),
        (lambda now: "yesterday", "is not an ISO 8601 time"),
    ],
    ids=["old", "future", "naive", "garbage"],
)
def test_a_signed_message_outside_the_freshness_window_is_refused(raw, date, words: str) -> None:
    # Replay protection (issue 18, item 6): the signature history is bounded, so a message older
    # than the window must be refused by its date, or a capture could be replayed once it left
    # the history.
    frames = signed(header(msg_id=uuid.uuid4().hex, date=date(datetime.now(timezone.utc))), {}, {"nonce": "x"})
    error = assert_error(exchange(raw, frames), ErrorCode.BAD_HEADER, "header.date", words)
    assert "clock" in error.hint
    fresh = signed(header(msg_id=uuid.uuid4().hex, date=datetime.now(timezone.utc).isoformat()), {}, {"nonce": "y"})
    assert exchange(raw, fresh).content.nonce == "y"
