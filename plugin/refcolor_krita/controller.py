"""The colorize flow, independent of Krita and Qt: read → request → progress → layers.

The docker calls :meth:`ColorizeController.colorize` and :meth:`cancel`, and feeds it every
message from the backend with :meth:`handle`. Reading the document and writing results go
through a :class:`DocumentAccess` (Krita's in ``document.py``, a fake in tests); messages go
out through ``send``. The user's layers are only ever read: results go into new groups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from refcolor_protocol import Cancel, ColorizeParams, ErrorCode, Header, Message, Progress

from .jobs import Snapshot, VariationLayers, build_request, result_layers
from .masks import MaskSource
from .pixels import Pixels, PluginError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    """What the user picked in the docker. Layers are opaque handles of the DocumentAccess."""

    line_art: Any
    reference: Any  # a layer handle, or a file path (str)
    sketch_mask: MaskSource = MaskSource.NONE
    reference_mask: MaskSource = MaskSource.NONE
    background: Any = None  # a layer handle, a file path, or None
    replace_previous: bool = False


class DocumentAccess(Protocol):
    def snapshot(self, inputs: Inputs) -> tuple[Snapshot, Any]:
        """Read the inputs; returns them and a target handle saying where results go.

        Raises:
            PluginError: something the user can fix (no line-art layer, unsupported depth, ...).
        """
        ...

    def document_size(self, target: Any) -> tuple[int, int]: ...

    def add_results(self, target: Any, layers: list[VariationLayers], replace_previous: bool) -> list[str]:
        """Add one group per variation below the line art; returns the group names."""
        ...


class State(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"


@dataclass
class _PendingJob:
    header: Header
    target: Any
    size: tuple[int, int]
    replace_previous: bool
    cancelling: bool = False


@dataclass
class Callbacks:
    state: Callable[[State], None] = lambda state: None
    progress: Callable[[int, int], None] = lambda step, total: None
    preview: Callable[[Pixels], None] = lambda pixels: None
    done: Callable[[list[str]], None] = lambda names: None
    failed: Callable[[str], None] = lambda message: None


class ColorizeController:
    def __init__(
        self,
        documents: DocumentAccess,
        send: Callable[[object, list[object]], Header],
        callbacks: Callbacks | None = None,
    ) -> None:
        self.documents = documents
        self.send = send
        self.callbacks = callbacks or Callbacks()
        self.job: _PendingJob | None = None

    @property
    def state(self) -> State:
        if self.job is None:
            return State.IDLE
        return State.CANCELLING if self.job.cancelling else State.RUNNING

    def colorize(self, inputs: Inputs, params: ColorizeParams, model: str = "") -> None:
        """Start a job (``model`` "": the backend's default). Errors the user can fix go to
        ``callbacks.failed``; nothing is raised."""
        if self.job is not None:
            self.callbacks.failed("a colorization is already running; cancel it or wait for it")
            return
        try:
            snapshot, target = self.documents.snapshot(inputs)
            request, buffers = build_request(snapshot, params, model)
        except PluginError as exc:
            self.callbacks.failed(str(exc))
            return
        header = self.send(request, buffers)
        self.job = _PendingJob(header, target, snapshot.sketch.size, inputs.replace_previous)
        self.callbacks.state(State.RUNNING)
        self.callbacks.progress(0, params.steps * params.variations)

    def cancel(self) -> None:
        if self.job is None:
            return
        self.send(Cancel(self.job.header.msg_id), [])
        self.job.cancelling = True
        self.callbacks.state(State.CANCELLING)

    def handle(self, msg: Message) -> None:
        """Route one backend message; messages of other requests are ignored."""
        job = self.job
        if job is None or msg.parent_id != job.header.msg_id:
            return
        if isinstance(msg.content, Progress):
            self.callbacks.progress(msg.content.step, msg.content.total)
            ref = msg.content.preview
            if ref is not None:
                self.callbacks.preview(
                    Pixels(bytes(memoryview(msg.buffers[ref.buffer])), ref.width, ref.height, ref.layout)
                )
        elif msg.msg_type == "result":
            self._finish()
            try:
                layers = result_layers(msg, job.size)
                names = self.documents.add_results(job.target, layers, job.replace_previous)
            except PluginError as exc:
                self.callbacks.failed(str(exc))
                return
            except Exception as exc:  # never a traceback dialog: say it in the docker, log the rest
                logger.exception("adding the result layers failed")
                self.callbacks.failed(f"Could not add the result layers: {type(exc).__name__}: {exc}")
                return
            # With an automatic seed, the seed is how the artist gets this result again.
            self.callbacks.done([f"{name} (seed {layer.seed})" for name, layer in zip(names, layers, strict=False)])
        elif msg.msg_type == "error":
            self._finish()
            error = msg.content
            if error.code == ErrorCode.CANCELLED.value:
                self.callbacks.failed("Cancelled: the document was not changed.")
            else:
                hint = f" ({error.hint})" if error.hint else ""
                self.callbacks.failed(f"{error.message}{hint}")

    def _finish(self) -> None:
        self.job = None
        self.callbacks.state(State.IDLE)
