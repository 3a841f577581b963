"""Round trip of a 4096x4096 RGBA8 image plus an L8 mask: refcolor protocol vs bare pyzmq.

Client -> server -> client on tcp loopback. The protocol path is the real one: the client
builds and signs a colorize_request, the server checks frames, signature, JSON, fields and
buffer sizes exactly as `refcolor serve` does, then echoes the two buffers back in a signed
`result`, which the client verifies and matches to its request. The bare path sends the same
bytes through a plain DEALER/ROUTER pair. Prints MB/s for each and the ratios of their times.

Run: .venv/bin/python benchmarks/bench_roundtrip.py [--size 4096] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

import zmq

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
from refcolor_protocol.messages import check_buffers, image_refs


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
        router.send_multipart(session.serialize(reply), copy=False)


def timed(rounds: int, once: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return times


def bench_bare(image: bytes, mask: bytes, rounds: int) -> list[float]:
    ctx = zmq.Context.instance()
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
    return times


def bench_protocol(image: bytes, mask: bytes, size: int, rounds: int, key: bytes) -> list[float]:
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    thread = threading.Thread(target=serve_protocol, args=(router, Session(key), rounds, size * size))
    thread.start()
    client = Client(f"tcp://127.0.0.1:{port}", key)
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
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    size, rounds = args.size, args.repeats + 1  # the first round warms up and is dropped
    image = bytes(bytearray(range(256)) * (size * size * 4 // 256))
    mask = bytes(size * size)
    mb = 2 * (len(image) + len(mask)) / 1e6  # both directions

    results = {
        "bare": bench_bare(image, mask, rounds)[1:],
        "unsigned": bench_protocol(image, mask, size, rounds, b"")[1:],
        "signed": bench_protocol(image, mask, size, rounds, b"0" * 64)[1:],
    }
    medians = {name: statistics.median(times) for name, times in results.items()}
    print(f"# {size}x{size} RGBA8 + L8 mask, {mb / 2:.1f} MB each way, median of {args.repeats} round trips")
    for name, median in medians.items():
        print(f"# {name:9s} {median * 1000:8.1f} ms  (min {min(results[name]) * 1000:.1f} ms)")
    print(f"bare_mb_per_s: {mb / medians['bare']:.0f}")
    print(f"protocol_signed_mb_per_s: {mb / medians['signed']:.0f}")
    print(f"protocol_unsigned_mb_per_s: {mb / medians['unsigned']:.0f}")
    print(f"ratio_signed: {medians['signed'] / medians['bare']:.2f}")
    print(f"ratio_unsigned: {medians['unsigned'] / medians['bare']:.2f}")


if __name__ == "__main__":
    main()
