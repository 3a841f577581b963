"""The job interface between the service and whatever model runs a colorization.

The server only ever sees a :class:`Colorizer`: it hands over a decoded
:class:`ColorizeJob` (numpy images at full document resolution) and a
:class:`JobContext` (progress, previews, cancellation), and gets back one
:class:`LayerSet` per variation. Which model runs behind it (the classical
flat-fill colorizer, the tiny random model, nano, the official v1.5 weights)
is the registry's business (:mod:`refcolor.models`), never the server's.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from refcolor_protocol.messages import ColorizeParams, Stage


def resolve_seed(params: ColorizeParams) -> int:
    """The job's seed: ``params.seed``, or a fresh one when it is auto (None)."""
    return params.seed if params.seed is not None else secrets.randbelow(2**32)


class JobCancelled(Exception):
    """Raised inside a running job when its cancel was requested."""


@dataclass(frozen=True)
class ColorizeJob:
    """One colorization request, decoded and validated.

    Images are RGBA8 numpy arrays in straight (not premultiplied) alpha; masks are
    L8 arrays where 255 means foreground. All sizes have already been checked
    against each other and against the server's limits.
    """

    sketch: np.ndarray  # (H, W, 4) uint8, the line art at full document resolution
    reference: np.ndarray  # (h, w, 4) uint8
    params: ColorizeParams
    seed: int  # resolved: params.seed, or one the server drew when it was None
    sketch_mask: np.ndarray | None = None  # (H, W) uint8, 255 = foreground
    reference_mask: np.ndarray | None = None  # (h, w) uint8, 255 = foreground
    background: np.ndarray | None = None  # (hb, wb, 4) uint8, optional separate background reference
    job_id: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the document, which every output layer has."""
        return self.sketch.shape[1], self.sketch.shape[0]


@dataclass(frozen=True)
class LayerSet:
    """The layers of one variation, each (H, W, 4) uint8 RGBA at the sketch's size."""

    combined: np.ndarray
    foreground: np.ndarray  # alpha = the foreground mask
    background: np.ndarray  # alpha = its complement
    seed: int

    def named(self) -> dict[str, np.ndarray]:
        return {"foreground": self.foreground, "background": self.background, "combined": self.combined}


PreviewFn = Callable[[], np.ndarray]
"""Computes a small RGBA8 preview of the current state; only called when wanted."""


class JobContext(Protocol):
    """What a running job may call back into. Implemented by the server's worker."""

    def progress(self, step: int, total: int, preview: PreviewFn | None = None, variation: int = 0) -> None:
        """Report that ``step`` of ``total`` is done (PROTOCOL.md, progress): ``total`` is steps x
        variations, and a denoising step of a batch of n variations counts n. ``variation``: the
        first variation of the batch being computed.

        Raises:
            JobCancelled: the job was cancelled; let it propagate.
        """
        ...

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the job was cancelled (for long steps)."""
        ...

    def stage(self, stage: Stage, done: float = 0.0) -> None:
        """Report that the job is in ``stage`` (PROTOCOL.md, progress.stage), with ``done`` of it
        done (0 as it starts; a full-resolution stage reports its progress through this, and a
        cancel takes effect here).

        Raises:
            JobCancelled: the job was cancelled; let it propagate.
        """
        ...


class NullContext:
    """A context for running a colorizer outside the server, with nobody to report to (evaluation,
    benchmarks)."""

    def progress(self, step: int, total: int, preview: PreviewFn | None = None, variation: int = 0) -> None:
        return None

    def check_cancelled(self) -> None:
        return None

    def stage(self, stage: Stage, done: float = 0.0) -> None:
        return None


@dataclass(frozen=True)
class ModelInfo:
    """What the server advertises about a loaded model in its capabilities."""

    name: str
    kind: str  # "classical", "diffusion"
    device: str
    modes: tuple[str, ...]
    native_resolution: int  # side length the model works at before upsampling
    description: str = ""
    color_match: float | None = None  # finishing defaults; None: the model has no finishing pass
    flatten: float | None = None


class Colorizer(Protocol):
    """A loaded model that turns a job into layers. Called from one worker thread."""

    info: ModelInfo

    def colorize(self, job: ColorizeJob, ctx: JobContext) -> list[LayerSet]:
        """Run ``job`` and return ``job.params.variations`` layer sets, in order.

        Must call ``ctx.progress`` at least once per denoising step (or per unit
        of comparable work) so cancellation takes effect within one step.
        """
        ...
