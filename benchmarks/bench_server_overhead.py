"""A tiny-model job through the real service vs. the pipeline alone, in one run.

End to end = client builds and signs the request, server checks it, queues it, the worker
decodes it and runs the model with progress (and previews every 2 steps), the result comes
back as signed RGBA buffers and the client verifies it. Pipeline only = the same job handed
straight to the same loaded model with no service around it. Both run on warm caches (the
model's encoding cache holds the reference and sketch after the first run), so the ratio is
the service's own overhead.

Prints ``name: value`` lines. Run: .venv/bin/python benchmarks/bench_server_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import threading
import time

from bench_tiny_pipeline import synthetic_job

from refcolor.models.diffusion import DiffusionColorizer
from refcolor.models.job import ColorizeJob, NullContext
from refcolor.service.config import ServerConfig
from refcolor.service.server import Server
from refcolor_protocol import Attachments, Client, ColorizeRequest, Layout, Mode
from refcolor_protocol.connection import new_key


def pipeline_seconds(colorizer: DiffusionColorizer, job: ColorizeJob) -> float:
    """Wall time of the pipeline alone for ``job``; a full run, never reusing denoised images (the
    encodings stay warm, as in a service)."""
    colorizer.clear_caches(encodings=False)
    start = time.perf_counter()
    colorizer.run(job, NullContext())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    job = synthetic_job(args.size, args.steps, seed=1, mode=Mode.BOTH)
    server = Server(ServerConfig(bind="tcp://127.0.0.1:0", key=new_key(), model="tiny"))
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    att = Attachments()
    size = args.size
    request = ColorizeRequest(
        sketch=att.add(job.sketch.tobytes(), size, size, Layout.RGBA8),
        reference=att.add(job.reference.tobytes(), size, size, Layout.RGBA8),
        sketch_mask=att.add(job.sketch_mask.tobytes(), size, size, Layout.L8),
        reference_mask=att.add(job.reference_mask.tobytes(), size, size, Layout.L8),
        params=job.params,
    )
    service, pipeline = [], []
    with Client(server.address, server.config.key) as client:
        client.colorize(request, att.buffers, timeout=600)  # warm-up: loads caches
        pipeline_seconds(server.default_model, job)  # type: ignore[arg-type]
        for i in range(args.repeats):  # interleaved, so load on the machine hits both alike
            # A new seed each time: a repeated job would reuse its denoised images.
            params = dataclasses.replace(job.params, seed=1000 + i)
            start = time.perf_counter()
            client.colorize(dataclasses.replace(request, params=params), att.buffers, timeout=600)
            service.append(time.perf_counter() - start)
            again = dataclasses.replace(job, params=dataclasses.replace(params, seed=2000 + i), seed=2000 + i)
            pipeline.append(pipeline_seconds(server.default_model, again))  # type: ignore[arg-type]
    server.stop()
    thread.join()
    e2e, alone = statistics.median(service), statistics.median(pipeline)
    print(f"# tiny, {size}x{size}, {args.steps} steps, mode both, median of {args.repeats}")
    print(f"service_job_s: {e2e:.3f}")
    print(f"pipeline_only_s: {alone:.3f}")
    print(f"overhead_ratio: {e2e / alone:.3f}")


if __name__ == "__main__":
    main()
