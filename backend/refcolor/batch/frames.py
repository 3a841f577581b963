"""The frames of a shot: folders, globs and files, in natural sort order (``f2`` before ``f10``)."""

from __future__ import annotations

import glob
import re
from collections.abc import Sequence
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
_GLOB_CHARS = re.compile(r"[*?\[]")


def natural_key(path: Path) -> tuple[tuple[int, int | str], ...]:
    """Sort key of ``path`` that orders runs of digits by their value: frame2 < frame10."""
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(part)) if part.isdigit() else (1, part.casefold()) for part in parts if part)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_frames(specs: Sequence[str | Path]) -> list[Path]:
    """Every frame that ``specs`` name, once each, in natural order of their paths.

    A spec is a folder (its images, not its subfolders), a glob pattern (``shot/*.png``) or a file.

    Raises:
        FileNotFoundError: a spec names nothing, or a folder or glob holds no image.
        ValueError: two frames share a file name stem (their outputs would overwrite each other).
    """
    found: dict[Path, None] = {}
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            images = [p for p in path.iterdir() if p.is_file() and is_image(p)]
            if not images:
                raise FileNotFoundError(f"the folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        elif _GLOB_CHARS.search(str(spec)) and not path.exists():
            images = [p for p in map(Path, glob.glob(str(spec))) if p.is_file() and is_image(p)]
            if not images:
                raise FileNotFoundError(f"no image matches {spec}")
        elif path.is_file():
            images = [path]
        else:
            raise FileNotFoundError(
                f"no frame at {spec}: give a folder of frames, a glob such as 'shot/*.png', or files"
            )
        found.update(dict.fromkeys(p.resolve() for p in images))
    frames = sorted(found, key=natural_key)
    stems: dict[str, Path] = {}
    for frame in frames:
        if frame.stem in stems:
            raise ValueError(
                f"two frames are named {frame.stem!r} ({stems[frame.stem]} and {frame}): their outputs would "
                "overwrite each other; colorize them as separate shots"
            )
        stems[frame.stem] = frame
    return frames
