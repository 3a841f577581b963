"""``refcolor data build``: from two Debian packages to a training set on disk.

Stages:

1. fetch: ``apt-get download`` + ``dpkg-deb -x`` each package (:mod:`refcolor.data.debian`);
2. select: find characters and backgrounds, drop junk (:mod:`refcolor.data.sources`);
3. split: a fixed, grouped held-out set;
4. write: ``OUT/{train,heldout}/{characters,backgrounds}/`` (characters as RGBA PNGs
   cropped to their alpha, backgrounds as JPEGs), ``OUT/manifest.json`` (package
   versions, licences, every file's source and split, filter counts) and
   ``OUT/sample-sheet.png``.

Samples themselves are not written: :class:`refcolor.data.samples.SampleSource` makes
them on the fly from these folders, fast enough to feed training.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from refcolor.data import debian, sources
from refcolor.data.samples import Sample, SampleSource, crop_to_alpha, fit_within

logger = logging.getLogger(__name__)

CHARACTER_MAX_SIDE = 768  # enough for 512 px training with the mismatch's 1.25x zoom
BACKGROUND_MAX_SIDE = 1600


@dataclass(frozen=True)
class BuildConfig:
    out: Path
    work: Path  # downloads and unpacked packages
    heldout_fraction: float = 0.1  # of characters (by group, per package)
    background_heldout_fraction: float = 0.2  # of backgrounds; at least 2 are held out
    seed: int = 0
    apt_update: bool = False
    sheet_size: int = 192


def write_character(candidate: sources.Candidate, folder: Path) -> Path:
    with Image.open(candidate.path) as image:
        rgba = fit_within(crop_to_alpha(image.convert("RGBA")), CHARACTER_MAX_SIDE)
    path = folder / f"{candidate.name}.png"
    rgba.save(path, optimize=False, compress_level=6)
    return path


def write_background(candidate: sources.Candidate, folder: Path) -> Path:
    with Image.open(candidate.path) as image:
        rgb = fit_within(image.convert("RGB"), BACKGROUND_MAX_SIDE)
    path = folder / f"{candidate.name}.jpg"
    rgb.save(path, quality=92)
    return path


def build(config: BuildConfig) -> dict[str, object]:
    """Run every stage; returns the manifest (also written to ``OUT/manifest.json``)."""
    packages = {
        name: debian.fetch(name, config.work, apt_update=config.apt_update) for name in debian.PACKAGES
    }
    candidates = sources.wesnoth_candidates(packages[debian.WESNOTH].root)
    candidates += sources.openclipart_candidates(packages[debian.OPENCLIPART].root)
    selection = sources.select(candidates)
    heldout = sources.split(selection.characters, config.heldout_fraction, config.seed)
    heldout |= sources.split(
        selection.backgrounds, config.background_heldout_fraction, config.seed, min_heldout=2
    )

    files = []
    for kind, items, writer in (
        ("characters", selection.characters, write_character),
        ("backgrounds", selection.backgrounds, write_background),
    ):
        for split in ("train", "heldout"):
            (config.out / split / kind).mkdir(parents=True, exist_ok=True)
        for candidate in items:
            split = "heldout" if candidate.name in heldout else "train"
            path = writer(candidate, config.out / split / kind)
            files.append(
                {
                    "file": path.relative_to(config.out).as_posix(),
                    "package": candidate.package,
                    "source": candidate.relpath,
                    "split": split,
                    "group": candidate.group,
                }
            )
    manifest = {
        "packages": {
            p.name: {"version": p.version, "deb": p.deb.name, "license": debian.LICENSES[p.name]}
            for p in packages.values()
        },
        "seed": config.seed,
        "heldout_fraction": config.heldout_fraction,
        "background_heldout_fraction": config.background_heldout_fraction,
        "filters": vars(sources.Filters()),
        "seen": [{"package": p, "kind": k, "count": n} for (p, k), n in sorted(selection.seen.items())],
        "rejected": [
            {"package": p, "kind": k, "reason": r, "count": n}
            for (p, k, r), n in sorted(selection.rejected.items())
        ],
        "counts": count_files(files),
        "files": files,
    }
    (config.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    train = config.out / "train"
    source = SampleSource.from_folders(
        train / "characters", train / "backgrounds", size=config.sheet_size, seed=config.seed
    )
    sample_sheet([source[i] for i in range(6)]).save(config.out / "sample-sheet.png", optimize=True)
    logger.info("wrote %d files to %s", len(files), config.out)
    return manifest


def count_files(files: list[dict[str, str]]) -> list[dict[str, object]]:
    counts: dict[tuple[str, str, str], int] = {}
    for f in files:
        key = (f["package"], f["file"].split("/")[1], f["split"])
        counts[key] = counts.get(key, 0) + 1
    return [{"package": p, "kind": k, "split": s, "count": n} for (p, k, s), n in sorted(counts.items())]


SHEET_COLUMNS = ("target", "sketch", "mask", "reference", "reference mask")


def sample_sheet(samples: list[Sample]) -> Image.Image:
    """One row per sample: target, sketch, mask, reference, reference mask, with a header."""
    if not samples:
        raise ValueError("sample_sheet needs at least one sample")
    size = samples[0].target.shape[0]
    header = 18
    rows = []
    for s in samples:
        gray = [np.dstack([m] * 3) for m in (s.sketch, s.mask, s.reference_mask)]
        rows.append(np.hstack([s.target, gray[0], gray[1], s.reference, gray[2]]))
    sheet = Image.new("RGB", (size * len(SHEET_COLUMNS), header + size * len(rows)), "white")
    sheet.paste(Image.fromarray(np.vstack(rows)), (0, header))
    draw = ImageDraw.Draw(sheet)
    for i, title in enumerate(SHEET_COLUMNS):
        draw.text((i * size + 4, 3), title, fill="black")
    return sheet
