"""Shared fixtures: small synthetic characters and backgrounds on disk (data, eval), and a job context
that records progress (colorizers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def disc_character(side: int, color: tuple[int, int, int], radius: float = 0.4) -> np.ndarray:
    """(side, side, 4) uint8: an opaque coloured disc with a dark ring, transparent around it."""
    yy, xx = np.mgrid[:side, :side]
    r = np.hypot(yy - side / 2, xx - side / 2) / side
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[r < radius] = (*color, 255)
    rgba[(r >= radius - 0.03) & (r < radius)] = (20, 20, 20, 255)
    return rgba


def stripes_background(width: int, height: int, colors: list[tuple[int, int, int]]) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    band = max(1, height // len(colors))
    for i, color in enumerate(colors):
        rgb[i * band : (i + 1) * band] = color
    rgb[len(colors) * band :] = colors[-1]
    return rgb


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    characters, backgrounds = tmp_path / "characters", tmp_path / "backgrounds"
    characters.mkdir()
    backgrounds.mkdir()
    for i, color in enumerate([(220, 40, 40), (40, 200, 60), (230, 200, 30)]):
        Image.fromarray(disc_character(96, color)).save(characters / f"c{i}.png")
    Image.fromarray(stripes_background(160, 120, [(30, 60, 200), (20, 120, 220), (90, 90, 240)])).save(
        backgrounds / "b0.png"
    )
    Image.fromarray(stripes_background(140, 140, [(60, 30, 150), (10, 40, 120)])).save(backgrounds / "b1.jpg")
    return characters, backgrounds


@pytest.fixture
def disc() -> object:
    """The :func:`disc_character` maker, for tests that draw their own characters."""
    return disc_character


class RecordingContext:
    """A job context (refcolor.models.job.JobContext) that records every (step, total) reported."""

    def __init__(self, cancel_at: int | None = None) -> None:
        self.steps: list[tuple[int, int]] = []
        self.stages: list[str] = []
        self.fractions: list[tuple[str, float]] = []  # (stage, share done) of every stage report
        self.cancel_at = cancel_at

    def progress(self, step: int, total: int, preview: object = None, variation: int = 0) -> None:
        from refcolor.models.job import JobCancelled

        self.steps.append((step, total))
        if step == self.cancel_at:
            raise JobCancelled("cancelled by the test")

    def check_cancelled(self) -> None:
        return None

    def stage(self, stage: object, done: float = 0.0) -> None:
        if done == 0.0:  # a stage's start (a full-resolution stage also reports its progress)
            self.stages.append(str(getattr(stage, "value", stage)))
        self.fractions.append((str(getattr(stage, "value", stage)), done))


@pytest.fixture
def recorder() -> RecordingContext:
    return RecordingContext()
