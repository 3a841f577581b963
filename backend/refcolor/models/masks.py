"""Masks a job asks the backend to compute (``auto``): which ones this installation can make, and
a job with them filled in. The masks themselves are :mod:`refcolor.imaging.automask`'s."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from refcolor.imaging import automask
from refcolor.models.job import ColorizeJob
from refcolor_protocol.messages import MaskName

logger = logging.getLogger(__name__)


def available() -> tuple[MaskName, ...]:
    """The masks this installation can compute: the sketch's always (from the paint bucket alone
    without the mask network); the reference's when the mask network can run (onnxruntime and the
    network's file, which ships with refcolor)."""
    try:
        automask.mask_net_path()
    except automask.MaskModelMissingError as exc:
        logger.info("automatic reference masks are off: %s", exc)
        return (MaskName.SKETCH,)
    return (MaskName.SKETCH, MaskName.REFERENCE)


def on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: an RGBA8 image (straight alpha) composited over white paper, as it is seen:
    what a transparent pixel's colour channels hold is not part of the picture."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    return np.round(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def fill(job: ColorizeJob, names: tuple[MaskName, ...]) -> tuple[ColorizeJob, dict[MaskName, np.ndarray]]:
    """``job`` with the masks ``names`` computed in place of given ones, and those masks ((H, W)
    uint8, 255 = foreground, each at its image's size).

    Raises:
        automask.MaskModelMissingError: a reference mask is asked and its network is not installed.
    """
    computed: dict[MaskName, np.ndarray] = {}
    if MaskName.SKETCH in names:
        computed[MaskName.SKETCH] = automask.sketch_mask(on_white(job.sketch))
    if MaskName.REFERENCE in names:
        computed[MaskName.REFERENCE] = automask.reference_mask(on_white(job.reference))
    filled = dataclasses.replace(
        job,
        sketch_mask=computed.get(MaskName.SKETCH, job.sketch_mask),
        reference_mask=computed.get(MaskName.REFERENCE, job.reference_mask),
    )
    return filled, computed
