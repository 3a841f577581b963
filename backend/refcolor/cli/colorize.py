"""``refcolor colorize``: colorize one sketch from the command line, writing PNG layers.

Wired into ``refcolor``'s argparse by :mod:`refcolor.cli` (``add_arguments`` + ``run``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from refcolor.imaging import automask
from refcolor.models import masks
from refcolor.models.job import ColorizeJob, PreviewFn, resolve_seed
from refcolor.models.options import add_model_options, model_options
from refcolor_protocol.errors import ProtocolError
from refcolor_protocol.messages import ColorizeParams, MaskName, Stage
from refcolor_protocol.schema import PARAMS, ParamSpec, params_from

logger = logging.getLogger(__name__)


# Every colorization parameter is a flag, made from its one declaration (refcolor_protocol.schema);
# previews are for a paint app's progress bar, and there is nothing to show them on here.
CLI_PARAMS = tuple(spec for spec in PARAMS if spec.name != "previews")


def param_type(spec: ParamSpec) -> Callable[[str], Any]:
    """argparse type for ``spec``: its parser, with its message on a bad value."""

    def parse(text: str) -> Any:
        try:
            return spec.parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def add_param_arguments(parser: argparse.ArgumentParser) -> None:
    """A flag per parameter (``--reference-scale``...); an omitted one takes the schema's default."""
    group = parser.add_argument_group("colorization parameters (PROTOCOL.md, ColorizeParams)")
    for spec in CLI_PARAMS:
        group.add_argument(
            spec.flag,
            type=param_type(spec),
            default=argparse.SUPPRESS,
            metavar=spec.name.upper() if not spec.choices else "{" + ",".join(spec.choices) + "}",
            help=f"{spec.help} ({spec.accepts()}; default {spec.format(spec.default)})".replace("%", "%%"),
        )


def params_from_args(args: argparse.Namespace) -> ColorizeParams:
    """The parameters given on the command line, the rest at their defaults.

    Raises:
        ProtocolError: a combination the protocol refuses (guidance_start after guidance_end).
    """
    return params_from({spec.name: getattr(args, spec.name) for spec in CLI_PARAMS if hasattr(args, spec.name)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sketch", type=Path, help="line-art image (dark lines on white or transparent)")
    parser.add_argument("reference", type=Path, help="color reference image")
    parser.add_argument(
        "--mask",
        type=mask_source,
        help="sketch foreground mask (white = character), or 'auto': what the canvas border cannot reach "
        "through the line art's paper (written as <stem>_mask.png)",
    )
    parser.add_argument(
        "--reference-mask",
        type=mask_source,
        help="reference foreground mask (default: its alpha), or 'auto': its salient character, for a "
        "reference without transparency (written as <stem>_reference_mask.png)",
    )
    parser.add_argument("--background", type=Path, help="separate background reference")
    parser.add_argument("--model", default="nano", help="registered model name or model folder (default nano)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    add_param_arguments(parser)
    add_model_options(parser)


def _image(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


AUTO = "auto"
COMPUTED_FILES = {MaskName.SKETCH: "mask", MaskName.REFERENCE: "reference_mask"}  # <stem>_<this>.png


def mask_source(text: str) -> Path | str:
    """argparse type of a mask option: "auto", or a path."""
    return AUTO if text == AUTO else Path(text)


def _mask(source: Path | str | None) -> np.ndarray | None:
    """The mask file a ``--mask``-like option names (None for none, or for "auto": computed later)."""
    if source is None or source == AUTO:
        return None
    return np.asarray(Image.open(source).convert("L"))


class _ProgressBar:
    """A :class:`refcolor.models.job.JobContext` that drives a tqdm bar."""

    def __init__(self, total: int) -> None:
        self.bar = tqdm(total=total, unit="step", file=sys.stderr)

    def progress(self, step: int, total: int, preview: PreviewFn | None = None, variation: int = 0) -> None:
        self.bar.total = total
        self.bar.update(step - self.bar.n)

    def check_cancelled(self) -> None:
        return None

    def stage(self, stage: Stage, done: float = 0.0) -> None:
        self.bar.set_description(stage.value if stage is Stage.DENOISING else f"{stage.value} {done:.0%}")

    def close(self) -> None:
        self.bar.close()


def run(args: argparse.Namespace) -> int:
    """Colorize ``args.sketch`` and write ``<output>/<stem>_{combined,foreground,background}[_<i>].png``
    and ``<stem>_sheet.png`` (sketch, reference and every result side by side)."""
    from refcolor.models import UnknownModelError, load_colorizer  # imports torch: keep --help fast

    try:
        params = params_from_args(args)
        sketch = _image(args.sketch)
        job = ColorizeJob(
            sketch=sketch,
            reference=_image(args.reference),
            params=params,
            seed=resolve_seed(params),
            sketch_mask=_mask(args.mask),
            reference_mask=_mask(args.reference_mask),
            background=None if args.background is None else _image(args.background),
        )
        sources = ((MaskName.SKETCH, args.mask), (MaskName.REFERENCE, args.reference_mask))
        job, computed = masks.fill(job, tuple(name for name, source in sources if source == AUTO))
        colorizer = load_colorizer(args.model, args.device, **model_options(args)[args.model])
    except (OSError, ValueError, ProtocolError, UnknownModelError, automask.MaskModelMissingError) as error:
        print(f"refcolor colorize: {error}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    for which, mask in computed.items():  # what was computed, to look at or correct and pass back
        path = args.output / f"{args.sketch.stem}_{COMPUTED_FILES[which]}.png"
        Image.fromarray(mask, "L").save(path)
        print(path)
    if params.seed is None:
        print(f"seed {job.seed} (--seed {job.seed} repeats this result)", file=sys.stderr)
    bar = _ProgressBar(params.steps)
    try:
        layer_sets = colorizer.colorize(job, bar)
    except ValueError as error:
        print(f"refcolor colorize: {error}", file=sys.stderr)
        return 2
    finally:
        bar.close()
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
