"""Fixtures for the model tests: the tiny random-weight pipeline and small synthetic images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from refcolor.diffusion.config import TINY
from refcolor.diffusion.factory import build_pipeline
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline

SIZE = 96  # sketch side in pixels; tests run the model at resolution 64 (an 8x8 latent) to stay fast


@pytest.fixture(scope="session")
def tiny_pipe() -> ReferenceColorizationPipeline:
    pipe = build_pipeline(TINY, seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def pipe(tiny_pipe: ReferenceColorizationPipeline) -> ReferenceColorizationPipeline:
    """The shared tiny pipeline, with the per-test state (cache) reset."""
    tiny_pipe.encoding_cache = None
    return tiny_pipe


@pytest.fixture(scope="session")
def sketch() -> np.ndarray:
    """A white RGBA sheet with a black box outline and a cross inside it."""
    image = np.full((SIZE, SIZE + 16, 4), 255, np.uint8)
    image[10:12, 10:90, :3] = 0
    image[80:82, 10:90, :3] = 0
    image[10:82, 10:12, :3] = 0
    image[10:82, 88:90, :3] = 0
    image[45:47, 10:90, :3] = 0
    return image


@pytest.fixture(scope="session")
def sketch_mask(sketch: np.ndarray) -> np.ndarray:
    mask = np.zeros(sketch.shape[:2], np.uint8)
    mask[10:82, 10:90] = 255
    return mask


@pytest.fixture(scope="session")
def reference() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 40, 4), dtype=np.uint8)
    image[..., 3] = 255
    return image


@pytest.fixture(scope="session")
def reference_mask(reference: np.ndarray) -> np.ndarray:
    mask = np.zeros(reference.shape[:2], np.uint8)
    mask[8:40, 8:32] = 255
    return mask


def generators(seed: int, count: int = 1) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(count)]
