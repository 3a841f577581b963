"""Run methods over triplets and score them.

A *method* is one row of the table: a model under one inference mode (each mode its
own row), the classical baseline, or the ground truth itself (the reference row: zero
error, the data's own leakage rate, the line F1 a perfect colouring gets). Models are
loaded only through :func:`refcolor.models.load_colorizer` and driven through the
:class:`refcolor.models.job.Colorizer` interface, so any registered model works.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refcolor.data.samples import Sample
from refcolor.eval import metrics
from refcolor.eval.baseline import BASELINE_MODE, BASELINE_NAME, BASELINE_STEPS, classical_baseline
from refcolor.eval.features import LiteFeatures
from refcolor.eval.triplets import ablate_reference, check_ablation
from refcolor.imaging import finishing
from refcolor.models.job import ColorizeJob, Colorizer, LayerSet, NullContext
from refcolor_protocol.messages import ColorizeParams, Mode

logger = logging.getLogger(__name__)

GROUND_TRUTH = "ground truth"
CORRESPONDENCE_NAME = "correspondence"


@dataclass(frozen=True)
class Method:
    name: str  # the row's label
    model: str  # registry name or path; GROUND_TRUTH for the reference row
    mode: str  # Mode value, "" for the ground truth
    colorizer: Colorizer | None = None
    steps: int | None = None  # None: ColorizeParams' default
    reference_scale: float | None = None  # reference guidance; None: ColorizeParams' default
    overrides: dict[str, float] = field(default_factory=dict)  # further ColorizeParams fields
    reference: str = ""  # "": the triplet's reference; else a kind of triplets.ablate_reference
    # What the model is given instead of the scored triplets (the same triplets with computed
    # masks: triplets.with_auto_masks); None: the triplets themselves.
    inputs: Sequence[Sample] | None = None

# The rows of --finishing-off: the model's own colours, without the finishing pass.
FINISHING_OFF = dict.fromkeys(finishing.PARAMS, 0.0)


def model_methods(
    model: str,
    device: str = "cpu",
    modes: Sequence[Mode] | None = None,
    steps: int | None = None,
    reference_scale: float | None = None,
    finishing_off: bool = False,
    reference_ablations: Sequence[str] = (),
    auto_masked: Sequence[Sample] | None = None,
) -> list[Method]:
    """One method per inference mode the model supports (restricted to ``modes`` if given).

    ``finishing_off``: also one per mode with :data:`FINISHING_OFF`. ``reference_ablations``:
    also each of those rows with the reference replaced (:func:`ablate_reference`).
    ``auto_masked``: also every row given these triplets (the scored ones with computed masks)
    instead, labelled "auto masks". All rows share one loaded model.
    """
    from refcolor.models import load_colorizer

    for kind in reference_ablations:
        check_ablation(kind)  # before the model loads
    colorizer = load_colorizer(model, device)
    supported = [Mode(m) for m in colorizer.info.modes]
    wanted = [m for m in (modes or list(Mode)) if m in supported]
    if not wanted:
        raise ValueError(
            f"model {model!r} supports modes {colorizer.info.modes}, none of the requested {modes}"
        )
    finishings: list[tuple[str, dict[str, float]]] = [("", {})]
    finishings += [("finishing off", FINISHING_OFF)] if finishing_off else []
    inputs: list[tuple[str, Sequence[Sample] | None]] = [("", None)]
    inputs += [("auto masks", auto_masked)] if auto_masked is not None else []
    rows = []
    for masks_label, given in inputs:
        for finishing_label, overrides in finishings:
            for kind in ("", *reference_ablations):
                labels = [model, finishing_label, f"{kind} reference" if kind else "", masks_label]
                name = ", ".join(label for label in labels if label)
                rows += [
                    Method(f"{name} [{m.value}]", model, m.value, colorizer, steps, reference_scale,
                           dict(overrides), kind, given)
                    for m in wanted
                ]  # fmt: skip
    return rows


def baseline_methods(device: str = "cpu") -> list[Method]:
    """The two baseline rows: one mean colour per side (``classical-mean``), and the parameter-free
    split feature matching (``correspondence``), both in ``both`` mode."""
    from refcolor.models import load_colorizer

    return [
        Method(BASELINE_NAME, BASELINE_NAME, BASELINE_MODE.value, classical_baseline(), BASELINE_STEPS),
        Method(CORRESPONDENCE_NAME, CORRESPONDENCE_NAME, BASELINE_MODE.value,
               load_colorizer(CORRESPONDENCE_NAME, device), BASELINE_STEPS),
    ]  # fmt: skip


def job_for(
    sample: Sample,
    mode: Mode,
    seed: int,
    steps: int | None = None,
    reference_scale: float | None = None,
    overrides: dict[str, float] | None = None,
) -> ColorizeJob:
    """The job a user would send for this triplet: sketch + its mask, reference + its mask."""
    extra: dict[str, Any] = {} if steps is None else {"steps": steps}
    if reference_scale is not None:
        extra["reference_scale"] = reference_scale
    extra.update(overrides or {})
    params = ColorizeParams(mode=mode, seed=seed, variations=1, previews=False, **extra)
    return ColorizeJob(
        sketch=sample.sketch_rgba(),
        reference=sample.reference_rgba(),
        params=params,
        seed=seed,
        sketch_mask=sample.mask,
        reference_mask=sample.reference_mask,
    )


def output_rgb(layers: LayerSet, shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 of the combined layer, over white where it is not opaque."""
    combined = layers.combined
    if combined.shape[:2] != shape:
        raise ValueError(
            f"model returned a {combined.shape[1]}x{combined.shape[0]} layer "
            f"for a {shape[1]}x{shape[0]} sketch"
        )
    alpha = combined[..., 3:4].astype(np.float32) / 255.0
    return (combined[..., :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)


@dataclass
class MethodResult:
    method: Method
    outputs: list[np.ndarray]
    per_image: dict[str, list[float]]
    seconds_per_image: float
    summary: dict[str, metrics.Interval] = field(default_factory=dict)


@dataclass
class Evaluation:
    config: dict[str, object]
    results: list[MethodResult]

    def to_dict(self) -> dict[str, object]:
        return {
            "config": self.config,
            "metrics": [*metrics.METRICS, "frechet"],
            "methods": [
                {
                    "name": r.method.name,
                    "model": r.method.model,
                    "mode": r.method.mode,
                    "seconds_per_image": r.seconds_per_image,
                    "metrics": {k: v.to_dict() for k, v in r.summary.items()},
                }
                for r in self.results
            ],
        }


def fills_rgb(layers: LayerSet) -> np.ndarray:
    """(H, W, 3) uint8: the foreground layer over the background layer over white (no line art)."""
    over = np.full((*layers.foreground.shape[:2], 3), 255.0, np.float32)
    for layer in (layers.background, layers.foreground):
        alpha = layer[..., 3:4].astype(np.float32) / 255.0
        over = layer[..., :3] * alpha + over * (1.0 - alpha)
    return (over + 0.5).astype(np.uint8)


def colorize_all(
    method: Method, triplets: Sequence[Sample], seed: int
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Every triplet's output and fills (see :func:`fills_rgb`), and the seconds per image."""
    if method.colorizer is None:
        return [t.target for t in triplets], [t.target for t in triplets], 0.0
    outputs, fills = [], []
    start = time.perf_counter()
    for index, sample in enumerate(method.inputs if method.inputs is not None else triplets):
        if method.reference:
            sample = ablate_reference(sample, method.reference)
        job = job_for(
            sample, Mode(method.mode), seed + index, method.steps, method.reference_scale, method.overrides
        )
        layers = method.colorizer.colorize(job, NullContext())
        outputs.append(output_rgb(layers[0], sample.target.shape[:2]))
        fills.append(fills_rgb(layers[0]))
    return outputs, fills, (time.perf_counter() - start) / max(1, len(triplets))


def evaluate(
    methods: Sequence[Method],
    triplets: Sequence[Sample],
    seed: int = 0,
    features: LiteFeatures | None = None,
    tolerance: float = 2.0,
    border: int = 2,
    resamples: int = 200,
    config: dict[str, object] | None = None,
) -> Evaluation:
    """Score the ground truth and every method on ``triplets``.

    Args:
        methods: rows to run (the ground-truth row is added first).
        triplets: from :func:`refcolor.eval.triplets.make_triplets`.
        seed: job seeds are ``seed + triplet index``.
        features: encoder for the Fréchet distance; None leaves it out.
        tolerance: line F1's distance tolerance in pixels.
        border: pixels eroded from each side of the mask before colour metrics.
        resamples: bootstrap resamples for the Fréchet distance's interval.
    """
    truths = [metrics.truth_for(t.target, t.mask, t.sketch, border, seed) for t in triplets]
    truth_features = features([t.target for t in triplets]) if features is not None else None
    results = []
    for method in [Method(GROUND_TRUTH, GROUND_TRUTH, ""), *methods]:
        logger.info("running %s on %d triplets", method.name, len(triplets))
        outputs, fills, seconds = colorize_all(method, triplets, seed)
        per_image: dict[str, list[float]] = {name: [] for name in metrics.METRICS}
        for output, fill, truth in zip(outputs, fills, truths, strict=True):
            for name, value in metrics.image_metrics(output, truth, tolerance, fill).items():
                per_image[name].append(value)
        result = MethodResult(method, outputs, per_image, seconds)
        result.summary = {
            name: metrics.mean_interval(values, bounds=metrics.BOUNDS[name])
            for name, values in per_image.items()
        }
        if features is not None and truth_features is not None and len(triplets) >= 2:
            out_features = truth_features if method.colorizer is None else features(outputs)

            def frechet(idx: np.ndarray, a: np.ndarray = out_features, b: np.ndarray = truth_features) -> float:
                return metrics.frechet_distance(a[idx], b[idx])

            result.summary["frechet"] = metrics.bootstrap_interval(
                frechet,
                len(triplets),
                resamples,
                seed=seed,
            )
        results.append(result)
    return Evaluation(config or {}, results)
