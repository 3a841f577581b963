"""``refcolor train``: train a model config with its recipe, resumably, and export it.

Example::

    refcolor train --config nano --data DATA --run runs/nano            # start
    refcolor train --config nano --data DATA --run runs/nano --resume   # continue
    refcolor train --config nano --data DATA --run runs/nano --resume --export models/nano
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from refcolor.train.recipe import PRECISIONS, RECIPES, STAGES

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="nano", help="model config to train (default nano)")
    parser.add_argument("--recipe", default=None, choices=sorted(RECIPES),
                        help="training recipe (default: the config's own)")  # fmt: skip
    parser.add_argument("--data", type=Path, required=True, help="data set folder of `refcolor data build`")
    parser.add_argument("--run", type=Path, default=None, help="run folder (default runs/<config>)")
    parser.add_argument("--resume", action="store_true", help="continue the run folder's checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--until", choices=STAGES, default=None, help="stop after this stage (default: all)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="save a checkpoint and stop after this long (resume later)")  # fmt: skip
    parser.add_argument("--export", type=Path, default=None, metavar="DIR",
                        help="afterwards, save the model as a pipeline folder here")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2, help="processes preparing the sample cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-dtype", choices=("fp32", "fp16"), default="fp32",
                        help="weights' dtype in the --export folder (fp16: half the size)")  # fmt: skip
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="bf16: bfloat16 autocast (faster on GPUs and AVX-512 BF16 CPUs)")  # fmt: skip
    parser.add_argument("--init-from", type=Path, default=None, metavar="DIR",
                        help="start a new run from this model folder's weights (e.g. an earlier --export)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")


def run(args: argparse.Namespace) -> int:
    import torch

    from refcolor.diffusion.config import get_config
    from refcolor.train.recipe import get_recipe
    from refcolor.train.trainer import CHECKPOINT, Trainer

    try:
        config = get_config(args.config)
        recipe = get_recipe(args.recipe or args.config)
    except KeyError as exc:
        print(f"refcolor train: {exc.args[0]}", file=sys.stderr)
        return 2
    if recipe.config != config.name:
        print(f"refcolor train: recipe {args.recipe!r} is for config {recipe.config!r}, not {config.name!r}",
              file=sys.stderr)  # fmt: skip
        return 2
    if not (args.data / "train" / "characters").is_dir():
        print(f"refcolor train: {args.data} has no train/characters; build the data with `refcolor data build`",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"refcolor train: --device {args.device} but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    run_dir = args.run or Path("runs") / config.name
    if (run_dir / CHECKPOINT).is_file() and not args.resume:
        print(f"refcolor train: {run_dir} already has a checkpoint; add --resume to continue it "
              "or give another --run folder", file=sys.stderr)  # fmt: skip
        return 2
    if args.init_from is not None and args.resume and (run_dir / CHECKPOINT).is_file():
        print("refcolor train: --init-from starts a new run; drop it when resuming", file=sys.stderr)
        return 2
    if args.init_from is not None and not (args.init_from / "model_index.json").is_file():
        print(f"refcolor train: --init-from {args.init_from} is not a model folder (no model_index.json); "
              "give the folder an earlier run exported with --export", file=sys.stderr)  # fmt: skip
        return 2
    trainer = Trainer(config, recipe, run_dir, args.data, args.device, args.seed, args.workers, args.precision)
    try:
        if not trainer.load_checkpoint() and args.init_from is not None:
            trainer.initialise_from(args.init_from)
    except ValueError as exc:
        print(f"refcolor train: {exc}", file=sys.stderr)
        return 2
    done = trainer.train(until=args.until, max_seconds=None if args.max_minutes is None else args.max_minutes * 60)
    if args.export:
        trainer.export(args.export, torch.float16 if args.export_dtype == "fp16" else torch.float32)
    print(f"{'finished' if done else 'stopped'} at stage {trainer.stage} step {trainer.step}; run folder {run_dir}")
    return 0
