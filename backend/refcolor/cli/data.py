"""``refcolor data ...``: build the training set, draw a sample sheet, measure samples/s."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from refcolor.data.build import BuildConfig, build, sample_sheet
from refcolor.data.samples import SampleSource


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="data_command", required=True)

    p = commands.add_parser("build", help="fetch the Debian packages and build the training set")
    p.add_argument("out_dir", type=Path, help="where train/, heldout/, manifest.json and sample-sheet.png go")
    p.add_argument(
        "--work", type=Path, default=None, help="downloads and unpacked packages (default OUT_DIR/.work)"
    )
    p.add_argument(
        "--apt-update", action="store_true", help="run apt-get update first (a fresh machine needs it)"
    )
    p.add_argument(
        "--heldout-fraction", type=float, default=0.1, help="share of characters held out (default 0.1)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the sample sheet")

    p = commands.add_parser("sheet", help="draw a sample sheet from a character and a background folder")
    _source_arguments(p)
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--out", type=Path, required=True, help="PNG to write")

    p = commands.add_parser("bench", help="measure sample generation speed (samples/s, one process)")
    _source_arguments(p)
    p.add_argument("--n", type=int, default=200)


def _source_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--characters", type=Path, required=True, help="folder of RGBA PNGs, alpha = foreground")
    p.add_argument("--backgrounds", type=Path, required=True, help="folder of background images")
    p.add_argument("--size", type=int, nargs="+", default=[256], help="sample side(s) in pixels")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.data_command == "build":
        work = args.work or args.out_dir / ".work"
        manifest = build(BuildConfig(args.out_dir, work, args.heldout_fraction, seed=args.seed,
                                     apt_update=args.apt_update))  # fmt: skip
        counts: list[dict[str, Any]] = manifest["counts"]  # type: ignore[assignment]  # a JSON manifest
        for row in counts:
            print(f"{row['package']:20} {row['kind']:12} {row['split']:8} {row['count']:6}")
        print(f"manifest: {args.out_dir / 'manifest.json'}")
        return 0
    if args.data_command == "sheet":
        source = SampleSource.from_folders(
            args.characters, args.backgrounds, size=args.size[0], seed=args.seed
        )
        sample_sheet([source[i] for i in range(args.n)]).save(args.out, optimize=True)
        print(args.out)
        return 0
    if args.data_command == "bench":
        results = {}
        for size in args.size:
            source = SampleSource.from_folders(args.characters, args.backgrounds, size=size, seed=args.seed)
            rates = []
            for _ in range(2):  # first pass decodes images, second finds them cached (a long run's state)
                start = time.perf_counter()
                for i in range(args.n):
                    source[i]
                rates.append(args.n / (time.perf_counter() - start))
            results[size] = {"cold": rates[0], "warm": rates[1]}
            print(f"{size:5d} px: {rates[0]:7.1f} samples/s cold, {rates[1]:7.1f} warm (one process)")
        print(json.dumps({"samples_per_second": results}))
        return 0
    raise ValueError(f"unknown data command {args.data_command!r}")
