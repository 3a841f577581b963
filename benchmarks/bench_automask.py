"""Automatic masks (issue 19): their IoU against the true masks, and their cost at 2048².

Triplets are made as the evaluation makes them (``refcolor.eval.triplets``): characters (alpha =
foreground) composited on backgrounds, line art extracted. Each triplet's reference mask and sketch
mask are computed (``refcolor.imaging.automask``) and compared with the true ones (means with their
95 % intervals; the sketch's also apart for sketches with the character's outline drawn in, as an
artist draws it, and for those without, where only the extractor's lines show it); then one 2048²
triplet times both masks (the network loaded and warm beforehand, as in a server; the median of
:data:`TIMED_RUNS` runs).

Tune on the part of the training split the mask network was not trained on (the default: the
train folders' every 8th character and every 4th background, ``refcolor.train.masknet.split``,
seed 7); ``--all`` takes every image of ``--data`` (the held-out split, for reporting, once).
Target: ``seconds_2048_both <= 2``; IoU targets 0.85 (reference) and 0.75 (sketch) on the held-out
split (``--data DATA/heldout --all --n 256 --seed 0``; 64 triplets measure a mean only to ±0.05).

Run: .venv/bin/python benchmarks/bench_automask.py [--data /work/data/build/train] [--n 48] [--seed 7]
     [--size 512] [--all]  (also measure --size 256: the evaluation's triplets are 256 px)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from refcolor.data.samples import SampleSource, list_images
from refcolor.eval.metrics import mean_interval
from refcolor.eval.triplets import mask_iou
from refcolor.imaging.automask import SaliencyNet, reference_mask, sketch_mask
from refcolor.train.masknet import HOLD_OUT_BACKGROUNDS, HOLD_OUT_CHARACTERS, split

TIMED_RUNS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/data/build/train"),
                        help="a folder with characters/ and backgrounds/")  # fmt: skip
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--all", action="store_true", help="every image of --data, not the part kept apart")
    parser.add_argument("--net", type=Path, help="a mask network to measure instead of the one refcolor ships")
    args = parser.parse_args()
    characters, backgrounds = list_images(args.data / "characters"), list_images(args.data / "backgrounds")
    if not args.all:
        characters = split(characters, HOLD_OUT_CHARACTERS)[1]
        backgrounds = split(backgrounds, HOLD_OUT_BACKGROUNDS)[1]
    net = SaliencyNet.tuned(args.net) if args.net else SaliencyNet.default()  # loaded once, as a server does
    reference, sketch, outlined = [], [], []
    source = SampleSource(characters, backgrounds, size=args.size, seed=args.seed, length=args.n)
    for sample in (source[i] for i in range(args.n)):
        reference.append(mask_iou(reference_mask(sample.reference, net), sample.reference_mask))
        sketch.append(mask_iou(sketch_mask(sample.sketch, net), sample.mask))
        outlined.append("+outline" in str(sample.meta["lineart"]))  # the character's outline drawn in
    big = SampleSource(characters, backgrounds, size=2048, seed=args.seed, length=1)[0]
    reference_mask(big.reference[:256, :256], net)  # warm the runtime
    timings: list[tuple[float, float]] = []
    for _ in range(TIMED_RUNS):  # one run's time varies by up to a quarter here: report the median
        start = time.perf_counter()
        reference_mask(big.reference, net)
        middle = time.perf_counter()
        sketch_mask(big.sketch, net)
        timings.append((middle - start, time.perf_counter() - middle))
    seconds_reference, seconds_sketch = np.median(timings, axis=0)
    seconds_both = np.median([sum(pair) for pair in timings])
    part = "all" if args.all else "the part kept apart from the mask network's training"
    net_name = args.net or "the shipped network"
    print(f"# {args.n} triplets from {args.data} ({part}) at {args.size} px, seed {args.seed}, {net_name}")
    drawn = np.array(outlined)
    print(f"reference_iou: {np.mean(reference):.3f}")
    print(f"reference_iou_ci95: {interval(reference)}")
    print(f"reference_iou_median: {np.median(reference):.3f}")
    print(f"reference_iou_p10: {np.percentile(reference, 10):.3f}")
    print(f"sketch_iou: {np.mean(sketch):.3f}")
    print(f"sketch_iou_ci95: {interval(sketch)}")
    print(f"sketch_iou_median: {np.median(sketch):.3f}")
    print(f"sketch_iou_p10: {np.percentile(sketch, 10):.3f}")
    for name, subset in (("outlined", drawn), ("not_outlined", ~drawn)):
        found = f"{np.mean(np.array(sketch)[subset]):.3f}" if subset.any() else "none"
        print(f"sketch_iou_{name}: {found} (n {subset.sum()})")
    print(f"seconds_2048_reference: {seconds_reference:.2f}")
    print(f"seconds_2048_sketch: {seconds_sketch:.2f}")
    print(f"seconds_2048_both: {seconds_both:.2f}")
    print(f"seconds_2048_both_slowest: {max(sum(pair) for pair in timings):.2f}")


def interval(values: list[float]) -> str:
    """The mean's 95 % interval (Student t over triplets; triplets that share a background are not
    independent, so it is if anything too narrow)."""
    found = mean_interval(values, bounds=(0.0, 1.0))
    return f"{found.low:.3f}-{found.high:.3f}"


if __name__ == "__main__":
    main()
