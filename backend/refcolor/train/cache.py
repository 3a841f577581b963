"""The prepared sample cache: training samples drawn once, stored as they reach the model.

Drawing a sample (compositing, line extraction, warping) costs more than a training step
uses per sample, so a run draws ``count`` samples from :class:`~refcolor.data.samples.SampleSource`
once and prepares each exactly as the pipeline prepares a user's images
(:func:`refcolor.model.inputs.prepare_images`: line ink and mask at the model's native size,
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
from refcolor.model import imaging, inputs

logger = logging.getLogger(__name__)

ARRAYS = ("target", "ink", "mask", "reference", "reference_mask")
DONE = "cache.json"


@dataclass(frozen=True)
class CacheSpec:
    characters: Path
    backgrounds: Path
    count: int
    sample_size: int
    native: int  # the model's native side
    encoder_size: int  # the reference encoder's input side
    seed: int = 0

    def describe(self) -> dict[str, object]:
        return {
            "characters": str(self.characters),
            "backgrounds": str(self.backgrounds),
            "count": self.count,
            "sample_size": self.sample_size,
            "native": self.native,
            "encoder_size": self.encoder_size,
            "seed": self.seed,
        }


def prepare_sample(source: SampleSource, index: int, native: int, encoder_size: int) -> dict[str, np.ndarray]:
    """Sample ``index`` of ``source`` as uint8 arrays at the model's sizes."""
    sample = source[index]
    images = inputs.prepare_images(
        sample.sketch_rgba(), sample.reference_rgba(), sample.mask, sample.reference_mask, None, native, encoder_size
    )
    height, width = images.ink.shape
    target = imaging.resize_float(sample.target.astype(np.float32) / 255.0, (width, height))
    reference_mask = images.reference_mask if images.reference_mask is not None else np.ones_like(images.ink)
    return {
        "target": imaging.to_uint8(target),
        "ink": imaging.to_uint8(images.ink),
        "mask": imaging.to_uint8(images.native_mask),
        "reference": imaging.to_uint8(images.reference_rgb),
        "reference_mask": imaging.to_uint8(reference_mask),
    }


_worker_source: SampleSource | None = None
_worker_sizes: tuple[int, int] = (0, 0)


def _init_worker(spec: CacheSpec, threads: int | None = 1) -> None:
    global _worker_source, _worker_sizes
    if threads:
        torch.set_num_threads(threads)
    _worker_source = SampleSource.from_folders(
        spec.characters, spec.backgrounds, size=spec.sample_size, seed=spec.seed, length=spec.count
    )
    _worker_sizes = (spec.native, spec.encoder_size)


def _prepare(index: int) -> dict[str, np.ndarray]:
    assert _worker_source is not None
    return prepare_sample(_worker_source, index, *_worker_sizes)


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
    first = prepare_sample(
        SampleSource.from_folders(spec.characters, spec.backgrounds, size=spec.sample_size, seed=spec.seed),
        0,
        spec.native,
        spec.encoder_size,
    )
    arrays = {
        name: np.lib.format.open_memmap(
            folder / f"{name}.npy", mode="w+", dtype=np.uint8, shape=(spec.count, *first[name].shape)
        )
        for name in ARRAYS
    }

    def store(prepared_samples: Iterator[dict[str, np.ndarray]]) -> None:
        for index, prepared in enumerate(prepared_samples):
            for name in ARRAYS:
                arrays[name][index] = prepared[name]
            if (index + 1) % 1000 == 0:
                logger.info("prepared %d / %d samples", index + 1, spec.count)

    if workers <= 0:  # in this process (tests, debugging)
        _init_worker(spec, threads=None)
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

    def to(self, device: str | torch.device) -> Batch:
        return Batch(*(getattr(self, name).to(device) for name in ARRAYS))


class SampleCache:
    """Random batches from a built cache; every draw comes from the given generator."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / DONE).is_file():
            raise FileNotFoundError(f"{self.folder} has no complete sample cache; build it with build_cache()")
        self.arrays = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
        self.count = len(self.arrays["target"])

    def __len__(self) -> int:
        return self.count

    def batch(self, indices: np.ndarray, rng: np.random.Generator, ink_fade: tuple[float, float] = (1.0, 1.0)) -> Batch:
        """The samples at ``indices``, each mirrored left-right with probability 1/2 (sketch, mask and
        target together; the reference on its own) and its ink scaled by a factor from ``ink_fade``."""
        order = np.sort(indices)  # memory maps read faster in order
        picked = {name: np.asarray(self.arrays[name][order]) for name in ARRAYS}
        flip = rng.random(len(order)) < 0.5
        flip_reference = rng.random(len(order)) < 0.5
        for name in ("target", "ink", "mask"):
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
        )
