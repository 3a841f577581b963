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

from refcolor_protocol import Cancel, ColorizeParams, ErrorCode, Header, Layout, MaskName, Message, Progress, Stage

from .jobs import Snapshot, VariationLayers, build_request, result_layers, result_masks
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


@dataclass(frozen=True)
class Placement:
    """Where a job's result groups went."""

    names: list[str]
    where: str  # in words, for the status: "below “line art”", ...


@dataclass(frozen=True)
class MadeSelections:
    """What "Use as selection" did: which masks became selections, and that in words."""

    made: frozenset[MaskName]
    words: list[str]


@dataclass(frozen=True)
class ComputedMasks:
    """The masks the backend found for a job ("Automatic"), with what the job read and where its
    result went: enough to show them and to turn them into selections."""

    inputs: Inputs
    target: Any
    masks: dict[MaskName, Pixels]


class DocumentAccess(Protocol):
    def snapshot(self, inputs: Inputs) -> tuple[Snapshot, Any]:
        """Read the inputs; returns them and a target handle saying where results go.

        Raises:
            PluginError: something the user can fix (no line-art layer, unsupported depth, ...).
        """
        ...

    def document_size(self, target: Any) -> tuple[int, int]: ...

    def add_results(self, target: Any, layers: list[VariationLayers], replace_previous: bool) -> Placement:
        """Add one group per variation next to the line art; says where they went."""
        ...

    def discard(self, target: Any) -> None:
        """The job of ``target`` ended without a result (failed, cancelled)."""
        ...

    def use_as_selection(self, computed: ComputedMasks) -> MadeSelections:
        """Make computed masks selections the artist can correct: the line-art mask the selection of
        the document the result went to, the reference mask a selection mask on a reference layer.

        Raises:
            PluginError: the document or layer has gone.
        """
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
    inputs: Inputs
    cancelling: bool = False
    started: bool = False  # the backend has said it started


@dataclass
class Callbacks:
    state: Callable[[State], None] = lambda state: None
    progress: Callable[[int, int], None] = lambda step, total: None
    # what the job is doing, in words; ``busy``: a stage without steps (the bar just moves)
    stage: Callable[[str, bool], None] = lambda text, busy: None
    preview: Callable[[Pixels], None] = lambda pixels: None
    done: Callable[[list[str], str], None] = lambda names, where: None
    failed: Callable[[str], None] = lambda message: None
    masks: Callable[[ComputedMasks], None] = lambda computed: None  # before done, when the backend found some


STAGE_TEXT = {
    Stage.ENCODING: "Encoding the sketch and the reference…",
    Stage.UPSAMPLING: "Bringing the colours to full resolution…",
    Stage.FINISHING: "Finishing the colours at full resolution…",
    Stage.LAYERS: "Building the result layers…",
}


class ColorizeController:
    def __init__(
        self,
        documents: DocumentAccess,
        send: Callable[[object, list[object]], Header],
        callbacks: Callbacks | None = None,
        layout: Layout = Layout.BGRA8,
    ) -> None:
        self.documents = documents
        self.send = send
        self.callbacks = callbacks or Callbacks()
        self.layout = layout  # of the result layers handed to the document: BGRA8 (Krita) or RGBA8
        self.job: _PendingJob | None = None

    @property
    def state(self) -> State:
        if self.job is None:
            return State.IDLE
        return State.CANCELLING if self.job.cancelling else State.RUNNING

    def colorize(
        self, inputs: Inputs, params: ColorizeParams, model: str = "", can_compute: tuple[str, ...] | None = None
    ) -> None:
        """Start a job (``model`` "": the backend's default; ``can_compute``: the masks the backend
        can find, None: not known). Errors the user can fix go to ``callbacks.failed``; nothing is
        raised."""
        if self.job is not None:
            self.callbacks.failed("a colorization is already running; cancel it or wait for it")
            return
        self.callbacks.stage("Reading the document…", True)
        try:
            snapshot, target = self.documents.snapshot(inputs)
        except PluginError as exc:
            self.callbacks.failed(str(exc))
            return
        try:
            request, buffers = build_request(snapshot, params, model, can_compute)
            size_mb = sum(len(memoryview(b)) for b in buffers) / 1e6  # type: ignore[arg-type]
            self.callbacks.stage(f"Sending {size_mb:.1f} MB to the backend…", True)
            header = self.send(request, buffers)
        except (PluginError, ConnectionError) as exc:
            self.documents.discard(target)
            self.callbacks.failed(str(exc))
            return
        self.job = _PendingJob(header, target, snapshot.sketch.size, inputs)
        self.callbacks.state(State.RUNNING)
        self.callbacks.progress(0, params.steps * params.variations)
        self.callbacks.stage("Waiting for the backend…", True)

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
            stage = msg.content.stage
            if stage is Stage.DENOISING:
                self.callbacks.progress(msg.content.step, msg.content.total)
                if msg.content.step == 0 and not job.started:
                    job.started = True
                    self.callbacks.stage("Started…", False)
                elif not job.cancelling:
                    self.callbacks.stage(f"Colorizing: step {msg.content.step} of {msg.content.total}…", False)
            elif not job.cancelling:
                job.started = True
                fraction = msg.content.fraction
                if fraction is None:  # a stage with no progress of its own (or a server of 1.3)
                    self.callbacks.stage(STAGE_TEXT[stage], True)
                else:  # a full-resolution stage: the bar follows it
                    self.callbacks.progress(round(fraction * 100), 100)
                    self.callbacks.stage(f"{STAGE_TEXT[stage]} {fraction:.0%}", False)
            ref = msg.content.preview
            if ref is not None:
                self.callbacks.preview(
                    Pixels(bytes(memoryview(msg.buffers[ref.buffer])), ref.width, ref.height, ref.layout)
                )
        elif msg.msg_type == "result":
            self.callbacks.stage("Placing the result layers…", True)
            try:
                layers = result_layers(msg, job.size, self.layout)
                placed = self.documents.add_results(job.target, layers, job.inputs.replace_previous)
            except PluginError as exc:
                self._fail(job, str(exc))
            except Exception as exc:  # never a traceback dialog: say it in the docker, log the rest
                logger.exception("adding the result layers failed")
                self._fail(job, f"Could not add the result layers: {type(exc).__name__}: {exc}")
            else:
                self._finish()
                try:
                    masks = result_masks(msg, job.size)
                except PluginError as exc:  # the layers are placed: a bad mask only loses "Use as selection"
                    logger.warning("the backend's computed masks were not usable: %s", exc)
                    masks = {}
                if masks:
                    self.callbacks.masks(ComputedMasks(job.inputs, job.target, masks))
                # With an automatic seed, the seed is how the artist gets this result again.
                names = [f"{name} (seed {layer.seed})" for name, layer in zip(placed.names, layers, strict=False)]
                self.callbacks.done(names, placed.where)
        elif msg.msg_type == "error":
            error = msg.content
            if error.code == ErrorCode.CANCELLED.value:
                self._fail(job, "Cancelled: the document was not changed.")
            else:
                self._fail(job, f"{error.message}{f' ({error.hint})' if error.hint else ''}")

    def _finish(self) -> None:
        self.job = None
        self.callbacks.state(State.IDLE)

    def _fail(self, job: _PendingJob, message: str) -> None:
        """The job ends without a result: nothing is placed (a copy made for it is closed)."""
        self._finish()
        self.documents.discard(job.target)
        self.callbacks.failed(message)
