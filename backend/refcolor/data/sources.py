"""Choose characters and backgrounds from the unpacked packages, filter junk, split.

Characters are images with real transparency (alpha is the exact foreground mask):
wesnoth's painted portraits and openclipart's pictures of people, animals and
objects. Backgrounds are wesnoth's opaque full-frame paintings (story screens, the
world map, dialog art). Every rejection is counted by (package, kind, reason), so the
data card can say what each filter removed.

The held-out split is by *group* (an image and its variants: ``assassin`` and
``assassin+female``, ``menu_example1`` .. ``menu_example5``) so that no held-out
character or background has a near-copy in training.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from refcolor.data.debian import OPENCLIPART, WESNOTH

logger = logging.getLogger(__name__)

WESNOTH_TREE = Path("usr/share/games/wesnoth/1.16")
WESNOTH_PORTRAITS = "data/core/images/portraits"
WESNOTH_BACKGROUND_DIRS = ("data/core/images/story", "data/core/images/maps", "images/dialogs")
OPENCLIPART_TREE = Path("usr/share/openclipart/png")
# People, animals and objects; not symbols, logos, buttons, maps, patterns or icon themes.
OPENCLIPART_CATEGORIES = (
    "animals", "buildings", "computer", "containers", "decorations", "education", "electronics", "food",
    "office", "people", "plants", "recreation", "science", "tools", "transportation", "unsorted",
)  # fmt: skip
OPENCLIPART_EXCLUDED_DIRS = ("computer/icons", "computer/buttons", "unsorted/duplicates")
PLACEHOLDER_STEMS = ("missing-image", "image-not-found", "notfound", "placeholder", "blank", "empty")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_PIXELS = 40_000_000  # a few openclipart PNGs are posters of 200+ Mpx; decoding them costs GBs


@dataclass(frozen=True)
class Filters:
    """Thresholds of the junk filters (the defaults are the documented build)."""

    min_character_side: int = 256  # longest side of the alpha bounding box
    min_character_short_side: int = 64  # shortest side of it (drops lines and arrows)
    min_alpha_coverage: float = 0.03  # foreground share of the image: below is near-empty
    max_alpha_coverage: float = 0.97  # above is near-full (no real transparency)
    min_colorful_share: float = 0.05  # foreground share with saturation > 0.2: below is black/white
    min_background_side: int = 300
    min_background_contrast: float = 0.08  # std of luminance (0..1): below is a flat fill


@dataclass(frozen=True)
class Candidate:
    package: str
    kind: str  # "character" | "background"
    path: Path  # absolute
    relpath: str  # inside the package's image tree

    @property
    def name(self) -> str:
        """File name in the built data set: package and path, flattened."""
        prefix = "wesnoth" if self.package == WESNOTH else "openclipart"
        stem = Path(self.relpath).with_suffix("").as_posix().replace("/", "--")
        return f"{prefix}--{re.sub(r'[^A-Za-z0-9+._-]', '_', stem)}"

    @property
    def group(self) -> str:
        """Images that are variants of each other share a group (and so a split)."""
        stem = Path(self.relpath).stem.lower()
        if self.kind == "background":
            stem = stem.split("_")[0]  # landscape-bridge_sun -> landscape-bridge
        else:
            stem = re.sub(r"[+].*$", "", stem)  # assassin+female -> assassin
            stem = re.sub(r"[-_ ]*\d+$", "", stem).rstrip("_-")  # menu_example3 -> menu_example
        return f"{self.package}:{self.kind}:{stem}"


@dataclass
class Selection:
    characters: list[Candidate] = field(default_factory=list)
    backgrounds: list[Candidate] = field(default_factory=list)
    rejected: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (package, kind, reason)
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)  # (package, kind)


def _images_under(root: Path) -> list[Path]:
    found = []
    for dirpath, _, filenames in os.walk(root, followlinks=False):
        found += [Path(dirpath, f) for f in filenames if f.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(found)


def wesnoth_candidates(unpacked: Path) -> list[Candidate]:
    tree = unpacked / WESNOTH_TREE
    if not tree.is_dir():
        raise FileNotFoundError(f"{tree}: missing; is {unpacked} an unpacked {WESNOTH}?")
    found = [
        Candidate(WESNOTH, "character", p, p.relative_to(tree).as_posix())
        for p in _images_under(tree / WESNOTH_PORTRAITS)
    ]
    for folder in WESNOTH_BACKGROUND_DIRS:
        found += [
            Candidate(WESNOTH, "background", p, p.relative_to(tree).as_posix())
            for p in _images_under(tree / folder)
        ]
    return found


def openclipart_candidates(unpacked: Path) -> list[Candidate]:
    """Character candidates; symlinked duplicates (one file under several categories) count once."""
    tree = unpacked / OPENCLIPART_TREE
    if not tree.is_dir():
        raise FileNotFoundError(f"{tree}: missing; is {unpacked} an unpacked {OPENCLIPART}?")
    found = []
    for category in OPENCLIPART_CATEGORIES:
        for path in _images_under(tree / category):
            relpath = path.relative_to(tree).as_posix()
            if path.is_symlink() or relpath.startswith(OPENCLIPART_EXCLUDED_DIRS):
                continue
            found.append(Candidate(OPENCLIPART, "character", path, relpath))
    return found


def character_problem(image: Image.Image, filters: Filters) -> str | None:
    """Why an RGBA image is no usable character, or None if it is one."""
    alpha = np.asarray(image.getchannel("A"))
    inside = alpha >= 128
    coverage = float(inside.mean())
    if coverage < filters.min_alpha_coverage:
        return "near-empty alpha"
    if coverage > filters.max_alpha_coverage:
        return "near-full alpha"
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    if max(height, width) < filters.min_character_side:
        return "too small"
    if min(height, width) < filters.min_character_short_side:
        return "too thin"
    hsv = np.asarray(image.convert("RGB").convert("HSV"))[inside]
    colorful = (hsv[:, 1] > 51) & (hsv[:, 2] > 38)
    if float(colorful.mean()) < filters.min_colorful_share:
        return "black and white"
    return None


def lowest_value(channel: Image.Image) -> float:
    """The lowest value of a one-band image (PIL types getextrema for multi-band images too)."""
    low, _high = channel.getextrema()
    return float(low)  # type: ignore[arg-type]  # one band: a number, not a pair


def background_problem(image: Image.Image, filters: Filters) -> str | None:
    """Why an image is no usable background, or None if it is one."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha and lowest_value(image.convert("RGBA").getchannel("A")) < 250:
        return "not opaque"
    if min(image.size) < filters.min_background_side:
        return "too small"
    luma = np.asarray(image.convert("L"), np.float32) / 255.0
    if float(luma.std()) < filters.min_background_contrast:
        return "flat"
    return None


def select(candidates: Iterable[Candidate], filters: Filters | None = None) -> Selection:
    """Open every candidate, apply the filters and drop byte-identical duplicates."""
    filters = filters or Filters()
    selection = Selection()
    digests: set[str] = set()
    for candidate in candidates:
        key = (candidate.package, candidate.kind)
        selection.seen[key] += 1
        reason = _problem(candidate, filters, digests)
        if reason is not None:
            selection.rejected[(*key, reason)] += 1
            continue
        (selection.characters if candidate.kind == "character" else selection.backgrounds).append(candidate)
    logger.info(
        "selected %d characters, %d backgrounds", len(selection.characters), len(selection.backgrounds)
    )
    return selection


def _problem(candidate: Candidate, filters: Filters, digests: set[str]) -> str | None:
    if Path(candidate.relpath).stem.lower() in PLACEHOLDER_STEMS:
        return "placeholder"
    data = candidate.path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest in digests:
        return "duplicate"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(candidate.path) as image:
                if image.width * image.height > MAX_PIXELS:
                    return "too large"
                image.load()
                if candidate.kind == "character":
                    reason = character_problem(image.convert("RGBA"), filters)
                else:
                    reason = background_problem(image, filters)
    except Image.DecompressionBombError:
        return "too large"
    except (OSError, ValueError) as error:
        logger.warning("%s: unreadable (%s)", candidate.path, error)
        return "unreadable"
    if reason is None:
        digests.add(digest)
    return reason


def split(items: list[Candidate], heldout_fraction: float, seed: int = 0, min_heldout: int = 1) -> set[str]:
    """Names of the held-out items: whole groups in a seeded hash order until the share is reached.

    Done per package so that both packages are represented in the held-out set.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction={heldout_fraction}: expected a value in [0, 1)")
    heldout: set[str] = set()
    for package in sorted({c.package for c in items}):
        members = [c for c in items if c.package == package]
        groups: dict[str, list[Candidate]] = {}
        for c in members:
            groups.setdefault(c.group, []).append(c)
        order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
        wanted = max(min_heldout, round(heldout_fraction * len(members))) if heldout_fraction > 0 else 0
        taken = 0
        for group in order[: len(order) - 1]:  # training always keeps at least one group
            if taken >= wanted:
                break
            heldout |= {c.name for c in groups[group]}
            taken += len(groups[group])
    return heldout
