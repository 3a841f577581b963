"""Helpers for the integration tests: images, requests, servers in threads and processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from refcolor.service.config import ServerConfig
from refcolor.service.server import Server
from refcolor_protocol import Attachments, Client, ColorizeParams, ColorizeRequest, Layout, Message, Progress
from refcolor_protocol.connection import TRANSPORT_USERNAME, new_key, read_connection_file, transport_password

REFCOLOR = [sys.executable, "-m", "refcolor.cli"]
REFCOLOR_WITH_TEST_MODELS = [sys.executable, str(Path(__file__).with_name("serve_test_models.py"))]


def raw_dealer(address: str, key: bytes = b"", timeout_ms: int = 10_000, **options: int | bytes) -> zmq.Socket:
    """A bare DEALER connected to ``address`` (through the ZAP handshake when ``key`` is given), for
    hand-made frames the client library would not send. ``options``: more socket options by name."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name.upper()), value)  # type: ignore[arg-type]
    if key:
        sock.setsockopt(zmq.PLAIN_USERNAME, TRANSPORT_USERNAME)
        sock.setsockopt(zmq.PLAIN_PASSWORD, transport_password(key))
    sock.connect(address)
    return sock


def grid_sketch(width: int, height: int, cell: int = 32) -> np.ndarray:
    """White RGBA8 page with a black grid: (H, W, 4) uint8, closed square regions."""
    sketch = np.full((height, width, 4), 255, np.uint8)
    sketch[::cell, :, :3] = 0
    sketch[:, ::cell, :3] = 0
    return sketch


def solid(width: int, height: int, rgb: tuple[int, int, int], alpha: int = 255) -> np.ndarray:
    image = np.empty((height, width, 4), np.uint8)
    image[..., :3] = rgb
    image[..., 3] = alpha
    return image


def box_mask(width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """L8 mask, 255 inside (x0, y0, x1, y1)."""
    mask = np.zeros((height, width), np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    return mask


def line_art_layer(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A line-art layer as a paint app has it (black lines on transparency whose colour channels are
    black too): a character's closed outline with a detail inside; and the character's mask."""
    import cv2

    centre, axes = (width // 2, round(height * 0.52)), (round(width * 0.26), round(height * 0.38))
    layer = np.zeros((height, width, 4), np.uint8)
    cv2.ellipse(layer, centre, axes, 0, 0, 360, (0, 0, 0, 255), 2)
    start, end = (centre[0] - axes[0] // 2, centre[1] - 16), (centre[0] + axes[0] // 2, centre[1] + 14)
    cv2.line(layer, start, end, (0, 0, 0, 255), 2)
    truth = np.zeros((height, width), np.uint8)
    cv2.ellipse(truth, centre, axes, 0, 0, 360, 255, -1)
    return layer, truth


def flat_reference(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A flattened reference (opaque RGBA, as a JPEG reads): a red character with a pale face on a
    busy green field; and the character's mask."""
    import cv2

    ys, xs = np.mgrid[0:height, 0:width]
    image = np.dstack([60 + 50 * np.sin(xs / 17.0), 150 + 30 * np.cos(ys / 13.0), 90 + 0 * xs]).astype(np.uint8)
    truth = np.zeros((height, width), np.uint8)
    centre, axes = (width // 2, round(height * 0.52)), (round(width * 0.22), round(height * 0.37))
    cv2.ellipse(truth, centre, axes, 0, 0, 360, 255, -1)
    image[truth > 0] = (230, 40, 50)
    cv2.circle(image, (width // 2, round(height * 0.28)), 16, (250, 215, 180), -1)
    return np.dstack([image, np.full((height, width), 255, np.uint8)]), truth


def build_request(
    sketch: np.ndarray,
    reference: np.ndarray,
    sketch_mask: np.ndarray | None = None,
    reference_mask: np.ndarray | None = None,
    sketch_layout: Layout = Layout.RGBA8,
    model: str = "",
    **params: object,
) -> tuple[ColorizeRequest, list[object]]:
    att = Attachments()
    if sketch_layout is Layout.BGRA8:
        sketch = np.ascontiguousarray(sketch[..., [2, 1, 0, 3]])
    sk = att.add(sketch.tobytes(), sketch.shape[1], sketch.shape[0], sketch_layout)
    ref = att.add(reference.tobytes(), reference.shape[1], reference.shape[0], Layout.RGBA8)
    sm = (
        None
        if sketch_mask is None
        else att.add(sketch_mask.tobytes(), sketch_mask.shape[1], sketch_mask.shape[0], Layout.L8)
    )
    rm = None
    if reference_mask is not None:
        rm = att.add(reference_mask.tobytes(), reference_mask.shape[1], reference_mask.shape[0], Layout.L8)
    request = ColorizeRequest(
        sketch=sk, reference=ref, sketch_mask=sm, reference_mask=rm, params=ColorizeParams(**params), model=model
    )
    return request, att.buffers


def result_layers(msg: Message) -> dict[tuple[str, int], np.ndarray]:
    """(name, variation) -> (H, W, 4) uint8 from a result message."""
    layers = {}
    for layer in msg.content.layers:
        ref = layer.image
        pixels = np.frombuffer(msg.buffers[ref.buffer], np.uint8).reshape(ref.height, ref.width, 4)
        layers[(layer.name.value, layer.variation)] = pixels
    return layers


def short_ipc_address() -> str:
    """ipc:// paths must be short (about 100 bytes), so not under pytest's tmp_path."""
    folder = tempfile.mkdtemp(prefix="rc-", dir="/tmp")
    return f"ipc://{folder}/backend.sock"


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ThreadServer:
    """A real server on real sockets, run in a thread of the test process."""

    def __init__(self, config: ServerConfig) -> None:
        self.server = Server(config)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return self.server.address

    def client(self, **kwargs: object) -> Client:
        return Client(self.address, self.server.config.key, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(timeout=30)
        if self.thread.is_alive():
            raise RuntimeError("the server thread did not stop within 30 s")


@dataclass
class ServerProcess:
    """``refcolor serve`` in its own process."""

    process: subprocess.Popen[bytes]
    connection_file: Path
    log: Path

    @classmethod
    def start(
        cls,
        folder: Path,
        *args: str,
        bind: str = "tcp://127.0.0.1:0",
        timeout: float = 60,
        command: list[str] = REFCOLOR,
        keep_connection_file: bool = False,
    ) -> ServerProcess:
        """``command serve --bind ... --connection-file folder/backend.json *args``, once its
        connection file is there (``command``: REFCOLOR_WITH_TEST_MODELS for broken_models'). A
        connection file already there is removed first unless ``keep_connection_file``."""
        folder.mkdir(parents=True, exist_ok=True)
        connection_file = folder / "backend.json"
        left = connection_file.read_bytes() if keep_connection_file and connection_file.exists() else None
        if not keep_connection_file:
            connection_file.unlink(missing_ok=True)
        log = folder / f"serve-{time.monotonic_ns()}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [*command, "serve", "--bind", bind, "--connection-file", str(connection_file), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = cls(process, connection_file, log)
        deadline = time.monotonic() + timeout
        while not connection_file.exists() or (left is not None and connection_file.read_bytes() == left):
            if process.poll() is not None:
                raise RuntimeError(f"refcolor serve exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"refcolor serve did not start within {timeout} s:\n{log.read_text()}")
            time.sleep(0.05)
        return server

    @property
    def pid(self) -> int:
        return self.process.pid

    def client(self, **kwargs: object) -> Client:
        info = read_connection_file(self.connection_file)
        return Client(info.address, info.key, **kwargs)  # type: ignore[arg-type]

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def run_client_job(address: str, key: bytes, rgb: tuple[int, int, int], results: object) -> None:
    """In a separate process: colorize with a solid reference, report the colours that came back."""
    reference = solid(40, 40, rgb)
    request, buffers = build_request(grid_sketch(160, 120), reference, steps=5, seed=1, mode="plain")
    with Client(address, key) as client:
        result = client.colorize(request, buffers, timeout=120)
    combined = result_layers(result)[("combined", 0)]
    colours = {tuple(int(c) for c in px) for px in combined[..., :3].reshape(-1, 3)}
    results.put((rgb, sorted(colours)))  # type: ignore[attr-defined]


def submit_and_vanish(address: str, key: bytes) -> None:
    """In a separate process: start a long job, wait until it runs, then die without a word."""
    reference = np.random.default_rng(0).integers(0, 256, (1024, 1024, 4), dtype=np.uint8)
    request, buffers = build_request(grid_sketch(256, 256), reference, steps=200, seed=1)
    client = Client(address, key)
    header = client.send(request, buffers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for msg in client.poll_events():
            if msg.parent_id == header.msg_id and msg.msg_type == "progress" and msg.content.step >= 2:
                os._exit(0)
        time.sleep(0.01)
    os._exit(3)


def thread_server(**overrides: object) -> ThreadServer:
    config = {"bind": "tcp://127.0.0.1:0", "key": new_key(), "model": "classical", **overrides}
    return ThreadServer(ServerConfig(**config))  # type: ignore[arg-type]


def wait_for_step(client: Client, job_id: str, step: int, timeout: float = 60) -> list[int]:
    """Poll until the job reports ``step``; returns the steps seen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for msg in client.poll_events():
            if msg.parent_id == job_id and isinstance(msg.content, Progress):
                seen.append(msg.content.step)
                if msg.content.step >= step:
                    return seen
        time.sleep(0.005)
    raise AssertionError(f"job {job_id} did not reach step {step} in {timeout} s (saw {seen})")
