"""Deterministic test triplets (sketch + mask, mismatched reference, ground truth) from folders.

Triplets are made exactly like training samples (:mod:`refcolor.data.samples`): the
same compositing, extractors, mismatch and colour shift, drawn from the seed, so any
folder of RGBA characters (alpha = foreground) and any folder of backgrounds works,
the built held-out split included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from refcolor.data.samples import Sample, SampleSource
from refcolor.eval import REFERENCE_ABLATIONS


def make_triplets(
    characters: Path, backgrounds: Path, n: int, seed: int = 0, size: int = 256
) -> list[Sample]:
    """``n`` triplets; the same arguments (and folder contents) give the same triplets.

    Raises:
        FileNotFoundError: a folder is missing.
        ValueError: a folder has no usable image, or ``n`` < 1.
    """
    if n < 1:
        raise ValueError(f"n={n}: expected at least one triplet")
    source = SampleSource.from_folders(characters, backgrounds, size=size, seed=seed, length=n)
    return [source[i] for i in range(n)]


def check_ablation(kind: str) -> None:
    """Raises ValueError unless ``kind`` is one of :data:`REFERENCE_ABLATIONS`."""
    if kind not in REFERENCE_ABLATIONS:
        raise ValueError(f"reference ablation {kind!r}: expected one of {', '.join(REFERENCE_ABLATIONS)}")


def ablate_reference(sample: Sample, kind: str) -> Sample:
    """``sample`` with its reference replaced, to measure what a model takes from the reference.

    * ``flat``: each side of the reference (split by the reference mask) painted in its mean
      colour. A model whose outputs do not change with it reads nothing from the reference but
      the average colour of each side; one whose colour error does not change places the other
      colours it reads no better than those averages would.
    * ``truth``: the ground truth itself as the reference (mask: the sketch's), so the
      correspondence is the identity. A model that scores no better with it does not copy
      colours from matching places.

    Raises:
        ValueError: ``kind`` is not one of :data:`REFERENCE_ABLATIONS`.
    """
    check_ablation(kind)
    if kind == "truth":
        return replace(sample, reference=sample.target.copy(), reference_mask=sample.mask.copy())
    flat = np.empty_like(sample.reference)
    for side in (sample.reference_mask >= 128, sample.reference_mask < 128):
        if side.any():
            flat[side] = np.round(sample.reference[side].mean(0)).astype(np.uint8)
    return replace(sample, reference=flat)


def with_auto_masks(triplets: Sequence[Sample]) -> list[Sample]:
    """The triplets with both masks computed (:mod:`refcolor.imaging.automask`) instead of given:
    what a model sees when the artist gives no mask. The scores stay against the true masks."""
    from refcolor.imaging.automask import reference_mask, sketch_mask

    return [
        replace(sample, mask=sketch_mask(sample.sketch), reference_mask=reference_mask(sample.reference))
        for sample in triplets
    ]


def mask_iou(computed: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two 0/255 masks (1.0 when both are empty)."""
    a, b = computed >= 128, truth >= 128
    union = int((a | b).sum())
    return float((a & b).sum() / union) if union else 1.0
