"""Frames per second of `refcolor batch`: local, and on a local Ray cluster with 1 and 2 workers, in one run.

A synthetic shot of ``--frames`` frames (a ball moving over 320 px line art) is colorized three
times into fresh folders with the same settings; each figure includes everything a user waits for
(reading, the model, the carry, writing) but not starting the cluster. On a 2-core machine two
workers share the cores the local run has alone, so the ratio says what the overhead of Ray is
more than what a cluster gains; on a cluster each worker has its own CPU or GPU.

    python benchmarks/bench_batch.py [--model tiny] [--frames 12] [--steps 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import ray

from refcolor.batch.cluster import ClusterOptions, ray_renderer
from refcolor.batch.run import ShotSpec, run_shot
from refcolor.models import load_colorizer
from refcolor_protocol.messages import ColorizeParams

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from test_batch_cli import make_shot  # the same shot the CLI tests colorize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    make_shot(folder, args.frames)
    frames = sorted((folder / "frames").glob("*.png"))

    def spec(out: str) -> ShotSpec:
        params = ColorizeParams(seed=3, steps=args.steps, previews=False)
        return ShotSpec(frames=frames, reference=folder / "sheet.png", output=folder / out, params=params,
                        model=args.model, masks=folder / "masks")

    rates: dict[str, float] = {}
    model = load_colorizer(args.model)  # loaded before the clock, as the workers' models are
    start = time.perf_counter()
    summary, _ = run_shot(spec("local"), lambda: model)
    rates["local"] = args.frames / (time.perf_counter() - start)
    assert summary.ok

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    for workers in (1, 2):
        factory = ray_renderer(ClusterOptions(workers=workers), args.model)
        made = []

        def timed(shot, todo, arrays, factory=factory, made=made):
            made.append(factory(shot, todo, arrays))  # starts the workers and loads their models
            made.append(time.perf_counter())
            return made[0]

        summary, _ = run_shot(spec(f"ray{workers}"), renderer=timed)
        rates[f"ray_{workers}_worker"] = args.frames / (time.perf_counter() - made[1])
        assert summary.ok
    ray.shutdown()

    print(f"{args.frames} frames of {args.model}, {args.steps} steps, 320 px, on this machine's CPUs")
    print(f"frames_per_s_local: {rates['local']:.2f}")
    print(f"frames_per_s_ray_1_worker: {rates['ray_1_worker']:.2f}")
    print(f"frames_per_s_ray_2_workers: {rates['ray_2_worker']:.2f}")
    print(f"ratio_ray_2_to_1: {rates['ray_2_worker'] / rates['ray_1_worker']:.2f}")
    print(f"ratio_ray_2_to_local: {rates['ray_2_worker'] / rates['local']:.2f}")


if __name__ == "__main__":
    main()
