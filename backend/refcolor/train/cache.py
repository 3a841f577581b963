"""The prepared sample cache: training samples drawn once, stored as they reach the model.

Drawing a sample (compositing, line extraction, warping) costs more than a training step
uses per sample, so a run draws ``count`` samples from :class:`~refcolor.data.samples.SampleSource`
once and prepares each exactly as the pipeline prepares a user's images
(:func:`refcolor.diffusion.inputs.prepare_images`: line ink and mask at the model's native size,
the reference at the encoder's input size), so training sees what inference sees.
Arrays are uint8 ``.npy`` files, memory-mapped when read.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from refcolor.data.samples import SampleSource
from refcolor.diffusion import inputs
from refcolor.imaging import automask, pixels
from refcolor.imaging.matching import WORK_SIDE as PRIOR_SIDE
from refcolor.imaging.matching import Correspondence, Fields, composite, load_line_features
from refcolor.models import masks

logger = logging.getLogger(__name__)

ARRAYS = ("target", "ink", "mask", "reference", "reference_mask")
# The colour prior of a model that takes one: what the sketch takes from the whole reference, from its
# foreground and from its background (refcolor.imaging.matching.SideFields), sRGB at the latent grid.
PRIOR_ARRAYS = ("prior_whole", "prior_foreground", "prior_background")
DONE = "cache.json"
AUTO_MASK_STREAM = 19  # the random stream that picks which samples get automatic masks


@dataclass(frozen=True)
class CacheSpec:
    characters: Path
    backgrounds: Path
    count: int
    sample_size: int
    native: int  # the model's native side
    encoder_size: int  # the reference encoder's input side
    seed: int = 0
    prior_factor: int = 0  # > 0: also the colour prior, at the native size divided by this (the latent grid)
    # The share of samples whose masks are computed as a user's "Automatic" ones are
    # (refcolor.imaging.automask) instead of taken from the character's alpha, so the model learns
    # to live with their errors; the target stays the true picture.
    auto_mask_share: float = 0.0

    @property
    def arrays(self) -> tuple[str, ...]:
        return ARRAYS + (PRIOR_ARRAYS if self.prior_factor else ())

    def describe(self) -> dict[str, object]:
        prior: dict[str, object] = {"prior_factor": self.prior_factor} if self.prior_factor else {}
        if self.auto_mask_share:
            prior["auto_mask_share"] = self.auto_mask_share
        return {**prior,
            "characters": str(self.characters),
            "backgrounds": str(self.backgrounds),
            "count": self.count,
            "sample_size": self.sample_size,
            "native": self.native,
            "encoder_size": self.encoder_size,
            "seed": self.seed,
        }


def prepare_sample(
    source: SampleSource,
    index: int,
    native: int,
    encoder_size: int,
    correspondence: Correspondence | None = None,
    prior_factor: int = 0,
    auto_masks: bool = False,
) -> dict[str, np.ndarray]:
    """Sample ``index`` of ``source`` as uint8 arrays at the model's sizes (with ``correspondence``
    and ``prior_factor``, also the colour prior's three fields at the latent grid; with
    ``auto_masks``, both masks computed from the sketch and the reference as for "Automatic")."""
    sample = source[index]
    sketch, reference = sample.sketch_rgba(), sample.reference_rgba()
    sketch_mask, reference_mask = sample.mask, sample.reference_mask
    if auto_masks:
        sketch_mask = automask.sketch_mask(masks.on_white(sketch))
        reference_mask = automask.reference_mask(masks.on_white(reference))
    images = inputs.prepare_images(
        sketch, reference, sketch_mask, reference_mask, None, native, encoder_size,
        prior_side=PRIOR_SIDE if correspondence is not None else 0,
    )  # fmt: skip
    height, width = images.ink.shape
    target = pixels.resize_float(sample.target.astype(np.float32) / 255.0, (width, height))
    prepared_reference_mask = images.reference_mask if images.reference_mask is not None else np.ones_like(images.ink)
    prepared = {
        "target": pixels.to_uint8(target),
        "ink": pixels.to_uint8(images.ink),
        "mask": pixels.to_uint8(images.native_mask),
        "reference": pixels.to_uint8(images.reference_rgb),
        "reference_mask": pixels.to_uint8(prepared_reference_mask),
    }
    if correspondence is not None and images.prior is not None:
        prior = images.prior
        sides = correspondence.side_fields(
            prior.sketch_paper, prior.reference_rgb, prior.reference_mask, prior.background_rgb
        )
        grid = (width // prior_factor, height // prior_factor)
        for name, field in zip(PRIOR_ARRAYS, (sides.whole, sides.foreground, sides.background), strict=True):
            chosen = sides.whole if field is None else field
            prepared[name] = pixels.to_uint8(composite(Fields(chosen, chosen), None, grid))
    return prepared


_worker_source: SampleSource | None = None
_worker_spec: CacheSpec | None = None
_worker_correspondence: Correspondence | None = None


def _init_worker(spec: CacheSpec, threads: int | None = 1) -> None:
    global _worker_source, _worker_spec, _worker_correspondence
    if threads:
        torch.set_num_threads(threads)
    _worker_source = SampleSource.from_folders(
        spec.characters, spec.backgrounds, size=spec.sample_size, seed=spec.seed, length=spec.count
    )
    _worker_spec = spec
    _worker_correspondence = Correspondence(load_line_features()) if spec.prior_factor else None


def takes_auto_masks(spec: CacheSpec, index: int) -> bool:
    """Whether sample ``index`` of a cache gets automatic masks: a fixed draw per (seed, index)."""
    if spec.auto_mask_share <= 0:
        return False
    return bool(np.random.default_rng([spec.seed, index, AUTO_MASK_STREAM]).random() < spec.auto_mask_share)


def _prepare(index: int) -> dict[str, np.ndarray]:
    assert _worker_source is not None and _worker_spec is not None
    spec = _worker_spec
    return prepare_sample(
        _worker_source, index, spec.native, spec.encoder_size, _worker_correspondence, spec.prior_factor,
        takes_auto_masks(spec, index),
    )  # fmt: skip


def build_cache(spec: CacheSpec, folder: Path, workers: int = 2) -> Path:
    """Draw and prepare ``spec.count`` samples into ``folder`` (reused when it already holds them).

    Raises:
        ValueError: ``folder`` holds a cache built from another spec.
    """
    folder = Path(folder)
    marker = folder / DONE
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found != spec.describe():
            raise ValueError(
                f"{folder} holds a sample cache built with {found}, not {spec.describe()}; "
                "delete it or train into another folder"
            )
        return folder
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted build
    folder.mkdir(parents=True)
    logger.info("preparing %d training samples into %s (%d processes)", spec.count, folder, workers)
    _init_worker(spec, threads=None)  # this process's own source (and prior), for the first sample's shapes
    first = _prepare(0)
    arrays = {
        name: np.lib.format.open_memmap(
            folder / f"{name}.npy", mode="w+", dtype=np.uint8, shape=(spec.count, *first[name].shape)
        )
        for name in spec.arrays
    }

    def store(prepared_samples: Iterator[dict[str, np.ndarray]]) -> None:
        for index, prepared in enumerate(prepared_samples):
            for name in spec.arrays:
                arrays[name][index] = prepared[name]
            if (index + 1) % 1000 == 0:
                logger.info("prepared %d / %d samples", index + 1, spec.count)

    if workers <= 0:  # in this process (tests, debugging)
        store(_prepare(i) for i in range(spec.count))
    else:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(spec,)) as pool:
            store(pool.imap(_prepare, range(spec.count), chunksize=16))
    for array in arrays.values():
        array.flush()
    marker.write_text(json.dumps(spec.describe(), indent=1))
    return folder


@dataclass
class Batch:
    """One training batch as float tensors (B first)."""

    target: torch.Tensor  # (B, 3, h, w) in [-1, 1]
    ink: torch.Tensor  # (B, 1, h, w) in [0, 1], 1 = line
    mask: torch.Tensor  # (B, 1, h, w) in [0, 1], 1 = foreground
    reference: torch.Tensor  # (B, 3, S, S) in [0, 1]
    reference_mask: torch.Tensor  # (B, 1, S, S) in [0, 1]
    # (B, 3, 3, h/f, w/f) in [0, 1]: the colour prior's whole / foreground / background fields, or None
    prior: torch.Tensor | None = None

    def to(self, device: str | torch.device) -> Batch:
        prior = None if self.prior is None else self.prior.to(device)
        arrays = {name: getattr(self, name).to(device) for name in ARRAYS}
        return Batch(**arrays, prior=prior)


class SampleCache:
    """Random batches from a built cache; every draw comes from the given generator."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / DONE).is_file():
            raise FileNotFoundError(f"{self.folder} has no complete sample cache; build it with build_cache()")
        names = ARRAYS + tuple(n for n in PRIOR_ARRAYS if (self.folder / f"{n}.npy").is_file())
        self.arrays = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in names}
        self.has_prior = all(name in self.arrays for name in PRIOR_ARRAYS)
        self.count = len(self.arrays["target"])

    def __len__(self) -> int:
        return self.count

    def batch(self, indices: np.ndarray, rng: np.random.Generator, ink_fade: tuple[float, float] = (1.0, 1.0)) -> Batch:
        """The samples at ``indices``, each mirrored left-right with probability 1/2 (sketch, mask and
        target together; the reference on its own) and its ink scaled by a factor from ``ink_fade``."""
        order = np.sort(indices)  # memory maps read faster in order
        picked = {name: np.asarray(self.arrays[name][order]) for name in self.arrays}
        flip = rng.random(len(order)) < 0.5
        flip_reference = rng.random(len(order)) < 0.5
        # The prior goes with the sketch; a mirrored reference leaves it (the matching is near
        # mirror-invariant, and the colours it finds stay where the sketch's parts are).
        for name in ("target", "ink", "mask", *(PRIOR_ARRAYS if self.has_prior else ())):
            picked[name][flip] = picked[name][flip][:, :, ::-1]
        for name in ("reference", "reference_mask"):
            picked[name][flip_reference] = picked[name][flip_reference][:, :, ::-1]

        def tensor(array: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(array)).float() / 255.0
            return t.permute(0, 3, 1, 2) if t.ndim == 4 else t.unsqueeze(1)

        fade = torch.from_numpy(rng.uniform(*ink_fade, size=len(order)).astype(np.float32)).view(-1, 1, 1, 1)
        return Batch(
            target=tensor(picked["target"]) * 2 - 1,
            ink=tensor(picked["ink"]) * fade,
            mask=tensor(picked["mask"]),
            reference=tensor(picked["reference"]),
            reference_mask=tensor(picked["reference_mask"]),
            prior=torch.stack([tensor(picked[name]) for name in PRIOR_ARRAYS], 1) if self.has_prior else None,
        )
