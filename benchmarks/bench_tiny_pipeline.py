"""Tiny-model job times: a 20-step 256x256 job, and what the encoding cache saves on a re-run.

The server-side overhead benchmark (job through the service vs. pipeline alone) uses
``bench_server_overhead.pipeline_seconds`` for the pipeline-only figure.

Prints ``name: value`` lines (seconds, medians over --repeats).

Run: .venv/bin/python benchmarks/bench_tiny_pipeline.py [--repeats 5] [--size 256] [--steps 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from refcolor.models.diffusion import DiffusionColorizer, load_tiny
from refcolor.models.job import ColorizeJob, NullContext
from refcolor_protocol.messages import ColorizeParams, Mode


def synthetic_job(size: int, steps: int, seed: int, mode: Mode) -> ColorizeJob:
    rng = np.random.default_rng(0)
    sketch = np.full((size, size, 4), 255, np.uint8)
    for line in range(size // 8, size, size // 4):
        sketch[line : line + 2, :, :3] = 0
        sketch[:, line : line + 2, :3] = 0
    reference = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
    reference[..., 3] = 255
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    reference_mask = np.roll(mask, size // 8, axis=0)
    params = ColorizeParams(mode=mode, steps=steps, seed=seed)
    return ColorizeJob(
        sketch=sketch,
        reference=reference,
        params=params,
        seed=seed,
        sketch_mask=mask,
        reference_mask=reference_mask,
    )


def seconds(colorizer: DiffusionColorizer, job: ColorizeJob) -> float:
    start = time.perf_counter()
    colorizer.colorize(job, NullContext())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    colorizer = load_tiny("cpu")
    seconds(colorizer, synthetic_job(args.size, 2, 0, Mode.PLAIN))  # warm-up (allocator, kernels)
    results: dict[str, list[float]] = {"plain": [], "both_cold": [], "both_warm": []}
    for i in range(args.repeats):
        colorizer.cache.clear()
        results["plain"].append(seconds(colorizer, synthetic_job(args.size, args.steps, i, Mode.PLAIN)))
        colorizer.cache.clear()
        results["both_cold"].append(seconds(colorizer, synthetic_job(args.size, args.steps, i, Mode.BOTH)))
        results["both_warm"].append(seconds(colorizer, synthetic_job(args.size, args.steps, i + 100, Mode.BOTH)))
    median = {k: statistics.median(v) for k, v in results.items()}
    print(f"threads: {torch.get_num_threads()} size: {args.size} steps: {args.steps}")
    print(f"tiny_plain_job_s: {median['plain']:.3f}")
    print(f"tiny_both_job_cold_cache_s: {median['both_cold']:.3f}")
    print(f"tiny_both_job_warm_cache_s: {median['both_warm']:.3f}")
    print(f"cache_saving_s: {median['both_cold'] - median['both_warm']:.3f}")


if __name__ == "__main__":
    main()
