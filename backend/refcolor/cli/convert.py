"""``refcolor convert``: an official ColorizeDiffusion v1.5 checkpoint -> a refcolor pipeline folder.

Wired into ``refcolor``'s argparse by :mod:`refcolor.cli` (``add_arguments`` + ``run``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="v1.5",
        help="the official variant: its JSON description (tiny_config.json's format) or a config name "
        "(v1.5, official-tiny); default v1.5",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="official checkpoint (.safetensors, .ckpt, .pt or .pth)")
    parser.add_argument("out_dir", type=Path, help="the refcolor pipeline folder to create")
    add_config_argument(parser)
    parser.add_argument(
        "--clip",
        type=Path,
        help="CLIP ViT-H/14 folder in transformers format (laion/CLIP-ViT-H-14-laion2B-s32B-b79K): its vision "
        "tower becomes OUT_DIR/image_encoder; without it the encoder is supplied when the model is loaded",
    )
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="dtype written (default fp32)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")


def run(args: argparse.Namespace) -> int:
    import torch  # heavy: only when the command runs

    from refcolor.convert.converter import convert_checkpoint
    from refcolor.convert.official_config import resolve_config

    try:
        config = resolve_config(args.config)
        out = convert_checkpoint(
            args.checkpoint,
            args.out_dir,
            config,
            clip=args.clip,
            dtype=getattr(torch, DTYPES[args.dtype]),
            overwrite=args.overwrite,
        )
    except (OSError, ValueError) as error:  # CheckpointMismatchError lists the offending keys
        print(f"refcolor convert: {error}", file=sys.stderr)
        return 2
    print(out)
    return 0
