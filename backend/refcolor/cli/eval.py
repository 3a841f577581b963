"""``refcolor eval``: score models and baselines on deterministic mismatched-reference triplets.

Prints the table, writes ``OUT/eval.json`` (one entry per method, every metric's mean
and 95 % interval), ``OUT/table.md`` and ``OUT/contact-sheet.png``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from refcolor.eval import REFERENCE_ABLATIONS
from refcolor_protocol.messages import Mode


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", default=[], metavar="NAME|PATH",
                        help="registered model or model folder; repeatable; each mode is a row")  # fmt: skip
    parser.add_argument(
        "--baselines",
        action="store_true",
        help="add the baselines: classical-mean (one mean colour per side) and correspondence "
        "(split line-art feature matching, no training)",
    )
    parser.add_argument(
        "--characters", type=Path, required=True, help="folder of RGBA PNGs, alpha = foreground"
    )
    parser.add_argument("--backgrounds", type=Path, required=True, help="folder of background images")
    parser.add_argument("--n", type=int, default=32, help="number of triplets (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the triplets and of every job")
    parser.add_argument("--size", type=int, default=256, help="triplet side in pixels (default 256)")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for eval.json, table.md, contact-sheet.png"
    )
    parser.add_argument("--device", default="cpu", help="device models are loaded on (default cpu)")
    parser.add_argument("--modes", nargs="+", choices=[m.value for m in Mode], default=None,
                        help="inference modes to run (default: every mode the model supports)")  # fmt: skip
    parser.add_argument(
        "--steps", type=int, default=None, help="denoising steps for models (default: the protocol's)"
    )
    parser.add_argument("--reference-scale", type=float, default=None,
                        help="reference guidance for models (default: the protocol's)")  # fmt: skip
    parser.add_argument(
        "--finishing-off",
        action="store_true",
        help="also run every model with color_match=0 and flatten=0 (rows '..., finishing off')",
    )
    parser.add_argument(
        "--reference-ablation",
        action="append",
        default=[],
        choices=REFERENCE_ABLATIONS,
        help="also run every model row with the reference replaced; repeatable. 'flat': each side "
        "of the reference painted its mean colour; 'truth': the ground truth as the reference "
        "(rows '..., flat reference'): what a model takes from the reference beyond its average colours",
    )
    parser.add_argument(
        "--masks",
        choices=["given", "auto"],
        default="given",
        help="'auto': also run every model row with both masks computed instead of given (rows '..., "
        "auto masks'; scored against the true masks) and report the computed masks' IoU",
    )
    parser.add_argument(
        "--no-frechet", action="store_true", help="skip the Fréchet distance (no encoder needed)"
    )
    parser.add_argument(
        "--tolerance", type=float, default=2.0, help="line F1 tolerance in pixels (default 2)"
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: torch and the metrics stack load only when `refcolor eval` runs.
    import numpy as np

    from refcolor.eval import report
    from refcolor.eval.runner import Method, baseline_methods, evaluate, model_methods
    from refcolor.eval.triplets import make_triplets, mask_iou, with_auto_masks

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.model and not args.baselines:
        raise SystemExit("refcolor eval: nothing to evaluate; pass --model NAME and/or --baselines")
    triplets = make_triplets(args.characters, args.backgrounds, args.n, args.seed, args.size)
    modes = [Mode(m) for m in args.modes] if args.modes else None
    auto = with_auto_masks(triplets) if args.masks == "auto" else None
    mask_ious = {}
    if auto is not None:
        for name, field in (("reference", "reference_mask"), ("sketch", "mask")):
            scores = [mask_iou(getattr(a, field), getattr(t, field)) for a, t in zip(auto, triplets, strict=True)]
            mask_ious[name] = {"mean": float(np.mean(scores)), "median": float(np.median(scores))}
    methods: list[Method] = baseline_methods(args.device) if args.baselines else []
    for model in args.model:
        methods += model_methods(
            model, args.device, modes, args.steps, args.reference_scale, args.finishing_off,
            args.reference_ablation, auto,
        )
    features = None
    if not args.no_frechet:
        from refcolor.eval.features import LiteFeatures

        features = LiteFeatures(args.device)
    config = {
        "characters": str(args.characters),
        "backgrounds": str(args.backgrounds),
        "n": args.n,
        "seed": args.seed,
        "size": args.size,
        "steps": args.steps,
        "reference_scale": args.reference_scale,
        "finishing_off_rows": args.finishing_off,
        "reference_ablations": args.reference_ablation,
        "masks": args.masks,
        "auto_mask_iou": mask_ious,
        "tolerance": args.tolerance,
        "border": 2,
        "frechet_features": None if features is None else "efficientnet-lite0 (ImageNet), 1280-d pooled",
    }
    evaluation = evaluate(methods, triplets, args.seed, features, args.tolerance, config=config)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(evaluation, args.out / "eval.json")
    table = report.table(evaluation, markdown=True) + "\n"
    for name, iou in mask_ious.items():
        table += f"\nauto {name} mask IoU: mean {iou['mean']:.3f}, median {iou['median']:.3f}"
    (args.out / "table.md").write_text(table + ("\n" if mask_ious else ""))
    report.contact_sheet(evaluation, triplets).save(args.out / "contact-sheet.png", optimize=True)
    print(report.table(evaluation))
    for name, iou in mask_ious.items():
        print(f"auto {name} mask IoU: mean {iou['mean']:.3f}, median {iou['median']:.3f}")
    print(f"wrote {args.out / 'eval.json'}, {args.out / 'table.md'}, {args.out / 'contact-sheet.png'}")
    return 0
