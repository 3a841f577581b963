"""``refcolor oracle``: load a checkpoint through the converter and compare with the authors' outputs.

Prints the max abs error of every output of the oracle file it reproduces; exits 0 only if all
are within the tolerance (1e-4), 1 if any is not, 2 on bad input. See :mod:`refcolor.convert.oracle`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from refcolor.cli.convert import add_config_argument

if TYPE_CHECKING:
    from refcolor.diffusion.pipeline import ReferenceColorizationPipeline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", type=Path, help="official checkpoint (.safetensors/.ckpt/.pt/.pth) or a converted folder"
    )
    parser.add_argument("io_file", type=Path, help="oracle file (the format of tiny_switch_io.safetensors)")
    add_config_argument(parser)
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs error allowed (default 1e-4)")


def _load(folder: Path) -> ReferenceColorizationPipeline:
    from refcolor.diffusion.pipeline import ReferenceColorizationPipeline

    # The oracle feeds reference tokens directly: a folder without image_encoder/ still works.
    extra = {} if (folder / "image_encoder" / "config.json").is_file() else {"image_encoder": None}
    pipe = ReferenceColorizationPipeline.from_pretrained(str(folder), **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import load_file

    from refcolor.convert.converter import convert_checkpoint
    from refcolor.convert.official_config import resolve_config
    from refcolor.convert.oracle import compare, reproduce

    try:
        io = load_file(str(args.io_file))
        if args.checkpoint.is_dir():
            pipe = _load(args.checkpoint)
        else:
            with tempfile.TemporaryDirectory(prefix="refcolor-oracle-") as tmp:
                folder = convert_checkpoint(args.checkpoint, Path(tmp) / "model", resolve_config(args.config))
                pipe = _load(folder)  # from_pretrained copies every weight, so the folder may go
        report = compare(reproduce(pipe, io), io, args.tolerance)
    except (OSError, ValueError, KeyError) as error:
        print(f"refcolor oracle: {error}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    if report.ok:
        print(f"all {len(report.errors)} reproduced tensors within {args.tolerance:g}")
        return 0
    failed = report.failed or ["(nothing reproduced)"]
    print(f"FAILED beyond {args.tolerance:g}: {', '.join(failed)}", file=sys.stderr)
    return 1
