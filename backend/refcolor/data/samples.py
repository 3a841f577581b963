"""Training (and evaluation) samples: a character on a background, its sketch, its reference.

One sample, all at ``size`` x ``size``:

* ``target``: the character composited on a random crop of a background (ground truth);
* ``sketch``: line art of the target by a randomly drawn classical extractor;
* ``mask``: the character's alpha, thresholded (255 = foreground);
* ``reference`` / ``reference_mask``: the same character under a geometric mismatch
  (flip, scale, rotation, translation, elastic warp) on a different crop of the same
  background, so colours must be found by meaning rather than position.

Target and reference get the same random hue/saturation shift. Everything a sample
draws comes from ``numpy.random.default_rng([seed, index])``, so sample ``index`` of a
source is the same on every machine and in every worker process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from refcolor.data import augment
from refcolor.data.sources import lowest_value
from refcolor.imaging import lineart

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class Sample:
    target: np.ndarray  # (S, S, 3) uint8, ground truth colours
    sketch: np.ndarray  # (S, S) uint8, 255 = paper, 0 = ink
    mask: np.ndarray  # (S, S) uint8, 255 = foreground
    reference: np.ndarray  # (S, S, 3) uint8
    reference_mask: np.ndarray  # (S, S) uint8, 255 = foreground
    meta: dict[str, str | float] = field(default_factory=dict)

    def sketch_rgba(self) -> np.ndarray:
        """The sketch as an opaque grey RGBA8 layer, as Krita would send it."""
        gray = self.sketch
        return np.dstack([gray, gray, gray, np.full_like(gray, 255)])

    def reference_rgba(self) -> np.ndarray:
        return np.dstack([self.reference, np.full(self.reference.shape[:2], 255, np.uint8)])


@dataclass(frozen=True)
class Placement:
    """How big and where the character stands on the canvas."""

    height: tuple[float, float] = (0.55, 0.95)  # character height as a fraction of the canvas
    max_width: float = 0.95  # the character's width never exceeds this fraction
    background_crop: tuple[float, float] = (
        0.35,
        1.0,
    )  # crop side as a fraction of the background's short side


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (the order samples index into)."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder}: not a folder; expected a folder of images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def crop_to_alpha(image: Image.Image, threshold: int = 8) -> Image.Image:
    """Crop an RGBA image to the bounding box of its (nearly) opaque pixels."""
    box = image.getchannel("A").point(lambda a: 255 if a >= threshold else 0).getbbox()
    return image.crop(box) if box else image


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(image.size)
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def load_character(path: Path, max_side: int) -> Image.Image:
    """An RGBA character cropped to its alpha and shrunk to ``max_side``.

    Raises:
        ValueError: the image has no transparent pixel, so it has no foreground mask.
    """
    with Image.open(path) as opened:
        image = opened.convert("RGBA")
    if lowest_value(image.getchannel("A")) >= 128:
        raise ValueError(f"{path}: no transparent pixels; a character needs alpha (0 = background)")
    return fit_within(crop_to_alpha(image), max_side)


def load_background(path: Path, min_side: int) -> Image.Image:
    """An opaque RGB background shrunk so its short side is at most ``min_side``."""
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    scale = min_side / min(image.size)
    if scale < 1.0:
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
        )
    return image


def random_crop(
    background: Image.Image, rng: np.random.Generator, size: int, crop: tuple[float, float]
) -> np.ndarray:
    """(size, size, 3) uint8: a random square crop, resized."""
    short = min(background.size)
    side = max(8, int(short * rng.uniform(*crop)))
    x0 = int(rng.integers(0, background.width - side + 1))
    y0 = int(rng.integers(0, background.height - side + 1))
    box = (x0, y0, x0 + side, y0 + side)
    return np.asarray(background.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0))


def place(character: Image.Image, rng: np.random.Generator, size: int, placement: Placement) -> np.ndarray:
    """(size, size, 4) uint8: the character scaled and put at a random spot on a clear layer."""
    scale = rng.uniform(*placement.height) * size / character.height
    scale = min(scale, placement.max_width * size / character.width)
    width, height = max(1, round(character.width * scale)), max(1, round(character.height * scale))
    resized = character.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    x = int(rng.integers(0, max(1, size - width + 1)))
    y = int(rng.integers(0, max(1, size - height + 1)))
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    layer.paste(resized, (x, y))
    return np.asarray(layer)


def composite(layer: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Straight-alpha "over": (S, S, 4) layer on (S, S, 3) background, uint8 out."""
    alpha = layer[..., 3:4].astype(np.float32) / 255.0
    out = layer[..., :3].astype(np.float32) * alpha + background.astype(np.float32) * (1.0 - alpha)
    return (out + 0.5).astype(np.uint8)


def alpha_mask(layer: np.ndarray) -> np.ndarray:
    return np.where(layer[..., 3] >= 128, 255, 0).astype(np.uint8)


def make_sample(
    character: Image.Image,
    background: Image.Image,
    rng: np.random.Generator,
    size: int,
    placement: Placement | None = None,
    mismatch: augment.MismatchRange | None = None,
) -> Sample:
    """Build one sample from an RGBA character and an RGB background (see the module doc)."""
    placement = placement or Placement()
    layer = place(character, rng, size, placement)
    target_bg = random_crop(background, rng, size, placement.background_crop)
    reference_bg = random_crop(background, rng, size, placement.background_crop)
    mask = alpha_mask(layer)
    # A mismatch can push the character off the canvas; redraw it (a few times) if so.
    for _ in range(4):
        change = augment.draw_mismatch(rng, size, mismatch)
        moved = augment.apply_mismatch(layer, change, rng)
        reference_mask = alpha_mask(moved)
        if np.count_nonzero(reference_mask) >= 0.3 * np.count_nonzero(mask):
            break
    shift = augment.draw_color_shift(rng)
    target = augment.shift_hue_saturation(composite(layer, target_bg), shift)
    reference = augment.shift_hue_saturation(composite(moved, reference_bg), shift)
    sketch, style = lineart.random_lineart(target, rng, mask)
    meta: dict[str, str | float] = {
        "lineart": style.describe(),
        "flip": float(change.flip),
        "scale": change.scale,
        "rotation": change.rotation,
        "shift_x": change.shift[0],
        "shift_y": change.shift[1],
        "elastic": change.elastic,
        "hue_shift": shift.hue,
        "saturation_scale": shift.saturation,
    }
    return Sample(target, sketch, mask, reference, reference_mask, meta)


class SampleSource:
    """Indexable samples from a folder of RGBA characters and a folder of backgrounds.

    ``source[i]`` is deterministic in (``seed``, ``i``) and the sorted file lists, so it
    works as a map-style dataset for any number of data-loader workers. Decoded images
    are cached per process at the size samples need.

    Args:
        characters: RGBA images whose alpha is the foreground (images without
            transparency are skipped with a warning).
        backgrounds: any images; used opaque.
        size: side of every sample image.
        seed: the source's seed.
        length: what ``len()`` reports (samples per epoch); indices beyond it still work.
    """

    def __init__(
        self,
        characters: Sequence[Path],
        backgrounds: Sequence[Path],
        size: int = 256,
        seed: int = 0,
        length: int = 10_000,
        placement: Placement | None = None,
        mismatch: augment.MismatchRange | None = None,
    ) -> None:
        if not characters:
            raise ValueError("no character images given: expected RGBA PNGs whose alpha is the foreground")
        if not backgrounds:
            raise ValueError("no background images given: expected at least one opaque image")
        if size < 16:
            raise ValueError(f"size={size}: expected a sample side of at least 16 pixels")
        self.character_paths = list(characters)
        self.background_paths = list(backgrounds)
        self.size, self.seed, self.length = size, seed, length
        self.placement = placement or Placement()
        self.mismatch = mismatch
        self._characters: dict[int, Image.Image | None] = {}
        self._backgrounds: dict[int, Image.Image] = {}

    @classmethod
    def from_folders(cls, characters: Path, backgrounds: Path, **kwargs: Any) -> SampleSource:
        """The images of two folders; ``kwargs`` as the constructor's."""
        return cls(list_images(Path(characters)), list_images(Path(backgrounds)), **kwargs)

    def __len__(self) -> int:
        return self.length

    def character(self, index: int) -> Image.Image | None:
        if index not in self._characters:
            path = self.character_paths[index]
            try:
                # The character is never drawn taller than the canvas (x1.25 by the mismatch).
                self._characters[index] = load_character(path, max_side=int(self.size * 1.3))
            except ValueError as error:
                logger.warning("skipping character: %s", error)
                self._characters[index] = None
        return self._characters[index]

    def background(self, index: int) -> Image.Image:
        if index not in self._backgrounds:
            self._backgrounds[index] = load_background(
                self.background_paths[index], min_side=int(self.size * 2)
            )
        return self._backgrounds[index]

    def __getitem__(self, index: int) -> Sample:
        rng = np.random.default_rng([self.seed, index])
        order = rng.permutation(len(self.character_paths))
        for character_index in order[:16]:
            character = self.character(int(character_index))
            if character is not None:
                break
        else:
            raise ValueError(
                f"none of 16 characters drawn for sample {index} has transparency; check the folder"
            )
        background, meta = self.draw_background(rng)
        sample = make_sample(character, background, rng, self.size, self.placement, self.mismatch)
        sample.meta["character"] = self.character_paths[int(character_index)].name
        sample.meta.update(meta)
        return sample

    def draw_background(self, rng: np.random.Generator) -> tuple[Image.Image, dict[str, str]]:
        """The background of the sample ``rng`` belongs to, and what to note of it in the sample's
        ``meta``: one of the folder's, drawn at random (subclasses draw others)."""
        index = int(rng.integers(len(self.background_paths)))
        return self.background(index), {"background": self.background_paths[index].name}
