"""Document-scale cost: where a job's time and memory go at artists' canvas sizes (issue 17).

Each size runs in a fresh process: the model is loaded, warmed up with a small job, its caches
are cleared, the peak-RSS counter is reset (``/proc/self/clear_refs``), then one job runs, in
``both`` mode with the bundled example (line art upscaled bicubic to the size, masks nearest).
A recording context times the stages the job reports (encoding, denoising, upsampling,
finishing, layers) and the longest gap between two of its calls during the full-resolution
stages (how long a Cancel can wait). After the job its layers are dropped and the process's
RSS is read again, as a server's would be between jobs (caches kept).

Prints per size, then the fitted exponent of the full-resolution time against pixels, then
``name: value`` lines. Targets: ``ratio_fullres_to_denoise_3000x2000 <= 1.0``,
``exponent_fullres <= 1.1``, ``peak_rss_mb_4096x4096 <= 1536``,
``rss_after_over_before_4096x4096 <= 1.10``.

Run: .venv/bin/python benchmarks/bench_document_scale.py [--sizes 1024x1024,2048x2048,3000x2000,4096x4096]
     [--model nano] [--steps 20]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
SIZES = "1024x1024,2048x2048,3000x2000,4096x4096"
STAGES = ("encoding", "denoising", "upsampling", "finishing", "layers")
FULL_RESOLUTION = ("upsampling", "finishing", "layers")


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} is not in /proc/self/status")


class Recorder:
    """A JobContext that times the stages and the gaps between calls."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []
        self.calls: list[float] = []

    def progress(self, step: int, total: int, preview: object = None, variation: int = 0) -> None:
        self.calls.append(time.perf_counter())

    def check_cancelled(self) -> None:
        self.calls.append(time.perf_counter())

    def stage(self, stage: object, done: float = 0.0) -> None:
        now = time.perf_counter()
        self.calls.append(now)
        if done == 0.0:
            self.marks.append((str(getattr(stage, "value", stage)), now))


def one(size: tuple[int, int], model: str, steps: int) -> dict[str, float]:
    from PIL import Image

    from refcolor.models import load_colorizer
    from refcolor.models.job import ColorizeJob, NullContext
    from refcolor.service import memory
    from refcolor_protocol.messages import ColorizeParams, Mode

    def load(name: str, mode: str, resample: Image.Resampling, to: tuple[int, int]) -> np.ndarray:
        return np.asarray(Image.open(EXAMPLES / name).convert(mode).resize(to, resample))

    colorizer = load_colorizer(model, "cpu")
    reference = np.asarray(Image.open(EXAMPLES / "reference.png").convert("RGBA"))
    reference_mask = np.asarray(Image.open(EXAMPLES / "reference-mask.png").convert("L"))

    def job(to: tuple[int, int]) -> ColorizeJob:
        sketch = load("sketch.png", "RGBA", Image.Resampling.BICUBIC, to)
        mask = load("sketch-mask.png", "L", Image.Resampling.NEAREST, to)
        params = ColorizeParams(mode=Mode.BOTH, steps=steps, seed=1, previews=False)
        return ColorizeJob(sketch, reference, params, 1, sketch_mask=mask, reference_mask=reference_mask)

    colorizer.colorize(job((512, 512)), NullContext())  # warm-up: threads, allocator, first-call costs
    colorizer.clear_caches()
    work = job(size)
    gc.collect()
    before = rss_mb()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM, the peak RSS
    recorder = Recorder()
    start = time.perf_counter()
    layers = colorizer.colorize(work, recorder)
    end = time.perf_counter()
    peak = rss_mb("VmHWM")
    del layers, work
    memory.release()  # what the server's worker does after every job
    after = rss_mb()
    marks = [*recorder.marks, ("end", end)]
    times = {name: 0.0 for name in STAGES}
    for (name, at), (_, until) in itertools.pairwise(marks):
        times[name] = times.get(name, 0.0) + until - at
    full_start = next((at for name, at in marks if name in FULL_RESOLUTION), end)
    gaps = np.diff([t for t in [*recorder.calls, end] if t >= full_start])
    return {
        **{f"{name}_s": times[name] for name in STAGES},
        "job_s": end - start,
        "max_gap_s": float(gaps.max(initial=0.0)),
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "rss_after_mb": after,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=SIZES, help="comma-separated WxH")
    parser.add_argument("--model", default="nano")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child run: one size, JSON out
    args = parser.parse_args()
    if args.one:
        width, height = map(int, args.one.split("x"))
        print(json.dumps(one((width, height), args.model, args.steps)))
        return
    rows: dict[str, dict[str, float]] = {}
    for size in args.sizes.split(","):
        child = subprocess.run(
            [sys.executable, __file__, "--one", size, "--model", args.model, "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode:
            raise SystemExit(f"{size} failed:\n{child.stderr[-4000:]}")
        rows[size] = json.loads(child.stdout.strip().splitlines()[-1])
    columns = " ".join(f"{n[:6]:>7}" for n in STAGES)
    header = f"{'size':>10} {columns}  fullres  ratio  gap_s  peak_MB  before/after_MB"
    print(f"# model {args.model}, {args.steps} steps, both mode; seconds from one run per size")
    print(header)
    full: dict[str, float] = {}
    for size, row in rows.items():
        full[size] = sum(row[f"{n}_s"] for n in FULL_RESOLUTION)
        ratio = full[size] / max(row["denoising_s"], 1e-9)
        stage_cols = " ".join(f"{row[f'{n}_s']:7.2f}" for n in STAGES)
        print(
            f"{size:>10} {stage_cols}  {full[size]:7.2f} {ratio:6.2f} {row['max_gap_s']:6.2f} "
            f"{row['peak_rss_mb']:8.0f}  {row['rss_before_mb']:.0f}/{row['rss_after_mb']:.0f}"
        )
    pixels = [math.prod(map(int, s.split("x"))) for s in rows]
    exponent = float(np.polyfit(np.log(pixels), np.log(list(full.values())), 1)[0]) if len(rows) > 1 else math.nan
    for size, row in rows.items():
        print(f"job_s_{size}: {row['job_s']:.2f}")
        print(f"fullres_s_{size}: {full[size]:.2f}")
        print(f"ratio_fullres_to_denoise_{size}: {full[size] / max(row['denoising_s'], 1e-9):.2f}")
        print(f"max_gap_s_{size}: {row['max_gap_s']:.2f}")
        print(f"peak_rss_mb_{size}: {row['peak_rss_mb']:.0f}")
        print(f"rss_after_over_before_{size}: {row['rss_after_mb'] / row['rss_before_mb']:.2f}")
    print(f"exponent_fullres: {exponent:.2f}")


if __name__ == "__main__":
    main()
