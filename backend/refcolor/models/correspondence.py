"""The ``correspondence`` model: split feature matching with no training, flat cels.

Every cell of the sketch takes the colours of the reference cells whose line-art features
match it, each side of the sketch only from its own side of the reference
(:mod:`refcolor.imaging.matching`); the two colour fields are brought to full resolution
by the edge-aware upsampler (colours stay inside the line art's closed regions) and composited by
the sketch mask. ``flatten`` 1 fills each closed region with its mean colour, as cel art; the
default is 0, which scored better (open line art makes huge regions whose one mean colour loses
the parts). It is an evaluation baseline that reads *where* colours are in the reference, and a
model the plugin can run in about a second on a CPU.

It is deterministic: the seed changes nothing, and every variation is the same picture.
Denoising parameters (steps, guidance, scheduler) do not apply; ``color_match`` and ``flatten``
do (finishing, :mod:`refcolor.imaging.finishing`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from refcolor.imaging import finishing, pixels
from refcolor.imaging.matching import WORK_SIDE, Correspondence, LineFeatures, load_line_features
from refcolor.imaging.upsample import Regions, upsample_lab
from refcolor.models.classical import reference_foreground
from refcolor.models.job import ColorizeJob, JobContext, LayerSet, ModelInfo
from refcolor_protocol.messages import Mode

NAME = "correspondence"
COLOR_MATCH = 0.0  # the fields already carry the reference's own colours
FLATTEN = 0.0  # measured best (model card); 1 gives one flat colour per closed region
CHROMA_RADIUS = 2.0  # the upsampler's default: the fields are smooth already
STAGES = 3  # progress: matched, composited, finished


def upsample_field(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) field to (H, W, 3) float32 by bilinear interpolation; ``size`` = (W, H)."""
    tensor = torch.from_numpy(np.ascontiguousarray(field, np.float32)).permute(2, 0, 1)[None]
    up = F.interpolate(tensor, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    return up[0].permute(1, 2, 0).numpy()


class CorrespondenceColorizer:
    """:class:`refcolor.models.job.Colorizer` over :class:`Correspondence`."""

    def __init__(
        self, features: LineFeatures, device: str = "cpu", edge_aware: bool = True, **options: float
    ) -> None:
        self.edge_aware = edge_aware
        self.correspondence = Correspondence(features, **options)  # type: ignore[arg-type]  # floats for its float options
        self.info = ModelInfo(
            name=NAME,
            kind="classical",
            device=device,
            modes=tuple(m.value for m in Mode),
            native_resolution=self.correspondence.work_side,
            description="split line-art feature matching, no training (pretrained EfficientNet-Lite0)",
            color_match=COLOR_MATCH,
            flatten=FLATTEN,
        )

    def upsample(self, field: np.ndarray, ink: np.ndarray, regions: Regions) -> np.ndarray:
        """(h, w, 3) Lab field to the (H, W) line art's size, colours kept inside closed regions."""
        if not self.edge_aware:
            return upsample_field(field, (ink.shape[1], ink.shape[0]))
        return upsample_lab(field.astype(np.float32), regions, CHROMA_RADIUS)

    def colorize(self, job: ColorizeJob, ctx: JobContext) -> list[LayerSet]:
        params = job.params
        total = params.steps * params.variations
        ctx.progress(0, total)
        ink = pixels.line_ink(job.sketch)
        reference_rgb = pixels.flatten_on_white(job.reference)
        reference_mask = reference_foreground(job)
        background = None if job.background is None else pixels.flatten_on_white(job.background)
        fields = self.correspondence.fields(1.0 - ink, reference_rgb, reference_mask, background, params.mode)
        ctx.progress(total // STAGES, total)
        height, width = job.sketch.shape[:2]
        threshold = params.mask_threshold
        mask = job.sketch_mask
        alpha = np.full((height, width), 255, np.uint8) if mask is None else mask
        foreground = None if mask is None else mask >= threshold * 255
        regions = Regions.of(ink, foreground)
        lab = self.upsample(fields.foreground, ink, regions)
        if foreground is not None:
            lab[~foreground] = self.upsample(fields.background, ink, regions)[~foreground]
        ctx.progress(2 * total // STAGES, total)
        color_match = COLOR_MATCH if params.color_match is None else float(params.color_match)
        flatten = FLATTEN if params.flatten is None else float(params.flatten)
        sides = finishing.Sides(None)
        if color_match > 0:
            sides = finishing.sides_for_mode(
                Mode(params.mode),
                reference_rgb,
                None if reference_mask is None else reference_mask.astype(np.float32),
                background,
                threshold,
            )
        fills = finishing.finish_lab(lab, regions, foreground, sides, color_match, flatten)
        combined, fg_layer, bg_layer = pixels.layer_arrays(fills, ink, alpha)
        ctx.progress(total, total)
        return [
            LayerSet(combined=combined, foreground=fg_layer, background=bg_layer, seed=(job.seed + i) % 2**32)
            for i in range(params.variations)
        ]


def load(device: str = "cpu", work_side: int = WORK_SIDE) -> CorrespondenceColorizer:
    """The ``correspondence`` model on the ImageNet EfficientNet-Lite0 from its PyPI package."""
    return CorrespondenceColorizer(load_line_features(device), device, work_side=work_side)
