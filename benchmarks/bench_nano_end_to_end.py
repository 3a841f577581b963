"""The shipped nano model end to end, as `refcolor colorize` runs it: load, then a 20-step job.

Target (issue 6): a 1024x1024 sketch in <= 20 s end to end on 2 CPU cores. Measures the
bundled example upscaled to --size (its line art and masks nearest-upscaled), in ``both``
mode with the default guidance, and separately the model load; and the same job with the
finishing pass off (``color_match=0, flatten=0``), so its share of the job is measured in one run;
and a re-run with another ``color_match`` (it reuses the denoised images: upsampling and finishing only).

Prints ``name: value`` lines (seconds; job time is the median over --repeats).

Run: .venv/bin/python benchmarks/bench_nano_end_to_end.py [--size 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from refcolor.models import load_colorizer
from refcolor.models.job import ColorizeJob, NullContext
from refcolor_protocol.messages import ColorizeParams, Mode

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def load(name: str, size: int, mode: str) -> np.ndarray:
    image = Image.open(EXAMPLES / name).convert(mode)
    return np.asarray(image.resize((size, size), Image.Resampling.NEAREST))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    start = time.perf_counter()
    colorizer = load_colorizer("nano", "cpu")
    load_seconds = time.perf_counter() - start
    reference = np.asarray(Image.open(EXAMPLES / "reference.png").convert("RGBA"))
    reference_mask = np.asarray(Image.open(EXAMPLES / "reference-mask.png").convert("L"))
    sketch, sketch_mask = load("sketch.png", args.size, "RGBA"), load("sketch-mask.png", args.size, "L")

    def job(seed: int, **finishing: float) -> ColorizeJob:
        params = ColorizeParams(mode=Mode.BOTH, steps=args.steps, seed=seed, previews=False, **finishing)
        return ColorizeJob(sketch, reference, params, seed, sketch_mask=sketch_mask, reference_mask=reference_mask)

    def seconds(job: ColorizeJob) -> float:
        start = time.perf_counter()
        colorizer.colorize(job, NullContext())
        return time.perf_counter() - start

    times: dict[bool, list[float]] = {True: [], False: []}
    for repeat in range(args.repeats):
        for finished in (True, False):
            # Every job pays for its encodings, denoising and upsampling, as a first run does (the two
            # jobs of a repeat differ only in finishing, which would reuse the rest).
            colorizer.clear_caches()
            times[finished].append(seconds(job(repeat) if finished else job(repeat, color_match=0.0, flatten=0.0)))
    # Moving the Colour match / Flatten sliders: a job, then the same again with other finishing strengths.
    seconds(job(0))
    refinish = [seconds(job(0, color_match=strength)) for strength in (0.25, 0.5, 0.75)]
    job_seconds = statistics.median(times[True])
    unfinished_seconds = statistics.median(times[False])
    print(f"nano_load_seconds: {load_seconds:.2f}")
    print(f"nano_job_without_finishing_{args.size}px_seconds: {unfinished_seconds:.2f}")
    print(f"nano_finishing_share_of_job: {(job_seconds - unfinished_seconds) / job_seconds:.3f}")
    print(f"nano_refinish_{args.size}px_seconds: {statistics.median(refinish):.2f}")
    print(f"nano_job_{args.size}px_seconds: {job_seconds:.2f}")
    print(f"nano_end_to_end_{args.size}px_seconds: {load_seconds + job_seconds:.2f}")


if __name__ == "__main__":
    main()
