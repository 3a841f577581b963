"""The plugins' shared backend connection (refcolor_plugin.connection) against real backends, driven
as an app's loop drives it: wake() when it asked to be woken."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugin"))

from refcolor_plugin.connection import HELLO_TIMEOUT_S, Connection, ConnectionEvents
from refcolor_plugin.settings import Settings

pytestmark = pytest.mark.timeout(180)


class Seen:
    def __init__(self) -> None:
        self.statuses: list[tuple[str, bool]] = []
        self.ready: list[object] = []

    def events(self) -> ConnectionEvents:
        return ConnectionEvents(status=lambda text, ok: self.statuses.append((text, ok)), ready=self.ready.append)


def drive(connection: Connection, until: Callable[[], bool], timeout_s: float = 60) -> None:
    """An app's loop: wake the connection when it asks (at most every 50 ms here, as a socket would)."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "the connection did not get there in time"
        delay = connection.wake()
        time.sleep(min(0.05, delay if delay is not None else 0.05))


def test_no_backend_is_said_and_retried_without_an_exception(tmp_path: Path) -> None:
    seen = Seen()
    settings = Settings(connection_file=str(tmp_path / "none.json"), start_backend=False)
    connection = Connection(settings, seen.events())
    connection.connect()
    delay = connection.wake()
    assert delay is not None and 1.0 < delay <= 2.0  # it looks again in 2 s
    (text, ok), *_ = seen.statuses
    assert not ok and text.startswith(f"No backend running (no connection file at {tmp_path / 'none.json'})")
    assert "Start one with `refcolor serve`" in text and not connection.connected
    with pytest.raises(ConnectionError, match="not connected"):
        connection.send(object())


def test_connects_reconnects_after_a_crash_and_names_the_model(tmp_path: Path) -> None:
    server = ServerProcess.start(tmp_path / "backend", "--model", "classical")
    seen = Seen()
    connection = Connection(Settings(connection_file=str(server.connection_file), start_backend=False), seen.events())
    try:
        connection.connect()
        drive(connection, lambda: connection.connected)
        assert seen.statuses[-1][1] and "model classical" in seen.statuses[-1][0]
        assert len(seen.ready) == 1 and connection.fds
        server.kill()  # a crash: the client notices the connection is gone
        drive(connection, lambda: not connection.connected)
        assert seen.statuses[-1][0].startswith("Lost the backend at") and not seen.statuses[-1][1]
        server = ServerProcess.start(tmp_path / "backend", "--model", "classical")
        drive(connection, lambda: connection.connected)  # retried by itself
        assert len(seen.ready) == 2
    finally:
        connection.close()
        server.kill()


def test_a_stale_connection_file_starts_a_backend_that_stops_with_the_connection(tmp_path: Path) -> None:
    dead = ServerProcess.start(tmp_path / "backend", "--model", "classical")
    dead.kill()  # its connection file stays, naming a process that has ended
    seen = Seen()
    settings = Settings(
        connection_file=str(dead.connection_file), backend_python=sys.executable, model="classical", start_backend=True
    )
    connection = Connection(settings, seen.events())
    try:
        connection.connect()
        assert ("Starting the backend…", False) in seen.statuses
        drive(connection, lambda: connection.connected, timeout_s=120)
        process = connection.launcher.process
        assert process is not None and process.poll() is None
        assert "model classical" in seen.statuses[-1][0]
    finally:
        connection.close()
    assert process.poll() is not None  # the backend it started has stopped


def test_a_hello_without_answer_is_given_up_and_retried(tmp_path: Path) -> None:
    now = [0.0]
    seen = Seen()
    # An address where nothing answers: ZeroMQ connects lazily, so only the hello's deadline tells.
    settings = Settings(address="tcp://127.0.0.1:9", key="", start_backend=False)
    connection = Connection(settings, seen.events(), clock=lambda: now[0])
    connection.connect()
    assert connection.wake() == pytest.approx(0.2)  # the safety pump while a client is open
    now[0] += HELLO_TIMEOUT_S
    connection.wake()
    assert seen.statuses[-1] == ("No answer from the backend at tcp://127.0.0.1:9; retrying every 2 s…", False)
    connection.close()
