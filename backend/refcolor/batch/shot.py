"""One frame of a shot: the model's colours (:func:`render`), then the colours carried from the
previous frame (:func:`carry`).

Every frame of a shot is colorized with the same reference, masks rule, parameters and seed
(the shot's seed: the same noise for every frame keeps what the model invents for similar line
art similar). :func:`render` depends on its frame alone, so frames can render anywhere in any
order; :func:`carry` needs the previous frame's final colours and runs in frame order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum

import numpy as np

from refcolor.imaging import automask
from refcolor.imaging.carry import carry_fills
from refcolor.imaging.pixels import line_ink
from refcolor.models.job import ColorizeJob, Colorizer, JobContext, LayerSet, NullContext
from refcolor.models.masks import on_white
from refcolor_protocol.messages import ColorizeParams

CARRY_WINDOW = 24  # frames (a second of animation) the running mean of a pixel's colour spans at most


class Consistency(str, Enum):
    """How a frame's colours follow the previous frame's."""

    CARRY = "carry"  # a pixel's colour is the mean of what the model painted for it, frame after frame
    OFF = "off"  # every frame on its own (the shot's seed still fixed)


@dataclass(frozen=True)
class Shot:
    """What every frame of a shot shares. ``params.seed`` is the shot's seed (never None)."""

    reference: np.ndarray  # (h, w, 4) uint8
    params: ColorizeParams
    reference_mask: np.ndarray | None = None  # (h, w) uint8, 255 = foreground
    background: np.ndarray | None = None  # (hb, wb, 4) uint8
    auto_masks: bool = False  # each frame's sketch mask is computed (refcolor.imaging.automask)
    consistency: Consistency = Consistency.CARRY

    def __post_init__(self) -> None:
        if self.params.seed is None:
            raise ValueError("a shot needs one seed for all its frames: set params.seed")
        if self.params.variations != 1:
            raise ValueError(
                f"variations={self.params.variations}: a shot gives one colouring per frame; "
                "try variations on a single frame with refcolor colorize"
            )


@dataclass(frozen=True)
class Frame:
    """One frame's line art and sketch mask, and the layers made of it."""

    sketch: np.ndarray  # (H, W, 4) uint8
    mask: np.ndarray | None  # (H, W) uint8, 255 = foreground; None: all foreground
    layers: LayerSet
    age: int = 0  # how many frames before this one its colours were carried from (0: its own)

    @property
    def foreground(self) -> np.ndarray | None:
        return None if self.mask is None else self.mask >= 128


def frame_mask(shot: Shot, sketch: np.ndarray, mask: np.ndarray | None) -> np.ndarray | None:
    """The mask a frame is colorized with: ``mask`` if given, computed if the shot says so.

    Raises:
        ValueError: ``mask`` and ``sketch`` differ in size.
    """
    if mask is not None:
        if mask.shape != sketch.shape[:2]:
            raise ValueError(
                f"the mask is {mask.shape[1]}x{mask.shape[0]} but its frame is {sketch.shape[1]}x{sketch.shape[0]}: "
                "give each frame a mask of its own size"
            )
        return mask
    return automask.sketch_mask(on_white(sketch)) if shot.auto_masks else None


def render(colorizer: Colorizer, shot: Shot, sketch: np.ndarray, mask: np.ndarray | None,
           ctx: JobContext | None = None) -> Frame:
    """The model's colours for one frame (no carry): a :class:`Frame` with ``mask`` as
    :func:`frame_mask` makes it."""
    mask = frame_mask(shot, sketch, mask)
    job = ColorizeJob(
        sketch=sketch,
        reference=shot.reference,
        params=shot.params,
        seed=int(shot.params.seed or 0),
        sketch_mask=mask,
        reference_mask=shot.reference_mask,
        background=shot.background,
    )
    return Frame(sketch, mask, colorizer.colorize(job, ctx or NullContext())[0])


def carry(shot: Shot, frame: Frame, previous: Frame | None) -> Frame:
    """``frame`` with its colours carried from ``previous`` (its final colours), as the shot's
    consistency says; unchanged for the first frame, or when the two differ in size (a new shot
    in the same folder).

    The ``n``-th frame of a run of carried frames takes ``n / (n + 1)`` of the previous frame's
    colours and ``1 / (n + 1)`` of its own (:func:`carry_strength`): each pixel's colour is the mean
    of what the model painted for it in the frames so far, followed along the motion. On the
    training split's shots this cut flicker 4.9x and colour error 5 % against independent frames,
    where taking the previous colours whole cut flicker 8x and raised the error 2 % (docs/animation.md).
    """
    if shot.consistency is Consistency.OFF or previous is None or previous.sketch.shape != frame.sketch.shape:
        return frame
    age = previous.age + 1
    carried = carry_fills(
        line_ink(previous.sketch), previous.layers.foreground[..., :3], previous.foreground,
        line_ink(frame.sketch), frame.layers.foreground[..., :3], frame.foreground,
        strength=carry_strength(age),
    )
    return dataclasses.replace(frame, layers=recolor(frame.layers, carried), age=age)


def carry_strength(age: int) -> float:
    """How much of the previous frame's colours the ``age``-th carried frame takes: the running mean
    over the last :data:`CARRY_WINDOW` frames at most."""
    frames = min(age, CARRY_WINDOW)
    return frames / (frames + 1)


def recolor(layers: LayerSet, fills: np.ndarray) -> LayerSet:
    """``layers`` with their fill colours replaced by ``fills`` ((H, W, 3) uint8), each layer keeping
    its alpha, and the combined layer keeping what the model laid over its fills (the line art
    multiplied in: its ratio to the fills, per channel)."""
    old = layers.foreground[..., :3].astype(np.float32)
    ratio = (layers.combined[..., :3].astype(np.float32) + 0.5) / (old + 0.5)
    combined = np.clip(np.round(fills.astype(np.float32) * ratio), 0, 255).astype(np.uint8)
    return LayerSet(
        combined=np.dstack([combined, layers.combined[..., 3]]),
        foreground=np.dstack([fills, layers.foreground[..., 3]]),
        background=np.dstack([fills, layers.background[..., 3]]),
        seed=layers.seed,
    )
