"""``refcolor gpu``: train on a borrowed GPU machine (see :mod:`refcolor.train.gpu` and ``make gpu-train``).

    refcolor gpu pack --data DATA --out .gpu           # here: the training split as WebP shards
    refcolor gpu travel --packed .gpu                  # here: does it all fit the machine's 64 MiB?
    refcolor gpu run --packed .gpu --out $OUT          # there: train, export, split into parts
    refcolor gpu masks --packed .gpu --out $OUT        # there: fine-tune the mask network, split
    refcolor gpu join PARTS_DIR DEST [--name masks.tar]  # here: the parts back into a folder
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True)
    pack = verbs.add_parser("pack", help="pack the training split and the prior's feature weights to travel")
    pack.add_argument("--data", type=Path, required=True, help="a folder built by `refcolor data build`")
    pack.add_argument("--out", type=Path, required=True, help="folder for the shards (e.g. .gpu)")
    travel = verbs.add_parser("travel", help="check that the repository and the packed folder fit the machine")
    travel.add_argument("--packed", type=Path, required=True, help="the folder `gpu pack` wrote (carried)")
    travel.add_argument("--repository", type=Path, default=Path("."))
    run = verbs.add_parser("run", help="train from the packed data for a fixed time and split the result")
    run.add_argument("--packed", type=Path, required=True, help="the folder `gpu pack` wrote")
    run.add_argument("--out", type=Path, required=True, help="folder for the result's parts (the machine's $OUT)")
    run.add_argument("--init-from", type=Path, required=True, help="model folder to start from (the shipped nano)")
    run.add_argument("--config", default="nano-v2")
    run.add_argument("--recipe", default="nano-v2-gpu")
    run.add_argument("--device", default="cuda")
    run.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    run.add_argument("--minutes", type=float, default=8.5, help="time budget, data preparation included")
    run.add_argument("--workers", type=int, default=None, help="sample-preparation processes (default: cores - 2)")
    masks = verbs.add_parser("masks", help="fine-tune the mask network from the packed data for a fixed time")
    masks.add_argument("--packed", type=Path, required=True, help="the folder `gpu pack` wrote")
    masks.add_argument("--out", type=Path, required=True, help="folder for the result's parts (the machine's $OUT)")
    masks.add_argument("--base", type=Path, help="graph to start from (default: the mask network refcolor ships)")
    masks.add_argument("--device", default="cuda")
    masks.add_argument("--minutes", type=float, default=2.5, help="training time (data preparation runs beside it)")
    masks.add_argument("--workers", type=int, default=None, help="batch-preparation processes (default: cores - 2)")
    masks.add_argument("--batch", type=int, default=32)
    masks.add_argument("--lr", type=float, default=1e-4)
    masks.add_argument("--validate", type=int, default=32, help="kept-apart samples measured every 200 steps")
    join = verbs.add_parser("join", help="reassemble the parts `gpu run` or `gpu masks` wrote")
    join.add_argument("parts", type=Path, help="folder holding result.tar.NNN (or masks.tar.NNN)")
    join.add_argument("dest", type=Path, help="folder to extract into")
    join.add_argument("--name", default="result.tar", help="the parts' name: result.tar (colour) or masks.tar")


def run(args: argparse.Namespace) -> int:
    from refcolor.train import gpu

    if args.verb == "pack":
        shards = gpu.pack(args.data, args.out)
        print(f"wrote {len(shards)} shards to {args.out}")
    elif args.verb == "travel":
        size = gpu.travelling_bytes(args.repository, [args.packed])
        if size > gpu.TRAVEL_BYTES:
            print(
                f"the repository and {args.packed} come to {size / 2**20:.1f} MiB, over the device machine's "
                f"{gpu.TRAVEL_BYTES >> 20} MiB: pack the characters smaller (refcolor.train.gpu.CHARACTER_SIDE, "
                "QUALITY) or track fewer large files",
                file=sys.stderr,
            )
            return 1
        print(f"{size / 2**20:.1f} MiB travel (limit {gpu.TRAVEL_BYTES >> 20} MiB)")
    elif args.verb == "run":
        parts = gpu.run(args.packed, args.out, args.init_from, args.config, args.recipe, args.device,
                        args.minutes, args.workers, args.precision)  # fmt: skip
        print(f"wrote {len(parts)} parts to {args.out}")
    elif args.verb == "masks":
        parts = gpu.run_masks(args.packed, args.out, args.minutes, args.device, args.workers, args.batch, args.lr,
                              args.validate, base=args.base)  # fmt: skip
        print(f"wrote {len(parts)} parts to {args.out}")
    else:
        print(f"extracted into {gpu.join(args.parts, args.dest, args.name)}")
    return 0
