"""Colorize frames: every keyframe of an animated line-art layer, one job after the other, with one
reference, one seed and the colours carried from frame to frame (independent of Krita and Qt).

The docker calls :meth:`ShotController.start` and :meth:`cancel` and feeds it every backend message
with :meth:`handle`, as for a still. Frames are read one at a time as their turn comes (a shot may
not fit in memory as pixels); their results are kept compressed until the shot ends, then placed
in one go as a new animated result group, one keyframe per source keyframe at the same times.
Cancel stops after the frame in flight and keeps what is done (a second Cancel stops that frame
too); a frame that fails ends the shot the same way. The user's layers are only ever read.
"""

from __future__ import annotations

import logging
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol

from refcolor_protocol import Cancel, ColorizeParams, ErrorCode, Header, Layout, MaskName, Message, Progress, Stage

from .controller import STAGE_TEXT, Inputs, Placement
from .jobs import Previous, Snapshot, build_request, result_layers, result_masks
from .pixels import Pixels, PluginError

logger = logging.getLogger(__name__)
SEEDS = 2**32  # a shot's seed is drawn from [0, SEEDS) when the artist leaves it to chance


@dataclass(frozen=True)
class FrameRange:
    """The frames to colorize, both ends included (Krita's frame numbers)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise PluginError(f"frames {self.start}–{self.end} is not a range: the first frame must be ≤ the last")

    @property
    def words(self) -> str:
        return f"{self.start}–{self.end}"


def shot_times(keys: Sequence[int], frames: FrameRange) -> list[int]:
    """The keyframes whose drawings show within ``frames``: those inside it, and the one before it
    that is still held at its first frame (a drawing on screen at the start is part of the shot)."""
    keys = sorted(set(keys))
    inside = [t for t in keys if frames.start <= t <= frames.end]
    held = [t for t in keys if t < frames.start]
    if held and (not inside or inside[0] > frames.start):
        inside.insert(0, held[-1])
    return inside


def span_words(times: Sequence[int]) -> str:
    """Frame numbers as an artist reads them: "0–5" for a run, "0, 2, 4" otherwise."""
    if not times:
        return "none"
    if list(times) == list(range(times[0], times[-1] + 1)) and len(times) > 2:
        return f"{times[0]}–{times[-1]}"
    return ", ".join(str(t) for t in times)


@dataclass(frozen=True)
class ShotSnapshot:
    """What stays the same for every frame of a shot, read when Colorize frames was pressed."""

    times: tuple[int, ...]  # the keyframes to colorize, in order
    reference: Pixels
    reference_mask: Pixels | None = None
    background: Pixels | None = None
    auto_sketch: bool = False  # each frame's line-art mask is found by the backend
    auto_reference: bool = False  # the reference's mask is found by the backend (once: the first frame's)
    reference_words: str = ""  # which reference, for the status ("“colours” at frame 0")


@dataclass(frozen=True)
class FrameInput:
    """One keyframe of the line art, read when its turn came."""

    time: int
    sketch: Pixels  # BGRA8 at the document's size
    mask: Pixels | None = None  # L8 at the document's size; None: automatic or all foreground

    @property
    def blank(self) -> bool:
        """An empty keyframe (nothing drawn): it stays empty in the result."""
        alpha = self.sketch.data[3::4]
        return alpha.count(0) == len(alpha)


class Packed:
    """A BGRA8 layer kept compressed until the shot is placed (fills compress tenfold and more)."""

    def __init__(self, pixels: Pixels) -> None:
        self.width, self.height, self.layout = pixels.width, pixels.height, pixels.layout
        self.data = zlib.compress(pixels.data, 1)

    def unpack(self) -> Pixels:
        return Pixels(zlib.decompress(self.data), self.width, self.height, self.layout)


@dataclass(frozen=True)
class FrameResult:
    """A colorized keyframe; an empty one's layers are None (they stay transparent)."""

    time: int
    foreground: Packed | None
    background: Packed | None


@dataclass(frozen=True)
class ShotOutcome:
    """What a shot produced, for the document to place."""

    frames: tuple[FrameResult, ...]  # the done ones, in order
    times: tuple[int, ...]  # every keyframe of the shot
    complete: bool
    seed: int

    @property
    def label(self) -> str:
        """The result group's note: none for a whole shot; a partial one says what it holds."""
        if self.complete:
            return ""
        return f"{len(self.frames)} of {len(self.times)} frames"


class ShotAccess(Protocol):
    def shot_snapshot(self, inputs: Inputs, frames: FrameRange) -> tuple[ShotSnapshot, Any]:
        """Read what the frames share and list the keyframes; returns them and a target handle.

        Raises:
            PluginError: the line art is not animated, has no keyframe in ``frames``, ...
        """
        ...

    def read_frame(self, target: Any, time: int) -> FrameInput:
        """The line art (and its mask, when it is not automatic) at keyframe ``time``.

        Raises:
            PluginError: the layer or document has gone since the shot started.
        """
        ...

    def add_frames(self, target: Any, outcome: ShotOutcome, replace_previous: bool) -> Placement:
        """One animated result group next to the line art, with a keyframe per keyframe of the line
        art at the same times: the done frames' colours, the others empty."""
        ...

    def discard(self, target: Any) -> None: ...


class ShotState(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"  # Cancel pressed: stops after the frame in flight
    CANCELLING = "cancelling"  # Cancel pressed again: the frame in flight is cancelled too


@dataclass
class ShotCallbacks:
    state: Callable[[ShotState], None] = lambda state: None
    progress: Callable[[int, int], None] = lambda step, total: None  # over the whole shot: frames × steps
    stage: Callable[[str, bool], None] = lambda text, busy: None
    preview: Callable[[Pixels], None] = lambda pixels: None
    done: Callable[[list[str], str], None] = lambda names, where: None
    failed: Callable[[str], None] = lambda message: None


@dataclass
class _Shot:
    inputs: Inputs
    snapshot: ShotSnapshot
    target: Any
    params: ColorizeParams
    model: str
    can_compute: tuple[str, ...] | None
    carry: bool  # the backend carries colours from frame to frame
    index: int = 0  # the frame in flight (or next)
    header: Header | None = None
    frame: FrameInput | None = None
    previous: Previous | None = None
    done: list[FrameResult] = field(default_factory=list)
    state: ShotState = ShotState.RUNNING

    @property
    def count(self) -> int:
        return len(self.snapshot.times)

    @property
    def where(self) -> str:
        """The frame in flight, in words."""
        return f"frame {self.index + 1} of {self.count} (keyframe {self.snapshot.times[self.index]})"


class ShotController:
    def __init__(
        self,
        documents: ShotAccess,
        send: Callable[[object, list[object]], Header],
        callbacks: ShotCallbacks | None = None,
        layout: Layout = Layout.BGRA8,
    ) -> None:
        self.documents = documents
        self.send = send
        self.callbacks = callbacks or ShotCallbacks()
        self.layout = layout  # of the result layers handed to the document: BGRA8 (Krita) or RGBA8
        self.shot: _Shot | None = None

    @property
    def state(self) -> ShotState:
        return ShotState.IDLE if self.shot is None else self.shot.state

    def start(
        self,
        inputs: Inputs,
        params: ColorizeParams,
        frames: FrameRange,
        model: str = "",
        can_compute: tuple[str, ...] | None = None,
        carry: bool = True,
    ) -> None:
        """Start a shot (``carry``: the backend can carry colours, capabilities.carry_colors). Errors
        the user can fix go to ``callbacks.failed``; nothing is raised."""
        if self.shot is not None:
            self.callbacks.failed("frames are already being colorized; cancel them or wait")
            return
        self.callbacks.stage("Reading the animation…", True)
        try:
            snapshot, target = self.documents.shot_snapshot(inputs, frames)
        except PluginError as exc:
            self.callbacks.failed(str(exc))
            return
        # One seed for the whole shot: the artist's, or one drawn now (so every frame shares it).
        seed = params.seed if params.seed is not None else random.randrange(SEEDS)
        params = replace(params, seed=seed, variations=1)
        self.shot = _Shot(inputs, snapshot, target, params, model, can_compute, carry)
        self.callbacks.state(ShotState.RUNNING)
        self._next()

    def cancel(self) -> None:
        """First press: stop after the frame in flight and keep what is done. Second press: cancel
        that frame too."""
        shot = self.shot
        if shot is None:
            return
        if shot.state is ShotState.RUNNING:
            shot.state = ShotState.STOPPING
            self.callbacks.state(shot.state)
            self.callbacks.stage(f"Stopping after {shot.where}… (Cancel again to stop it now)", False)
        elif shot.state is ShotState.STOPPING and shot.header is not None:
            shot.state = ShotState.CANCELLING
            self.send(Cancel(shot.header.msg_id), [])
            self.callbacks.state(shot.state)
            self.callbacks.stage(f"Cancelling {shot.where}…", True)

    def handle(self, msg: Message) -> None:
        """Route one backend message; messages of other requests are ignored."""
        shot = self.shot
        if shot is None or shot.header is None or msg.parent_id != shot.header.msg_id:
            return
        if isinstance(msg.content, Progress):
            self._progress(shot, msg)
        elif msg.msg_type == "result":
            try:
                self._keep(shot, msg)
            except PluginError as exc:
                self._end(shot, f"{shot.where} came back unusable: {exc}")
                return
            shot.index += 1
            if shot.index >= shot.count:
                self._end(shot)
            elif shot.state is not ShotState.RUNNING:
                self._end(shot, "Stopped")
            else:
                self._next()
        elif msg.msg_type == "error":
            error = msg.content
            if error.code == ErrorCode.CANCELLED.value:
                self._end(shot, "Cancelled")
            else:
                hint = f" ({error.hint})" if error.hint else ""
                self._end(shot, f"{shot.where} failed: {error.message}{hint}")

    # --- one frame after the other --------------------------------------------------------

    def _next(self) -> None:
        """Send the next keyframe that has something drawn; empty ones stay empty."""
        shot = self.shot
        assert shot is not None
        while shot.index < shot.count:
            time = shot.snapshot.times[shot.index]
            self.callbacks.stage(f"Reading {shot.where}…", True)
            try:
                frame = self.documents.read_frame(shot.target, time)
            except PluginError as exc:
                self._end(shot, f"{shot.where} could not be read: {exc}")
                return
            if not frame.blank:
                break
            shot.done.append(FrameResult(time, None, None))
            shot.previous = None  # nothing to carry across an empty frame
            shot.index += 1
        else:
            self._end(shot)
            return
        snap = shot.snapshot
        auto = [MaskName.SKETCH] if snap.auto_sketch else []
        if snap.auto_reference and snap.reference_mask is None:
            auto.append(MaskName.REFERENCE)
        request_snapshot = Snapshot(
            frame.sketch, snap.reference, frame.mask, snap.reference_mask, snap.background, tuple(auto)
        )
        previous = shot.previous if shot.carry else None
        try:
            request, buffers = build_request(request_snapshot, shot.params, shot.model, shot.can_compute, previous)
            header = self.send(request, buffers)
        except (PluginError, ConnectionError) as exc:
            self._end(shot, f"{shot.where} could not be sent: {exc}")
            return
        shot.header, shot.frame = header, frame
        total = shot.params.steps * shot.count
        self.callbacks.progress(shot.params.steps * shot.index, total)
        self.callbacks.stage(f"Waiting for the backend: {shot.where}…", True)

    def _progress(self, shot: _Shot, msg: Message) -> None:
        content: Progress = msg.content
        steps = shot.params.steps
        if content.stage is Stage.DENOISING:
            self.callbacks.progress(steps * shot.index + content.step, steps * shot.count)
            if shot.state is ShotState.RUNNING:
                self.callbacks.stage(f"Colorizing {shot.where}: step {content.step} of {content.total}…", False)
        elif shot.state is ShotState.RUNNING:
            self.callbacks.stage(f"{shot.where[:1].upper()}{shot.where[1:]}: {STAGE_TEXT[content.stage]}", True)
        ref = content.preview
        if ref is not None:
            data = bytes(memoryview(msg.buffers[ref.buffer]))
            self.callbacks.preview(Pixels(data, ref.width, ref.height, ref.layout))

    def _keep(self, shot: _Shot, msg: Message) -> None:
        """Keep a frame's result, and what the next frame carries from it."""
        frame = shot.frame
        assert frame is not None
        (layers, *_) = result_layers(msg, frame.sketch.size, self.layout)
        masks = result_masks(msg, frame.sketch.size)
        shot.done.append(FrameResult(frame.time, Packed(layers.foreground), Packed(layers.background)))
        reference = masks.get(MaskName.REFERENCE)
        if reference is not None and shot.snapshot.reference_mask is None:
            # The reference is the same for every frame: the mask found for the first is sent from now on.
            shot.snapshot = replace(shot.snapshot, reference_mask=reference)
        mask = masks.get(MaskName.SKETCH, frame.mask)
        shot.previous = Previous(frame.sketch, layers.foreground, mask, msg.content.age)
        shot.header = None

    def _end(self, shot: _Shot, why: str = "") -> None:
        """The shot is over (``why``: why it stopped early). Done frames are placed, labelled with
        what they are when the shot is not whole; with none done, nothing is."""
        self.shot = None
        self.callbacks.state(ShotState.IDLE)
        outcome = ShotOutcome(tuple(shot.done), shot.snapshot.times, not why, shot.params.seed or 0)
        drawn = [f for f in shot.done if f.foreground is not None]
        if not drawn:
            self.documents.discard(shot.target)
            what = f"{why}: no frame was colorized, so the document was not changed." if why else ""
            self.callbacks.failed(what or "every keyframe in the range is empty: nothing to colorize")
            return
        self.callbacks.stage(f"Placing {len(shot.done)} frames…", True)
        try:
            placed = self.documents.add_frames(shot.target, outcome, shot.inputs.replace_previous)
        except PluginError as exc:
            self.callbacks.failed(f"{why + '; ' if why else ''}the frames could not be placed: {exc}")
            return
        except Exception as exc:  # never a traceback dialog: say it in the docker, log the rest
            logger.exception("placing the frames failed")
            self.callbacks.failed(f"Could not place the frames: {type(exc).__name__}: {exc}")
            return
        times = [f.time for f in shot.done]
        names = [f"{name} (seed {outcome.seed})" for name in placed.names]
        if why:
            left = [t for t in shot.snapshot.times if t not in times]
            self.callbacks.failed(
                f"{why}. Kept keyframes {span_words(times)} ({outcome.label}) in {', '.join(names)} "
                f"{placed.where}; keyframes {span_words(left)} were not colorized and are empty there."
            )
            return
        where = f"{placed.where}: keyframes {span_words(times)}"
        if shot.snapshot.reference_words:
            where += f", in the colours of {shot.snapshot.reference_words}"
        if not shot.carry:
            where += (
                ". This backend does not carry colours from frame to frame (it is older than protocol 1.7): "
                "each frame was coloured on its own, with one seed; update it for steadier colours"
            )
        self.callbacks.done(names, where)
