"""Colours carried from a shot's previous frame into this one, on a frame's layers: the layer side of
:mod:`refcolor.imaging.carry`, shared by ``refcolor batch`` and the server (a colorize request
that names its previous frame, PROTOCOL.md "Frames of a shot")."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from refcolor.imaging.carry import carry_fills
from refcolor.imaging.pixels import line_ink
from refcolor.models.job import LayerSet

CARRY_WINDOW = 24  # frames (a second of animation) the running mean of a pixel's colour spans at most


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


def carry_frame(previous: Frame, frame: Frame) -> Frame:
    """``frame`` with its colours carried from ``previous`` (that frame's final colours).

    The ``n``-th frame of a run of carried frames takes ``n / (n + 1)`` of the previous frame's
    colours and ``1 / (n + 1)`` of its own (:func:`carry_strength`): each pixel's colour is the mean
    of what the model painted for it in the frames so far, followed along the motion (its noise only:
    a colour far from the carried one is not averaged in, :func:`~refcolor.imaging.carry.carry_fills`).
    On the training split's shots this cut flicker 5.3x and colour error 4 % against independent
    frames, where taking the previous colours whole cut flicker 8x and raised the error 2 %
    (docs/animation.md).

    Raises:
        ValueError: the two frames differ in size.
    """
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
