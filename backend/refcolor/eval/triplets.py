"""Deterministic test triplets (sketch + mask, mismatched reference, ground truth) from folders.

Triplets are made exactly like training samples (:mod:`refcolor.data.samples`): the
same compositing, extractors, mismatch and colour shift, drawn from the seed, so any
folder of RGBA characters (alpha = foreground) and any folder of backgrounds works,
the built held-out split included.
"""

from __future__ import annotations

from pathlib import Path

from refcolor.data.samples import Sample, SampleSource


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
