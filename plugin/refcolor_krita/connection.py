"""The backend connection inside Qt's event loop: no threads, no blocking calls.

:class:`BackendConnection` owns a :class:`refcolor_protocol.Client` and watches its file
descriptors with ``QSocketNotifier``; it says hello, keeps retrying while no backend
answers, can start a local backend (:class:`BackendLauncher`) and stops the one it started.
Everything it learns it reports through Qt signals, as text a user can act on.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QObject, QProcess, QProcessEnvironment, QSocketNotifier, QTimer, pyqtSignal

from refcolor_protocol import Capabilities, Client, Error, Header, Hello, Message
from refcolor_protocol.connection import ConnectionInfo, default_connection_file, read_connection_file

from .settings import Settings

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_MS = 5000
RETRY_MS = 2000
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


class BackendLauncher:
    """Starts ``refcolor serve`` as a child process and stops it again.

    The child is told Krita's process id (``REFCOLOR_PARENT_PID``, which also reaches a custom
    backend command), so it stops by itself when Krita ends, even by a crash.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: QProcess | None = None

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
        return self.process is not None and self.process.state() != QProcess.NotRunning

    def start(self, connection_file: Path) -> str:
        """Start the backend; returns "" or why it could not be started."""
        command = self.command(connection_file)
        if not command:
            return (
                "No backend found to start: set the backend's Python (a venv with refcolor installed) "
                "or command in the settings, or run `refcolor serve` yourself."
            )
        process = QProcess()
        process.setProcessChannelMode(QProcess.ForwardedChannels)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert(PARENT_ENV, str(os.getpid()))
        process.setProcessEnvironment(environment)
        process.start(command[0], command[1:])
        if not process.waitForStarted(5000):
            return f"Could not start the backend ({' '.join(command)}): {process.errorString()}"
        logger.info("started the backend: %s", " ".join(command))
        self.process = process
        return ""

    def stop(self, timeout_ms: int = 10_000) -> None:
        """Stop the backend this launcher started (SIGTERM, then kill); never another one."""
        if not self.running or self.process is None:
            return
        self.process.terminate()
        if not self.process.waitForFinished(timeout_ms):
            self.process.kill()
            self.process.waitForFinished(2000)
        self.process = None


class BackendConnection(QObject):
    """One live connection to a backend, driven by the Qt event loop."""

    status = pyqtSignal(str, bool)  # text for the status line; True when connected
    ready = pyqtSignal(object)  # Capabilities, after each successful hello
    message = pyqtSignal(object)  # every other Message (job events)

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.launcher = BackendLauncher(settings)
        self.client: Client | None = None
        self.capabilities: Capabilities | None = None
        self._hello: Header | None = None
        self._notifiers: list[QSocketNotifier] = []
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.timeout.connect(self.connect_backend)
        self._hello_timer = QTimer(self)
        self._hello_timer.setSingleShot(True)
        self._hello_timer.timeout.connect(self._hello_timed_out)
        self._starts: list[float] = []  # when this connection started a backend (monotonic)
        self._problem = ""  # why there is no connection; shown until one is made
        self._launch_failed = False  # starting a backend failed: that message stays
        # ZeroMQ's fds are edge-triggered; should an edge ever be missed, this low-rate pump
        # still picks the messages up, so a job can never hang waiting for a notification.
        self._safety_pump = QTimer(self)
        self._safety_pump.setInterval(200)
        self._safety_pump.timeout.connect(self.pump)

    # --- connecting ---------------------------------------------------------------------------

    def connect_backend(self) -> None:
        """(Re)connect: find the backend, say hello; retries by itself until one answers."""
        self._close_client()
        info, why = resolve_backend(self.settings)
        if info is None:
            if self.settings.start_backend and self._may_start() and not self.launcher.running:
                self._starts.append(time.monotonic())
                path = (
                    Path(self.settings.connection_file) if self.settings.connection_file else default_connection_file()
                )
                problem = self.launcher.start(path)
                self._launch_failed = bool(problem)
                if problem:
                    self._report(problem)
                else:
                    self.status.emit("Starting the backend…", False)
            elif not self.launcher.running and not self._launch_failed:
                self._report(f"{why} Start one with `refcolor serve`, or say how to start it in the settings (⚙).")
            self._retry.start(500 if self.launcher.running else RETRY_MS)
            return
        self.client = Client.from_info(info, client_name="refcolor-krita", client_version="0.1.0")
        for fd in self.client.fds:
            notifier = QSocketNotifier(fd, QSocketNotifier.Read, self)
            notifier.activated.connect(self.pump)
            self._notifiers.append(notifier)
        self._safety_pump.start()
        self._hello = self.client.send(Hello("refcolor-krita", "0.1.0"))
        self._hello_timer.start(HELLO_TIMEOUT_MS)
        if not self._problem:  # a known problem stays on screen until a connection is made
            self.status.emit(f"Connecting to {info.address}…", False)
        QTimer.singleShot(0, self.pump)

    def _may_start(self) -> bool:
        """Whether starting a backend now stays within MAX_STARTS per START_WINDOW_S."""
        now = time.monotonic()
        self._starts = [t for t in self._starts if now - t < START_WINDOW_S]
        return len(self._starts) < MAX_STARTS

    def _report(self, problem: str) -> None:
        """Say why there is no connection; the text stays until a connection is made."""
        self._problem = problem
        self.status.emit(problem, False)

    def reconfigure(self, settings: Settings) -> None:
        """Use new connection settings: stop a backend this plugin started, and connect afresh."""
        self.close()
        self.settings = settings
        self.launcher = BackendLauncher(settings)
        self._starts = []
        self._problem = ""
        self._launch_failed = False
        self.connect_backend()

    def _hello_timed_out(self) -> None:
        address = self.client.address if self.client else "?"
        self._report(f"No answer from the backend at {address}; retrying every {RETRY_MS // 1000} s…")
        self._retry.start(RETRY_MS)

    def _close_client(self) -> None:
        self._safety_pump.stop()
        for notifier in self._notifiers:
            notifier.setEnabled(False)
            notifier.deleteLater()
        self._notifiers.clear()
        if self.client is not None:
            self.client.close()
        self.client = None
        self.capabilities = None
        self._hello = None

    def close(self) -> None:
        """Disconnect, and stop the backend if this connection started it."""
        self._retry.stop()
        self._hello_timer.stop()
        self._close_client()
        self.launcher.stop()

    @property
    def connected(self) -> bool:
        return self.capabilities is not None

    # --- traffic ------------------------------------------------------------------------------

    def send(self, content: Any, buffers: list[Any] | tuple[Any, ...] = ()) -> Header:
        if self.client is None:
            raise ConnectionError("not connected to a backend")
        header = self.client.send(content, buffers)
        # ZeroMQ's fd is edge-triggered and a send can consume the edge: look right away.
        QTimer.singleShot(0, self.pump)
        return header

    def pump(self, *_: object) -> None:
        """Drain everything readable (called by the notifiers)."""
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
            self._hello_timer.stop()
            self._hello = None
            if isinstance(msg.content, Error):
                self._report(f"The backend refused us: {msg.content.message} ({msg.content.hint})")
                self._retry.start(RETRY_MS)
                return
            self._problem = ""
            self.capabilities = msg.content
            caps: Capabilities = msg.content
            self.status.emit(
                f"Connected: refcolor {caps.server_version}, model {caps.model.name} on {caps.model.device}", True
            )
            self.ready.emit(caps)
            return
        if isinstance(msg.content, Error) and msg.content.code == "connection_lost":
            self.capabilities = None
            address = self.client.address if self.client else "?"
            self._report(
                f"Lost the backend at {address} (it stopped or crashed); reconnecting every {RETRY_MS // 1000} s…"
            )
            self._retry.start(RETRY_MS)
        self.message.emit(msg)
