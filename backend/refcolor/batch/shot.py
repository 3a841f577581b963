"""One frame of a shot: the model's colours (:func:`render`), then the colours carried from the
previous frame (:func:`carry`).

Every frame of a shot is colorized with the same reference, masks rule, parameters and seed
(the shot's seed: the same noise for every frame keeps what the model invents for similar line
art similar). :func:`render` depends on its frame alone, so frames can render anywhere in any
order; :func:`carry` needs the previous frame's final colours and runs in frame order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from refcolor.imaging import automask
from refcolor.models.carry import Frame, carry_frame
from refcolor.models.job import ColorizeJob, Colorizer, JobContext, NullContext
from refcolor.models.masks import on_white
from refcolor_protocol.messages import ColorizeParams


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
    """``frame`` with its colours carried from ``previous`` (:func:`~refcolor.models.carry.carry_frame`)
    as the shot's consistency says; unchanged for the first frame, or when the two differ in size
    (a new shot in the same folder)."""
    if shot.consistency is Consistency.OFF or previous is None or previous.sketch.shape != frame.sketch.shape:
        return frame
    return carry_frame(previous, frame)
