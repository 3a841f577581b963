"""Round trip of a 4096x4096 RGBA8 image plus an L8 mask: refcolor protocol vs bare pyzmq.

Client -> server -> client on tcp loopback. The protocol path is the real one: the client
builds and signs a colorize_request, the server (a ZAP/PLAIN-authenticated ROUTER, as a keyed
`refcolor serve` binds) checks frames, signature, JSON, fields and buffer sizes as the server
does, then echoes the two buffers back in a `result` signed in the request's scheme, which the
client verifies and matches to its request. Signed runs: `blake3` (the default scheme) and
`hmac-sha256` (legacy, and what a client without the blake3 package sends); unsigned: no key.
The bare path sends the same bytes through a plain DEALER/ROUTER pair. Every round trip hashes
the images four times when signed: the client signs, the server verifies and signs its reply,
the client verifies. Prints MB/s for each path, the time ratios to the bare path, and how fast
one signature of the request's frames is made alone (`*_sign_mb_per_s`).

Run: .venv/bin/python benchmarks/bench_roundtrip.py [--size 4096] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from refcolor_protocol import (
    Attachments,
    Client,
    ColorizeRequest,
    LayerName,
    Layout,
    Result,
    ResultLayer,
    Session,
)
from refcolor_protocol.connection import TRANSPORT_USERNAME, transport_password
from refcolor_protocol.messages import check_buffers, image_refs
from refcolor_protocol.spec import LEGACY_SIGNATURE_SCHEME, SIGNATURE_SCHEME


def serve_bare(router: zmq.Socket, rounds: int) -> None:
    for _ in range(rounds):
        router.send_multipart(router.recv_multipart(copy=False), copy=False)


def serve_protocol(router: zmq.Socket, session: Session, rounds: int, max_pixels: int) -> None:
    for _ in range(rounds):
        request = session.deserialize(router.recv_multipart(copy=False))
        check_buffers(image_refs(request.content, "colorize_request"), request.buffers, max_pixels)
        content: ColorizeRequest = request.content
        layers = (
            ResultLayer(LayerName.COMBINED, 0, content.sketch),
            ResultLayer(LayerName.FOREGROUND, 0, content.sketch_mask),
        )
        reply = session.msg(Result("bench", "echo", layers, (0,)), request.header, request.buffers, request.identities)
        router.send_multipart(session.serialize(reply, request.scheme or None), copy=False)


def timed(rounds: int, once: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return times


def bench_bare(image: bytes, mask: bytes, rounds: int) -> list[float]:
    ctx: zmq.Context[Any] = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    thread = threading.Thread(target=serve_bare, args=(router, rounds))
    thread.start()

    def once() -> None:
        dealer.send_multipart([b"x", image, mask], copy=False)
        dealer.recv_multipart(copy=False)

    times = timed(rounds, once)
    thread.join()
    router.close(0)
    dealer.close(0)
    ctx.term()
    return times


def bench_protocol(image: bytes, mask: bytes, size: int, rounds: int, key: bytes, scheme: str) -> list[float]:
    ctx: zmq.Context[Any] = zmq.Context()
    authenticator = None
    router = ctx.socket(zmq.ROUTER)
    if key:  # as the server binds with a key: the client must pass the ZAP handshake first
        authenticator = ThreadAuthenticator(ctx)
        authenticator.start()
        passwords = {TRANSPORT_USERNAME.decode(): transport_password(key).decode()}
        authenticator.configure_plain(domain="refcolor", passwords=passwords)
        router.setsockopt(zmq.PLAIN_SERVER, 1)
        router.setsockopt(zmq.ZAP_DOMAIN, b"refcolor")
    port = router.bind_to_random_port("tcp://127.0.0.1")
    thread = threading.Thread(target=serve_protocol, args=(router, Session(key), rounds, size * size))
    thread.start()
    client = Client(f"tcp://127.0.0.1:{port}", key, context=ctx)
    client.session.scheme = scheme
    # The reference names the sketch's buffer, so both paths move exactly the same bytes:
    # the image and the mask, each way.
    att = Attachments()
    sketch = att.add(image, size, size, Layout.RGBA8)
    request = ColorizeRequest(sketch=sketch, reference=sketch, sketch_mask=att.add(mask, size, size, Layout.L8))
    buffers = att.buffers

    def once() -> None:
        reply = client.colorize(request, buffers, timeout=120)
        if len(reply.buffers) != 2 or memoryview(reply.buffers[0]).nbytes != len(image):
            raise RuntimeError("echo came back wrong")

    times = timed(rounds, once)
    thread.join()
    client.close()
    router.close(0)
    if authenticator is not None:
        authenticator.stop()
    ctx.term()
    return times


def sign_speed(image: bytes, mask: bytes, size: int, key: bytes, scheme: str, rounds: int) -> float:
    """Seconds (best of rounds) to sign the request's frames once, alone."""
    session = Session(key, scheme=scheme)
    att = Attachments()
    sketch = att.add(image, size, size, Layout.RGBA8)
    request = ColorizeRequest(sketch=sketch, reference=sketch, sketch_mask=att.add(mask, size, size, Layout.L8))
    frames = session.serialize(session.msg(request, buffers=att.buffers))[2:]
    return min(timed(rounds, lambda: session.sign(frames)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    size, rounds = args.size, args.repeats + 1  # the first round warms up and is dropped
    image = bytes(bytearray(range(256)) * (size * size * 4 // 256))
    mask = bytes(size * size)
    mb = 2 * (len(image) + len(mask)) / 1e6  # both directions

    key = b"0" * 64
    results = {
        "bare": bench_bare(image, mask, rounds)[1:],
        "unsigned": bench_protocol(image, mask, size, rounds, b"", SIGNATURE_SCHEME)[1:],
        "signed": bench_protocol(image, mask, size, rounds, key, SIGNATURE_SCHEME)[1:],
        "hmac": bench_protocol(image, mask, size, rounds, key, LEGACY_SIGNATURE_SCHEME)[1:],
    }
    medians = {name: statistics.median(times) for name, times in results.items()}
    one_way = mb / 2
    signing = {
        scheme: one_way / sign_speed(image, mask, size, key, scheme, rounds)
        for scheme in (SIGNATURE_SCHEME, LEGACY_SIGNATURE_SCHEME)
    }
    print(f"# {size}x{size} RGBA8 + L8 mask, {one_way:.1f} MB each way, median of {args.repeats} round trips")
    print(f"# signed = {SIGNATURE_SCHEME}, hmac = {LEGACY_SIGNATURE_SCHEME} (legacy)")
    for name, median in medians.items():
        print(f"# {name:9s} {median * 1000:8.1f} ms  (min {min(results[name]) * 1000:.1f} ms)")
    print(f"blake3_sign_mb_per_s: {signing[SIGNATURE_SCHEME]:.0f}")
    print(f"hmac_sign_mb_per_s: {signing[LEGACY_SIGNATURE_SCHEME]:.0f}")
    print(f"bare_mb_per_s: {mb / medians['bare']:.0f}")
    print(f"signed_mb_per_s: {mb / medians['signed']:.0f}")
    print(f"hmac_mb_per_s: {mb / medians['hmac']:.0f}")
    print(f"unsigned_mb_per_s: {mb / medians['unsigned']:.0f}")
    print(f"unsigned_ratio: {medians['unsigned'] / medians['bare']:.2f}")
    print(f"hmac_ratio: {medians['hmac'] / medians['bare']:.2f}")
    print(f"signed_ratio: {medians['signed'] / medians['bare']:.2f}")


if __name__ == "__main__":
    main()
