"""``refcolor colorize``: colorize one sketch from the command line, writing PNG layers.

Wired into ``refcolor``'s argparse by :mod:`refcolor.cli` (``add_arguments`` + ``run``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from refcolor.engine import ColorizeJob, PreviewFn
from refcolor.model_options import add_model_options, apply_model_options
from refcolor_protocol.messages import ColorizeParams, Mode, Scheduler

logger = logging.getLogger(__name__)


def unit_interval(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sketch", type=Path, help="line-art image (dark lines on white or transparent)")
    parser.add_argument("reference", type=Path, help="color reference image")
    parser.add_argument("--mask", type=Path, help="sketch foreground mask (white = character)")
    parser.add_argument("--reference-mask", type=Path, help="reference foreground mask (default: its alpha)")
    parser.add_argument("--background", type=Path, help="separate background reference")
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.BOTH.value)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variations", type=int, default=1)
    parser.add_argument("--scheduler", choices=[s.value for s in Scheduler], default=Scheduler.DPMPP_2M.value)
    parser.add_argument("--reference-scale", type=float, default=5.0, help="reference guidance scale")
    parser.add_argument("--sketch-scale", type=float, default=1.0, help="sketch guidance scale")
    parser.add_argument("--resolution", type=int, default=0, help="model side length (0 = native)")
    parser.add_argument(
        "--color-match",
        type=unit_interval,
        help="0..1: how far each side takes its reference side's colours (default: the model's)",
    )
    parser.add_argument(
        "--flatten",
        type=unit_interval,
        help="0..1: how far each closed line-art region is evened out to one colour (default: the model's)",
    )
    parser.add_argument("--model", default="nano", help="registered model name or model folder (default nano)")
    parser.add_argument("--device", default="cpu")
    add_model_options(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")


def _image(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def _mask(path: Path | None) -> np.ndarray | None:
    return None if path is None else np.asarray(Image.open(path).convert("L"))


class _ProgressBar:
    """A :class:`refcolor.engine.JobContext` that drives a tqdm bar."""

    def __init__(self, total: int) -> None:
        self.bar = tqdm(total=total, unit="step", file=sys.stderr)

    def progress(self, step: int, total: int, preview: PreviewFn | None = None) -> None:
        self.bar.total = total
        self.bar.update(step - self.bar.n)

    def check_cancelled(self) -> None:
        return None

    def close(self) -> None:
        self.bar.close()


def run(args: argparse.Namespace) -> int:
    """Colorize ``args.sketch`` and write ``<output>/<stem>_{combined,foreground,background}[_<i>].png``
    and ``<stem>_sheet.png`` (sketch, reference and every result side by side)."""
    from refcolor.models import UnknownModelError, load_colorizer  # imports torch: keep --help fast

    try:
        params = ColorizeParams(
            mode=Mode(args.mode),
            seed=args.seed,
            steps=args.steps,
            variations=args.variations,
            scheduler=Scheduler(args.scheduler),
            reference_scale=args.reference_scale,
            sketch_scale=args.sketch_scale,
            resolution=args.resolution,
            color_match=args.color_match,
            flatten=args.flatten,
        )
        sketch = _image(args.sketch)
        job = ColorizeJob(
            sketch=sketch,
            reference=_image(args.reference),
            params=params,
            seed=args.seed,
            sketch_mask=_mask(args.mask),
            reference_mask=_mask(args.reference_mask),
            background=None if args.background is None else _image(args.background),
        )
        apply_model_options(args)
        colorizer = load_colorizer(args.model, args.device)
    except (OSError, ValueError, UnknownModelError) as error:
        print(f"refcolor colorize: {error}", file=sys.stderr)
        return 2
    bar = _ProgressBar(args.steps)
    try:
        layer_sets = colorizer.colorize(job, bar)
    except ValueError as error:
        print(f"refcolor colorize: {error}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    args.output.mkdir(parents=True, exist_ok=True)
    for i, layers in enumerate(layer_sets):
        suffix = "" if len(layer_sets) == 1 else f"_{i}"
        for name, pixels in layers.named().items():
            path = args.output / f"{args.sketch.stem}_{name}{suffix}.png"
            Image.fromarray(pixels, "RGBA").save(path)
            print(path)
    sheet = args.output / f"{args.sketch.stem}_sheet.png"
    side_by_side([sketch, job.reference, *(layers.combined for layers in layer_sets)]).save(sheet)
    print(sheet)
    return 0


def side_by_side(images: list[np.ndarray], height: int = 512, gap: int = 8) -> Image.Image:
    """RGBA images scaled to ``height`` and laid out left to right on white (transparency shows white)."""
    tiles = []
    for pixels in images:
        tile = Image.fromarray(pixels, "RGBA")
        tile = tile.resize((max(1, round(tile.width * height / tile.height)), height), Image.Resampling.LANCZOS)
        tiles.append(tile)
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), height), "white")
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0), tile)
        x += tile.width + gap
    return sheet
