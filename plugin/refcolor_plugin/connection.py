"""The backend connection's logic, with no event loop of its own, no threads and no blocking calls.

:class:`Connection` owns a :class:`refcolor_protocol.Client`: it finds the backend (an address, or
the connection file), says hello, keeps retrying while no backend answers, may start a local one
(:class:`BackendLauncher`: ``refcolor serve`` as a child process told the app's process id, so it
ends with the app even after a crash) and stops the one it started. Everything it learns goes to
:class:`ConnectionEvents` as text a user can act on.

The app drives it from its own loop: it calls :meth:`Connection.wake` when the client's sockets
(:attr:`Connection.fds`) are readable, and again after the seconds the last call returned. Krita
does it with ``QSocketNotifier`` and a single-shot ``QTimer`` (``refcolor_krita.connection``),
Blender with ``bpy.app.timers``. ZeroMQ's descriptors are edge-triggered, so while a client is
open ``wake`` asks to be called at least every :data:`SAFETY_PUMP_S` as well.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refcolor_protocol import Capabilities, Client, Error, Header, Hello, Message
from refcolor_protocol.connection import ConnectionInfo, default_connection_file, read_connection_file

from .settings import Settings

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 5.0
RETRY_S = 2.0
STARTING_RETRY_S = 0.5  # while a backend this connection started is coming up
SAFETY_PUMP_S = 0.2  # a missed edge of ZeroMQ's descriptors is picked up within this
MAX_STARTS = 3  # backends started within START_WINDOW_S: a backend that dies at once is not restarted forever
START_WINDOW_S = 300.0
PARENT_ENV = "REFCOLOR_PARENT_PID"  # `refcolor serve` stops by itself when this process ends


def resolve_backend(settings: Settings) -> tuple[ConnectionInfo | None, str]:
    """Where to connect: the configured address, else the connection file. Returns (info, why-not)."""
    if settings.address:
        return ConnectionInfo(settings.address, settings.key.encode("ascii")), ""
    path = Path(settings.connection_file) if settings.connection_file else default_connection_file()
    try:
        info = read_connection_file(path)
    except FileNotFoundError:
        return None, f"No backend running (no connection file at {path})."
    except (OSError, ValueError) as exc:
        return None, f"Cannot use the connection file: {exc}"
    if info.backend_gone:  # left by a backend that crashed or was killed: start a new one
        return None, f"No backend running (the one that wrote {path}, pid {info.pid}, has ended)."
    return info, ""


def connection_file(settings: Settings) -> Path:
    return Path(settings.connection_file) if settings.connection_file else default_connection_file()


class BackendLauncher:
    """Starts ``refcolor serve`` as a child process and stops it again (never another one).

    The child is told the app's process id (``REFCOLOR_PARENT_PID``, which also reaches a custom
    backend command), so it stops by itself when the app ends, even by a crash. Its output goes
    where the app's goes.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, connection_file: Path) -> list[str] | None:
        if self.settings.backend_command:
            return shlex.split(self.settings.backend_command)
        tail = ["serve", "--connection-file", str(connection_file)]
        if self.settings.model:
            tail += ["--model", self.settings.model]
        if self.settings.backend_python:
            return [self.settings.backend_python, "-m", "refcolor.cli", *tail]
        found = shutil.which("refcolor")
        return [found, *tail] if found else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, connection_file: Path) -> str:
        """Start the backend; returns "" or why it could not be started."""
        command = self.command(connection_file)
        if not command:
            return (
                "No backend found to start: set the backend's Python (a venv with refcolor installed) "
                "or command in the settings, or run `refcolor serve` yourself."
            )
        environment = {**os.environ, PARENT_ENV: str(os.getpid())}
        try:
            self.process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL)
        except OSError as exc:
            return f"Could not start the backend ({' '.join(command)}): {exc.strerror or exc}"
        logger.info("started the backend: %s", " ".join(command))
        return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the backend this launcher started (SIGTERM, then kill); never another one."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(2.0)


@dataclass
class ConnectionEvents:
    status: Callable[[str, bool], None] = lambda text, connected: None  # the status line; True when connected
    ready: Callable[[Capabilities], None] = lambda caps: None  # after each successful hello
    message: Callable[[Message], None] = lambda msg: None  # every other message (job events)


class Connection:
    """One live connection to a backend, driven by the app's loop through :meth:`wake`."""

    def __init__(
        self,
        settings: Settings,
        events: ConnectionEvents | None = None,
        client_name: str = "refcolor-plugin",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.events = events or ConnectionEvents()
        self.client_name = client_name
        self.clock = clock
        self.launcher = BackendLauncher(settings)
        self.client: Client | None = None
        self.capabilities: Capabilities | None = None
        self._hello: Header | None = None
        self._retry_at: float | None = None  # when to look for a backend again
        self._hello_deadline: float | None = None
        self._starts: list[float] = []  # when this connection started a backend (clock)
        self._problem = ""  # why there is no connection; shown until one is made
        self._launch_failed = False  # starting a backend failed: that message stays

    # --- connecting -------------------------------------------------------------------------------

    def connect(self) -> None:
        """(Re)connect: find the backend, say hello; retries by itself (through :meth:`wake`) until
        one answers."""
        self._close_client()
        self._retry_at = None
        info, why = resolve_backend(self.settings)
        if info is None:
            if self.settings.start_backend and self._may_start() and not self.launcher.running:
                self._starts.append(self.clock())
                problem = self.launcher.start(connection_file(self.settings))
                self._launch_failed = bool(problem)
                if problem:
                    self._report(problem)
                else:
                    self.events.status("Starting the backend…", False)
            elif not self.launcher.running and not self._launch_failed:
                self._report(f"{why} Start one with `refcolor serve`, or say how to start it in the settings (⚙).")
            self._retry_in(STARTING_RETRY_S if self.launcher.running else RETRY_S)
            return
        self.client = Client.from_info(info, client_name=self.client_name, client_version="0.1.0")
        self._hello = self.client.send(Hello(self.client_name, "0.1.0"))
        self._hello_deadline = self.clock() + HELLO_TIMEOUT_S
        if not self._problem:  # a known problem stays on screen until a connection is made
            self.events.status(f"Connecting to {info.address}…", False)

    def _may_start(self) -> bool:
        """Whether starting a backend now stays within MAX_STARTS per START_WINDOW_S."""
        now = self.clock()
        self._starts = [t for t in self._starts if now - t < START_WINDOW_S]
        return len(self._starts) < MAX_STARTS

    def _retry_in(self, seconds: float) -> None:
        self._retry_at = self.clock() + seconds

    def _report(self, problem: str) -> None:
        """Say why there is no connection; the text stays until a connection is made."""
        self._problem = problem
        self.events.status(problem, False)

    def reconfigure(self, settings: Settings) -> None:
        """Use new connection settings: stop a backend this connection started, and connect afresh."""
        self.close()
        self.settings = settings
        self.launcher = BackendLauncher(settings)
        self._starts = []
        self._problem = ""
        self._launch_failed = False
        self.connect()

    def _close_client(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None
        self.capabilities = None
        self._hello = None
        self._hello_deadline = None

    def close(self) -> None:
        """Disconnect, and stop the backend if this connection started it."""
        self._retry_at = None
        self._close_client()
        self.launcher.stop()

    @property
    def connected(self) -> bool:
        return self.capabilities is not None

    @property
    def fds(self) -> list[Any]:
        """The descriptors to watch for reading (none while there is no client)."""
        return list(self.client.fds) if self.client is not None else []

    # --- driving it -------------------------------------------------------------------------------

    def wake(self) -> float | None:
        """Do what is due: read every message there is, give up on a hello that went unanswered, look
        for a backend again. Returns the seconds until it is next due (None: nothing is; the app
        still calls it when the sockets are readable)."""
        self.pump()
        now = self.clock()
        if self._hello_deadline is not None and now >= self._hello_deadline:
            self._hello_deadline = None
            address = self.client.address if self.client else "?"
            self._report(f"No answer from the backend at {address}; retrying every {RETRY_S:g} s…")
            self._retry_in(RETRY_S)
        if self._retry_at is not None and self.clock() >= self._retry_at:
            self.connect()
        due = [t - self.clock() for t in (self._retry_at, self._hello_deadline) if t is not None]
        if self.client is not None:
            due.append(SAFETY_PUMP_S)
        return max(0.0, min(due)) if due else None

    def send(self, content: Any, buffers: list[Any] | tuple[Any, ...] = ()) -> Header:
        """Send a message. ZeroMQ's descriptor is edge-triggered and a send can consume the edge:
        the app calls :meth:`wake` right after (its adapter does).

        Raises:
            ConnectionError: there is no backend to send to.
        """
        if self.client is None:
            raise ConnectionError("not connected to a backend")
        return self.client.send(content, buffers)

    def pump(self) -> None:
        """Drain everything readable."""
        if self.client is None:
            return
        for msg in self.client.poll_events():
            # One handler's failure must not drop the messages drained with it (a job's result
            # would be lost and the job would wait forever): log it and go on.
            try:
                self._dispatch(msg)
            except Exception:
                logger.exception("handling a %s message from the backend failed", msg.msg_type)

    def _dispatch(self, msg: Message) -> None:
        if self._hello is not None and msg.parent_id == self._hello.msg_id:
            self._hello_deadline = None
            self._hello = None
            if isinstance(msg.content, Error):
                self._report(f"The backend refused us: {msg.content.message} ({msg.content.hint})")
                self._retry_in(RETRY_S)
                return
            self._problem = ""
            caps: Capabilities = msg.content
            self.capabilities = caps
            self.events.status(
                f"Connected: refcolor {caps.server_version}, model {caps.model.name} on {caps.model.device}", True
            )
            self.events.ready(caps)
            return
        if isinstance(msg.content, Error) and msg.content.code == "connection_lost":
            self.capabilities = None
            address = self.client.address if self.client else "?"
            self._report(f"Lost the backend at {address} (it stopped or crashed); reconnecting every {RETRY_S:g} s…")
            self._retry_in(RETRY_S)
        self.events.message(msg)
