"""10,000 random and mutated messages against a real server process.

Afterwards a valid request must still succeed and the server's memory must not have grown
without bound. Every message gets an answer, and every answer is itself a valid message.
"""

from __future__ import annotations

import contextlib
import json
import random
import time

import numpy as np
import psutil
import pytest
import zmq
from support import ServerProcess, build_request, grid_sketch, raw_dealer

from refcolor_protocol import (
    DELIMITER,
    Cancel,
    ColorizeParams,
    Hello,
    Ping,
    RemoteError,
    Session,
    StatusRequest,
)
from refcolor_protocol.connection import read_connection_file

MESSAGES = 10_000
BATCH = 50

pytestmark = pytest.mark.timeout(600)


def valid_templates(session: Session) -> list[list[bytes]]:
    request, buffers = build_request(grid_sketch(8, 8, 4), np.full((4, 4, 4), 128, np.uint8), steps=1)
    contents = [
        (Hello("fuzz"), []),
        (Ping("n"), []),
        (StatusRequest(), []),
        (Cancel("nope"), []),
        (request, buffers),
    ]
    return [[bytes(f) for f in session.serialize(session.msg(c, buffers=b))] for c, b in contents]


def random_json_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(9 if depth < 3 else 6)
    return [
        lambda: rng.randint(-(2**70), 2**70),
        lambda: rng.choice([0, -1, 1, 2**31, 10**9, 2**64]),
        lambda: rng.random() * 10 ** rng.randint(-5, 30),
        lambda: "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(20))),
        lambda: rng.choice([True, False, None]),
        lambda: rng.choice(["RGBA8", "L8", "BGRA8", "plain", "both", ""]),
        lambda: [random_json_value(rng, depth + 1) for _ in range(rng.randrange(4))],
        lambda: {str(rng.randrange(5)): random_json_value(rng, depth + 1) for _ in range(rng.randrange(4))},
        lambda: {"width": 10**9, "height": 10**9, "layout": "RGBA8", "nbytes": 4 * 10**18, "buffer": 0},
    ][kind]()


def mutate_json(rng: random.Random, obj: object) -> object:
    """Replace, delete or add one field somewhere in a JSON object."""
    if isinstance(obj, dict) and obj and rng.random() < 0.7:
        key = rng.choice(list(obj))
        choice = rng.random()
        if choice < 0.4 and isinstance(obj[key], (dict, list)):
            obj[key] = mutate_json(rng, obj[key])
        elif choice < 0.6:
            del obj[key]
        else:
            obj[key] = random_json_value(rng)
        return obj
    if isinstance(obj, list) and obj:
        index = rng.randrange(len(obj))
        obj[index] = mutate_json(rng, obj[index])
        return obj
    return random_json_value(rng)


def mutate(rng: random.Random, session: Session, template: list[bytes]) -> list[bytes]:
    frames = list(template)
    kind = rng.randrange(7)
    if kind == 0:  # truncated or shuffled frame lists
        frames = frames[: rng.randrange(len(frames))] if rng.random() < 0.5 else rng.sample(frames, len(frames))
        return frames or [b""]
    if kind == 1:  # flipped bytes, signature left alone
        index = rng.randrange(len(frames))
        frame = bytearray(frames[index]) or bytearray(b"\0")
        for _ in range(rng.randint(1, 4)):
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
        frames[index] = bytes(frame)
        return frames
    if kind == 2:  # garbage
        return [rng.randbytes(rng.randrange(64)) for _ in range(rng.randint(1, 8))]
    # The rest are re-signed, so they reach the parsers.
    signed = frames[2:]
    if kind == 3:  # flipped bytes in a JSON frame
        index = rng.randrange(3)
        frame = bytearray(signed[index])
        for _ in range(rng.randint(1, 4)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        signed[index] = bytes(frame)
    elif kind in (4, 5):  # a field of the content or header replaced, deleted or added
        index = 2 if kind == 4 else 0
        signed[index] = json.dumps(mutate_json(rng, json.loads(signed[index]))).encode()
    else:  # buffers dropped, added, resized
        buffers = signed[3:]
        action = rng.randrange(3)
        if action == 0 and buffers:
            buffers.pop(rng.randrange(len(buffers)))
        elif action == 1:
            buffers.append(rng.randbytes(rng.randrange(100)))
        elif buffers:
            i = rng.randrange(len(buffers))
            buffers[i] = buffers[i][: rng.randrange(len(buffers[i]) + 1)] + rng.randbytes(rng.randrange(3))
        signed = signed[:3] + buffers
    return [DELIMITER, session.sign(signed), *signed]


def drain(sock: zmq.Socket, session: Session, idle_ms: int) -> int:
    """Receive until nothing comes for ``idle_ms``; every reply must verify. Returns the count."""
    count = 0
    while sock.poll(idle_ms, zmq.POLLIN):
        session.deserialize(sock.recv_multipart(copy=False))
        count += 1
    return count


def test_fuzzed_messages_leave_the_server_healthy(tmp_path) -> None:
    server = ServerProcess.start(
        tmp_path / "srv", "--model", "classical", "--max-pixels", str(256 * 256), "--max-queue", "4", "--max-steps", "5"
    )
    try:
        info = read_connection_file(server.connection_file)
        session = Session(info.key)
        sock = raw_dealer(info.address, info.key, timeout_ms=-1)
        rng = random.Random(20261124)
        templates = valid_templates(session)
        process = psutil.Process(server.pid)
        replies = 0
        rss_after_warmup = 0
        for sent in range(0, MESSAGES, BATCH):
            for _ in range(BATCH):
                sock.send_multipart(mutate(rng, session, rng.choice(templates)))
            replies += drain(sock, session, idle_ms=5 if sent + BATCH < MESSAGES else 2000)
            if sent + BATCH == 1000:
                rss_after_warmup = process.memory_info().rss
        deadline = time.monotonic() + 30
        while replies < MESSAGES and time.monotonic() < deadline:
            replies += drain(sock, session, idle_ms=500)
        sock.close()
        assert replies >= MESSAGES, f"only {replies} answers to {MESSAGES} messages"
        growth = process.memory_info().rss - rss_after_warmup
        assert growth < 40 * 2**20, f"server memory grew by {growth / 2**20:.1f} MiB over {MESSAGES - 1000} messages"
        with server.client() as client:
            request, buffers = build_request(grid_sketch(64, 64), np.full((8, 8, 4), 60, np.uint8), steps=2)
            assert client.colorize(request, buffers, timeout=60).msg_type == "result"
        assert server.process.poll() is None
    finally:
        server.kill()


def test_oversized_frame_is_dropped_by_the_transport(tmp_path) -> None:
    """A frame over max_message_bytes never reaches the server's memory; others are unaffected."""
    server = ServerProcess.start(tmp_path / "srv", "--model", "classical", "--max-pixels", str(256 * 256))
    try:
        info = read_connection_file(server.connection_file)
        with server.client() as honest:
            limit = honest.hello().limits.max_message_bytes
            session = Session(info.key)
            sock = raw_dealer(info.address, info.key, timeout_ms=-1)
            huge = b"\0" * (limit + 1)
            sock.send_multipart(session.serialize(session.msg(Ping("big"), buffers=[huge])))
            assert not sock.poll(1000, zmq.POLLIN), "an oversized message must not be answered"
            sock.close()
            assert honest.ping().server_id
            params = ColorizeParams(steps=1)
            request, buffers = build_request(grid_sketch(32, 32), np.full((8, 8, 4), 1, np.uint8), steps=params.steps)
            assert honest.colorize(request, buffers, timeout=60).msg_type == "result"
    finally:
        server.kill()


def test_attack_shapes_leave_the_server_bounded(tmp_path) -> None:
    """The attacks of issue 18 in one run against one server: floods of frames without the key and
    with it, work-amplification shapes and replays. Every one is refused or bounded; afterwards an
    honest job runs, and the server's memory is within 1.5 x its idle size plus one maximal job."""
    max_pixels = 256 * 256
    server = ServerProcess.start(
        tmp_path / "srv", "--model", "classical", "--max-pixels", str(max_pixels), "--max-queue", "4"
    )
    try:
        info = read_connection_file(server.connection_file)
        session = Session(info.key)
        process = psutil.Process(server.pid)
        with server.client() as honest:
            request, buffers = build_request(grid_sketch(64, 64), np.full((8, 8, 4), 60, np.uint8), steps=2)
            assert honest.colorize(request, buffers, timeout=60).msg_type == "result"  # warm: model, caches
            idle = process.memory_info().rss
            max_job = 4 * max_pixels * 4 + max_pixels  # sketch, reference, background, RGBA; one L8 mask

            # Multi-frame floods without the key: refused in the handshake, never buffered.
            for key in (b"", b"wrong"):
                for _ in range(3):
                    with raw_dealer(info.address, key, timeout_ms=-1, sndtimeo=1000) as sock:
                        # The send may not even be taken: once the handshake has failed the socket
                        # has nowhere to queue it (zmq.Again), which is as refused as it gets.
                        with contextlib.suppress(zmq.Again):
                            sock.send_multipart([b"junk"] + [b"\0" * (8 << 20)] * 16, copy=False)
                        assert not sock.poll(300, zmq.POLLIN)
            # With the key: more buffers than allowed, and frames over the size limit.
            with raw_dealer(info.address, info.key, timeout_ms=-1) as sock:
                limit = honest.hello().limits.max_message_bytes
                frames = session.serialize(session.msg(Ping("many"), buffers=[b"\0" * limit] * 80))
                sock.send_multipart(frames, copy=False)
                reply = session.deserialize(sock.recv_multipart())
                assert reply.content.code == "bad_frames"
                sock.send_multipart(session.serialize(session.msg(Ping("huge"), buffers=[b"\0" * (limit + 1)] * 4)))
                assert not sock.poll(500, zmq.POLLIN)  # the transport drops the connection
            # Work amplification: refused on admission.
            for sketch, resolution, code in [
                (grid_sketch(8, 8), 4096, "invalid_field"),
                (grid_sketch(2000, 1), 512, "bad_aspect_ratio"),
            ]:
                request, buffers = build_request(sketch, np.full((8, 8, 4), 1, np.uint8), resolution=resolution)
                with pytest.raises(RemoteError) as refused:
                    honest.colorize(request, buffers, timeout=30)
                assert refused.value.code == code
            # Replays: a ping answered once, a colorize_request run once.
            with raw_dealer(info.address, info.key, timeout_ms=10_000) as sock:
                ping = [bytes(f) for f in session.serialize(session.msg(Ping("once")))]
                request, buffers = build_request(grid_sketch(32, 32), np.full((8, 8, 4), 9, np.uint8), steps=1)
                job = [bytes(f) for f in session.serialize(session.msg(request, buffers=buffers))]
                for _ in range(50):
                    sock.send_multipart(ping)
                    sock.send_multipart(job)
                kinds: dict[str, int] = {}
                while sock.poll(3000, zmq.POLLIN):
                    msg = session.deserialize(sock.recv_multipart())
                    name = msg.content.code if msg.msg_type == "error" else msg.msg_type
                    kinds[name] = kinds.get(name, 0) + 1
                assert kinds.get("pong") == 1 and kinds.get("job_accepted") == 1 and kinds.get("result") == 1, kinds
                assert kinds.get("bad_signature") == 98, kinds

            request, buffers = build_request(grid_sketch(64, 64), np.full((8, 8, 4), 60, np.uint8), steps=2)
            assert honest.colorize(request, buffers, timeout=60).msg_type == "result"
            after = process.memory_info().rss
            bound = 1.5 * idle + max_job
            assert after < bound, f"RSS {after / 2**20:.0f} MiB after the attacks; bound {bound / 2**20:.0f} MiB"
        assert server.process.poll() is None
    finally:
        server.kill()
