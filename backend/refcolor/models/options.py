"""Command-line options of models that need more than a name (the official v1.5 weights).

Shared by ``refcolor serve`` and ``refcolor colorize``; :func:`model_options` gives the values to
pass to the model's factory (``load_colorizer(name, device, **options)``). Stdlib only, so
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model weights and memory (v1.5)")
    group.add_argument(
        "--weights",
        type=Path,
        metavar="DIR",
        help="folder written by `refcolor convert` / `refcolor models download v1.5` "
        "(default for v1.5: where `models download` puts it)",
    )
    group.add_argument(
        "--clip",
        type=Path,
        help="CLIP ViT-H/14 folder (transformers format) if the weights folder has no image_encoder/",
    )
    group.add_argument(
        "--offload",
        action="store_true",
        help="for GPUs with little memory (8 GB): keep the model in CPU memory, move each part to the GPU "
        "while it runs (diffusers model CPU offload; needs --device cuda)",
    )
    group.add_argument(
        "--vae-tiling", action="store_true", help="decode the image in tiles, one image at a time (less GPU memory)"
    )
    group.add_argument(
        "--both-clean",
        action="store_true",
        help="'both' mode with the paper's clean split (foreground tokens for the character, background tokens "
        "elsewhere) instead of the authors' released behaviour (each side attends to both token sets)",
    )


def model_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The options given for ``args.model``, as ``{model name: factory keyword options}``."""
    names = ("weights", "clip", "offload", "vae_tiling", "both_clean")  # the flags of add_model_options
    given = {name: getattr(args, name) for name in names}
    return {args.model: {key: value for key, value in given.items() if value is not None and value is not False}}
