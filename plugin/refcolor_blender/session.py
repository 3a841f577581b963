"""The add-on's one backend connection and its jobs, and what the panels show (plain Python).

Blender has no socket notifier: ``ui`` registers :meth:`Session.tick` with ``bpy.app.timers``, and
the value it returns is when to be called again (often while a job runs, seldom when idle). No
thread is involved, so everything that touches ``bpy`` (the :class:`Documents` given) runs in
Blender's main loop. A still goes through the shared ``ColorizeController``, frames through the
shared ``ShotController``; results arrive as RGBA8, Blender's byte order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from refcolor_plugin.connection import Connection, ConnectionEvents
from refcolor_plugin.controller import Callbacks, ColorizeController, ComputedMasks, DocumentAccess, Inputs, State
from refcolor_plugin.frames import FrameRange, ShotAccess, ShotCallbacks, ShotController, ShotState
from refcolor_plugin.pixels import PluginError, sentence
from refcolor_plugin.settings import Settings
from refcolor_protocol import ColorizeParams, Header, Layout

logger = logging.getLogger(__name__)

BUSY_S = 0.05  # how often the timer runs while a job is in flight
IDLE_S = 0.5  # and otherwise (the connection asks for less when it retries or waits for a hello)


class Documents(DocumentAccess, ShotAccess, Protocol):
    """Blender's side (``scene.BlenderDocuments``): reads images and drawings, places results."""


@dataclass
class View:
    """What the panels show; the session keeps it current."""

    connection: str = "Not connected"
    connected: bool = False
    running: bool = False
    cancelling: bool = False
    progress: float = 0.0  # 0–1 over the job (or the shot)
    stage: str = ""  # what the job is doing now
    message: str = ""  # how the last job ended, or what went wrong
    failed: bool = False


class Session:
    """One connection, one job at a time (a still or a shot)."""

    def __init__(
        self,
        settings: Settings,
        documents: Documents,
        redraw: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.view = View()
        self.redraw = redraw
        self.documents = documents
        self._mask_words: list[str] = []  # the images the last job's computed masks went to
        self.connection = Connection(
            settings,
            ConnectionEvents(status=self._connection_status, message=self._message),
            client_name="refcolor-blender",
            clock=clock,
        )
        self.still = ColorizeController(
            documents,
            self._send,
            Callbacks(
                state=self._state,
                progress=self._progress,
                stage=self._stage,
                done=self._done,
                failed=self._failed,
                masks=self._masks,
            ),
            layout=Layout.RGBA8,
        )
        self.shots = ShotController(
            documents,
            self._send,
            ShotCallbacks(
                state=self._shot_state,
                progress=self._progress,
                stage=self._stage,
                done=self._done,
                failed=self._failed,
            ),
            layout=Layout.RGBA8,
        )

    # --- driving it -------------------------------------------------------------------------------

    def start(self) -> None:
        """Look for a backend (and start one when the settings say so); :meth:`tick` goes on from there."""
        self.connection.connect()

    def tick(self) -> float:
        """Read what the backend sent and do what is due; returns the seconds until the next call."""
        due = self.connection.wake()
        pause = BUSY_S if self.busy else IDLE_S
        return pause if due is None else max(0.01, min(due, pause))

    def close(self) -> None:
        """Disconnect, and stop the backend if this session started it (Blender quits, the add-on is
        disabled)."""
        self.connection.close()

    def reconfigure(self, settings: Settings) -> None:
        self.connection.reconfigure(settings)

    @property
    def busy(self) -> bool:
        return self.still.state is not State.IDLE or self.shots.state is not ShotState.IDLE

    # --- jobs -------------------------------------------------------------------------------------

    def _ready(self) -> bool:
        if self.busy:
            self._failed("a colorization is running: cancel it or wait for it")
            return False
        if not self.connection.connected:
            self._failed(f"not connected to a backend: {self.view.connection}")
            return False
        self.view.message, self.view.failed = "", False
        return True

    def colorize(self, inputs: Inputs, params: ColorizeParams) -> None:
        """Colorize one picture (an image, or a Grease Pencil drawing at the current frame)."""
        if not self._ready():
            return
        caps = self.connection.capabilities
        assert caps is not None
        self.still.colorize(inputs, params, self.connection.settings.model, caps.auto_masks)

    def colorize_frames(self, inputs: Inputs, params: ColorizeParams, frames: FrameRange) -> None:
        """Colorize a drawing's keyframes in ``frames``, carrying colours from frame to frame."""
        if not self._ready():
            return
        caps = self.connection.capabilities
        assert caps is not None
        self.shots.start(
            inputs, params, frames, self.connection.settings.model, caps.auto_masks, carry=caps.carry_colors
        )

    def cancel(self) -> None:
        if self.shots.shot is not None:
            self.shots.cancel()
        else:
            self.still.cancel()

    # --- what the backend and the controllers say -------------------------------------------------

    def _send(self, content: object, buffers: list[Any]) -> Header:
        return self.connection.send(content, buffers)

    def _message(self, msg: Any) -> None:
        self.still.handle(msg)
        self.shots.handle(msg)

    def _connection_status(self, text: str, connected: bool) -> None:
        self.view.connection, self.view.connected = text, connected
        if not connected and self.busy:  # the backend went away mid-job: the job is lost
            logger.warning("the backend connection was lost during a job: %s", text)
        self.redraw()

    def _state(self, state: State) -> None:
        self.view.running = state is not State.IDLE
        self.view.cancelling = state is State.CANCELLING
        if state is State.CANCELLING:
            self.view.stage = "Cancelling…"
        self.redraw()

    def _shot_state(self, state: ShotState) -> None:
        self.view.running = state is not ShotState.IDLE
        self.view.cancelling = state in (ShotState.STOPPING, ShotState.CANCELLING)
        self.redraw()

    def _progress(self, step: int, total: int) -> None:
        self.view.progress = step / total if total else 0.0
        self.redraw()

    def _stage(self, text: str, busy: bool) -> None:
        self.view.stage = text
        self.redraw()

    def _masks(self, computed: ComputedMasks) -> None:
        """The masks the backend found become images the artist can correct (Blender's "Use as
        selection")."""
        try:
            self._mask_words = self.documents.use_as_selection(computed).words
        except PluginError as exc:
            logger.warning("the computed masks could not be kept: %s", exc)

    def _done(self, names: list[str], where: str) -> None:
        message = f"Done: {', '.join(names)} {where}."
        if self._mask_words:
            message += (
                f" The masks found are {' and '.join(self._mask_words)}: paint them right and pick them as "
                "“An image” to correct them."
            )
            self._mask_words = []
        self.view.message, self.view.failed = sentence(message), False
        self.view.stage, self.view.progress = "", 0.0
        self.redraw()

    def _failed(self, message: str) -> None:
        self.view.message, self.view.failed = sentence(message), True
        self.view.stage, self.view.progress = "", 0.0
        self.redraw()
