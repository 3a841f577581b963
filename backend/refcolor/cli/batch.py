"""``refcolor batch``: colorize every frame of a shot from one reference (issue 20).

Wired into ``refcolor``'s argparse by :mod:`refcolor.cli` (``add_arguments`` + ``run``). The
engine is :mod:`refcolor.batch.run`; this module reads the command line, shows progress and
prints the summary. Exit status: 0 when every frame is done, 1 when a frame failed or the run was
interrupted (re-run to go on), 2 when the shot could not start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from refcolor.cli.colorize import add_param_arguments, mask_source, params_from_args
from refcolor.models.options import add_model_options, model_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "frames", nargs="+", help="line-art frames: a folder, a glob such as 'shot/*.png' (quoted), or files; "
        "taken in natural order (f2 before f10)",
    )
    parser.add_argument("--reference", type=Path, required=True, help="the character sheet: one colour reference")
    parser.add_argument(
        "--reference-mask", type=mask_source,
        help="reference foreground mask (default: its alpha), or 'auto' (computed once for the shot)",
    )
    parser.add_argument(
        "--masks", type=mask_source,
        help="sketch masks: a folder with one mask per frame, named like the frame (any image type), or 'auto' "
        "(computed per frame, written as <stem>_mask.png); default: none (all foreground)",
    )
    parser.add_argument("--background", type=Path, help="separate background reference")
    parser.add_argument(
        "--consistency", choices=("carry", "off"), default="carry",
        help="carry: each closed region of the line art keeps the colour it had in the previous frame "
        "(colours stay put); off: every frame on its own (default carry)",
    )
    cluster = parser.add_argument_group("Ray cluster (pip install 'refcolor[ray]'; docs/animation.md)")
    cluster.add_argument(
        "--ray", nargs="?", const="", metavar="ADDRESS",
        help="render the frames on a Ray cluster: ADDRESS (ray://host:10001, or host:6379), or none for the "
        "cluster RAY_ADDRESS names, else a new local one; the driver carries colours and writes every file",
    )
    cluster.add_argument("--workers", type=int, default=0, help="model copies (Ray actors); default: one per CPU, "
                         "or per GPU with --num-gpus-per-worker")  # fmt: skip
    cluster.add_argument("--num-gpus-per-worker", type=float, default=0.0, help="GPUs each worker reserves (e.g. 1)")
    cluster.add_argument("--num-cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves")
    parser.add_argument("--model", default="nano", help="registered model name or model folder (default nano)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "-o", "--output", required=True,
        help="output folder (also where a run resumes), or shared storage fsspec opens: s3://bucket/shot/ "
        "(with s3fs installed), gs://..., ...",
    )
    add_param_arguments(parser)
    add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from refcolor.batch.frames import list_frames
    from refcolor.batch.run import ShotError, ShotSpec, run_shot
    from refcolor.batch.shot import Consistency
    from refcolor.models import load_colorizer
    from refcolor_protocol.errors import ProtocolError

    try:
        params = params_from_args(args)
        if params.variations != 1:
            raise ValueError(f"--variations {params.variations}: a shot gives one colouring per frame")
        frames = list_frames(args.frames)
        if isinstance(args.masks, Path) and not args.masks.is_dir():
            raise FileNotFoundError(f"--masks {args.masks} is not a folder: give a folder of masks or 'auto'")
        spec = ShotSpec(
            frames=frames, reference=args.reference, output=args.output, params=params, model=args.model,
            reference_mask=args.reference_mask, masks=args.masks, background=args.background,
            consistency=Consistency(args.consistency),
        )
        options = model_options(args)[args.model]
    except (OSError, ValueError, ProtocolError) as error:
        print(f"refcolor batch: {error}", file=sys.stderr)
        return 2

    bar = tqdm(total=len(frames), unit="frame", file=sys.stderr, dynamic_ncols=True)

    def on_frame(index: int, record: dict[str, Any]) -> None:
        bar.set_postfix_str(f"{Path(record['frame']).name} {record['status']}")
        bar.update(1)

    renderer = None
    if args.ray is not None:
        from refcolor.batch.cluster import ClusterOptions, ray_renderer

        cluster = ClusterOptions(
            address=args.ray or None, workers=args.workers, num_gpus_per_worker=args.num_gpus_per_worker,
            num_cpus_per_worker=args.num_cpus_per_worker,
        )
        renderer = ray_renderer(cluster, args.model, args.device, options)
    try:
        summary, shot_run = run_shot(
            spec, lambda: load_colorizer(args.model, args.device, **options), on_frame, renderer=renderer
        )
    except ShotError as error:
        print(f"refcolor batch: {error}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(
        f"{summary.done} frames colorized, {summary.skipped} already done, {len(summary.failed)} failed "
        f"of {summary.frames} (seed {shot_run.seed}) in {summary.seconds:.1f} s; manifest: "
        f"{shot_run.output.describe('manifest.json')}",
        file=sys.stderr,
    )
    for frame, why in summary.failed:
        print(f"  failed: {frame}: {why}", file=sys.stderr)
    if summary.interrupted:
        print("interrupted: run the same command again to go on from here", file=sys.stderr)
    return 0 if summary.ok else 1
