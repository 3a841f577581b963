"""The classical baseline: fill each closed region of the sketch with the mean reference
colour of its mask side.

This is :class:`refcolor.models.classical.ClassicalColorizer` with a one-colour palette
(``load_mean``) run in ``both`` mode, so each side draws only from its own side of the
reference (one k-means step with one centre is exactly the side's mean). The wrapper
only inks the mask's boundary into the sketch first: extracted sketches have gaps, and
without it a region that runs across the character's outline is given wholly to one
side by majority, which would make the baseline leak for a reason no user sees (their
mask cuts the region).
"""

from __future__ import annotations

from dataclasses import replace

from refcolor.imaging.lineart import mask_outline
from refcolor.models.job import ColorizeJob, Colorizer, JobContext, LayerSet, ModelInfo
from refcolor_protocol.messages import Mode

BASELINE_NAME = "classical-mean"
BASELINE_MODE = Mode.BOTH
BASELINE_STEPS = 1  # one Lloyd step from any start gives the mean when k = 1


class MaskCutColorizer:
    """Runs ``inner`` on the job with the sketch mask's outline drawn in as ink."""

    def __init__(self, inner: Colorizer) -> None:
        self.inner = inner
        self.info: ModelInfo = replace(
            inner.info, description=inner.info.description + "; regions cut by the mask"
        )

    def colorize(self, job: ColorizeJob, ctx: JobContext) -> list[LayerSet]:
        if job.sketch_mask is None:
            return self.inner.colorize(job, ctx)
        sketch = job.sketch.copy()
        sketch[mask_outline(job.sketch_mask, 1)] = (0, 0, 0, 255)
        return self.inner.colorize(replace(job, sketch=sketch), ctx)


def classical_baseline() -> Colorizer:
    from refcolor.models.classical import load_mean

    return MaskCutColorizer(load_mean("cpu"))
