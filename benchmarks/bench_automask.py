"""Automatic masks (issue 19): their IoU against the true masks, and their cost at 2048².

Triplets are made as the evaluation makes them (``refcolor.eval.triplets``): characters (alpha =
foreground) composited on backgrounds, line art extracted. Each triplet's reference mask and sketch
mask are computed (``refcolor.imaging.automask``) and compared with the true ones; then one 2048²
triplet times both masks (the network loaded and warm beforehand, as in a server).

Tune on a split of the training data (the default: the data's train folders, seed 7); the
held-out split is for reporting, once. Target: ``seconds_2048_both <= 2``; IoU targets 0.85
(reference) and 0.75 (sketch) on the held-out split.

Run: .venv/bin/python benchmarks/bench_automask.py [--data /work/data/build/train] [--n 48] [--seed 7]
     [--size 512]  (also measure --size 256: the evaluation's triplets are 256 px)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from refcolor.eval.triplets import make_triplets, mask_iou
from refcolor.imaging.automask import SaliencyNet, reference_mask, sketch_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/data/build/train"),
                        help="a folder with characters/ and backgrounds/")  # fmt: skip
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    folders = (args.data / "characters", args.data / "backgrounds")
    SaliencyNet.default()  # load once, as a server does
    reference, sketch = [], []
    for sample in make_triplets(*folders, args.n, seed=args.seed, size=args.size):
        reference.append(mask_iou(reference_mask(sample.reference), sample.reference_mask))
        sketch.append(mask_iou(sketch_mask(sample.sketch), sample.mask))
    (big,) = make_triplets(*folders, 1, seed=args.seed, size=2048)
    reference_mask(big.reference[:256, :256])  # warm the runtime
    start = time.perf_counter()
    reference_mask(big.reference)
    middle = time.perf_counter()
    sketch_mask(big.sketch)
    end = time.perf_counter()
    print(f"# {args.n} triplets from {args.data} at {args.size} px, seed {args.seed}")
    print(f"reference_iou: {np.mean(reference):.3f}")
    print(f"reference_iou_median: {np.median(reference):.3f}")
    print(f"reference_iou_p10: {np.percentile(reference, 10):.3f}")
    print(f"sketch_iou: {np.mean(sketch):.3f}")
    print(f"sketch_iou_median: {np.median(sketch):.3f}")
    print(f"sketch_iou_p10: {np.percentile(sketch, 10):.3f}")
    print(f"seconds_2048_reference: {middle - start:.2f}")
    print(f"seconds_2048_sketch: {end - middle:.2f}")
    print(f"seconds_2048_both: {end - start:.2f}")


if __name__ == "__main__":
    main()
