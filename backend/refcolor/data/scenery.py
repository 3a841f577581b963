"""More varied backgrounds than a folder holds: for training the mask network (issue 19).

The training split has 17 backgrounds. A network fine-tuned on composites over them learns those
backgrounds as much as it learns what a character is (held-out masks scored 0.03–0.06 below the
training split's kept-apart ones). :class:`VariedSource` draws each sample's background as one of:

* ``plain``: a background of the folder, as :class:`~refcolor.data.samples.SampleSource` does;
* ``restyled``: one of the folder's, with its own hue rotation, saturation, brightness, contrast
  and, at times, a blur (a painted backdrop out of focus);
* ``procedural``: smooth coloured noise at two scales over a gradient, with a few flat shapes (so
  the sketch gets background lines that belong to no character);
* ``crowded``: one of the folder's with smaller characters of the split standing on it (only the
  sample's own character is foreground: a crowd, a poster, a battle scene behind the figure).

Everything is drawn from the sample's generator, so a sample stays the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from refcolor.data import augment
from refcolor.data.samples import SampleSource

KINDS = ("plain", "restyled", "procedural", "crowded")
SHARES = (0.4, 0.25, 0.2, 0.15)  # of KINDS, in order


def restyled(background: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``background`` with its own colour shift, brightness, contrast and sometimes a blur."""
    rgb = np.asarray(background.convert("RGB"))
    shift = augment.ColorShift(hue=float(rng.uniform(-0.5, 0.5)), saturation=float(rng.uniform(0.3, 1.5)))
    rgb = augment.shift_hue_saturation(rgb, shift).astype(np.float32) / 255.0
    gamma = float(np.exp(rng.uniform(-0.6, 0.6)))
    contrast, brightness = float(rng.uniform(0.6, 1.3)), float(rng.uniform(-0.15, 0.15))
    rgb = (np.power(rgb, gamma) - 0.5) * contrast + 0.5 + brightness
    image = Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8), "RGB")
    if rng.random() < 0.4:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 4.0)) * min(image.size) / 512))
    return image


def _smooth_colours(rng: np.random.Generator, side: int, scale: float) -> np.ndarray:
    """(side, side, 3) float32 in [-1, 1]: a smooth noise field (over ``scale`` pixels) per channel."""
    noise = np.dstack([augment.smooth_noise(rng, (side, side), scale) for _ in range(3)])
    return noise / max(float(np.abs(noise).max()), 1e-6)


def procedural(rng: np.random.Generator, side: int) -> Image.Image:
    """A ``side`` x ``side`` made-up backdrop: a two-colour gradient, smooth coloured noise at a
    coarse and a finer scale, and 0–6 flat ellipses, rectangles or bands."""
    first, second = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    ramp = np.clip((np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5, 0, 1)[..., None]
    rgb = first * (1 - ramp) + second * ramp
    rgb = rgb + rng.uniform(0.05, 0.35) * _smooth_colours(rng, side, side * rng.uniform(0.1, 0.3))
    rgb = rgb + rng.uniform(0.0, 0.15) * _smooth_colours(rng, side, side * rng.uniform(0.01, 0.04))
    image = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 7))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = (int(v) for v in rng.integers(-side // 4, side, 2))
        w, h = (int(v) for v in rng.integers(side // 10, side // 2, 2))
        shape = rng.integers(3)
        if shape == 0:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            y = int(rng.integers(0, side))
            draw.rectangle((0, y, side, y + max(2, h // 6)), fill=colour)
    return image


def crowded(background: Image.Image, others: Sequence[Image.Image], rng: np.random.Generator) -> Image.Image:
    """``background`` with ``others`` (RGBA characters) pasted small: each 10–30 % of its short
    side tall, anywhere."""
    image = background.convert("RGB").copy()
    short = min(image.size)
    for other in others:
        height = max(4, int(short * rng.uniform(0.1, 0.3)))
        width = max(1, round(other.width * height / other.height))
        small = other.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
        x = int(rng.integers(-width // 2, max(1, image.width - width // 2)))
        y = int(rng.integers(-height // 2, max(1, image.height - height // 2)))
        image.paste(small, (x, y), small)
    return image


class VariedSource(SampleSource):
    """A :class:`~refcolor.data.samples.SampleSource` whose backgrounds are drawn as the module doc
    says, in ``shares`` of :data:`KINDS` (plain, restyled, procedural, crowded); arguments otherwise
    as SampleSource's. The kind is in each sample's ``meta["background_kind"]``."""

    def __init__(
        self, characters: Sequence[Path], backgrounds: Sequence[Path], *args: Any,
        shares: Sequence[float] = SHARES, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(characters, backgrounds, *args, **kwargs)
        if len(shares) != len(KINDS) or min(shares) < 0 or not sum(shares) > 0:
            raise ValueError(f"shares={tuple(shares)}: expected {len(KINDS)} non-negative shares of {KINDS}")
        self.shares = np.asarray(shares, np.float64) / sum(shares)

    def draw_background(self, rng: np.random.Generator) -> tuple[Image.Image, dict[str, str]]:
        kind = KINDS[int(rng.choice(len(KINDS), p=self.shares))]
        if kind == "procedural":
            return procedural(rng, self.size * 2), {"background": "procedural", "background_kind": kind}
        image, meta = super().draw_background(rng)
        if kind == "restyled":
            image = restyled(image, rng)
        elif kind == "crowded":
            picks = rng.choice(len(self.character_paths), size=int(rng.integers(2, 7)))
            others = [c for c in (self.character(int(i)) for i in picks) if c is not None]
            image = crowded(image, others, rng)
        return image, {**meta, "background_kind": kind}
