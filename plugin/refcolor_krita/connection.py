"""The backend connection inside Qt's event loop: no threads, no blocking calls.

:class:`BackendConnection` drives the shared :class:`refcolor_plugin.connection.Connection` (finding
the backend, hello, retries, starting a local backend and stopping it) from Qt: a
``QSocketNotifier`` per client descriptor and a single-shot ``QTimer`` for whatever is due next call
its ``wake``. What the connection learns comes out as Qt signals.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QObject, QSocketNotifier, QTimer, pyqtSignal

from refcolor_plugin.connection import BackendLauncher, Connection, ConnectionEvents
from refcolor_plugin.settings import Settings
from refcolor_protocol import Capabilities, Client, Header


class BackendConnection(QObject):
    """One live connection to a backend, driven by the Qt event loop."""

    status = pyqtSignal(str, bool)  # text for the status line; True when connected
    ready = pyqtSignal(object)  # Capabilities, after each successful hello
    message = pyqtSignal(object)  # every other Message (job events)

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        events = ConnectionEvents(self.status.emit, self.ready.emit, self.message.emit)
        self.core = Connection(settings, events, client_name="refcolor-krita")
        self._notifiers: list[QSocketNotifier] = []
        self._watched: Client | None = None  # the client the notifiers watch
        self._due = QTimer(self)
        self._due.setSingleShot(True)
        self._due.timeout.connect(self.wake)

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def launcher(self) -> BackendLauncher:
        return self.core.launcher

    @property
    def capabilities(self) -> Capabilities | None:
        return self.core.capabilities

    @property
    def connected(self) -> bool:
        return self.core.connected

    def connect_backend(self) -> None:
        """(Re)connect: find the backend, say hello; retries by itself until one answers."""
        self.core.connect()
        self.wake()

    def reconfigure(self, settings: Settings) -> None:
        """Use new connection settings: stop a backend this plugin started, and connect afresh."""
        self.core.reconfigure(settings)
        self.wake()

    def close(self) -> None:
        """Disconnect, and stop the backend if this connection started it."""
        self._due.stop()
        self.core.close()
        self._watch()

    def send(self, content: Any, buffers: list[Any] | tuple[Any, ...] = ()) -> Header:
        header = self.core.send(content, buffers)
        # ZeroMQ's fd is edge-triggered and a send can consume the edge: look right away.
        QTimer.singleShot(0, self.wake)
        return header

    def wake(self, *_: object) -> None:
        """Let the connection do what is due (called by the notifiers and the timer)."""
        delay = self.core.wake()
        self._watch()
        if delay is None:
            self._due.stop()
        else:
            self._due.start(round(delay * 1000))

    def _watch(self) -> None:
        """Notifiers on the current client's descriptors (new ones when the client changed)."""
        if self.core.client is self._watched:
            return
        for notifier in self._notifiers:
            notifier.setEnabled(False)
            notifier.deleteLater()
        self._notifiers.clear()
        self._watched = self.core.client
        for fd in self.core.fds:
            notifier = QSocketNotifier(fd, QSocketNotifier.Read, self)
            notifier.activated.connect(self.wake)
            self._notifiers.append(notifier)
