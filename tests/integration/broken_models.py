"""Models for the integration tests, registered by the tests that use them."""

from __future__ import annotations

import threading
import time

import numpy as np

from refcolor.models.job import ColorizeJob, JobContext, LayerSet, ModelInfo


class FailingColorizer:
    """Runs one step, then fails the way a model bug or an out-of-memory would."""

    info = ModelInfo("failing", "classical", "cpu", ("plain",), 0, "raises after one step")

    def colorize(self, job: ColorizeJob, ctx: JobContext) -> list[LayerSet]:
        ctx.progress(1, job.params.steps)
        raise RuntimeError("simulated out of memory")


def load_failing(device: str) -> FailingColorizer:
    return FailingColorizer()


class GatedColorizer:
    """Steps only while the test lets it: a job that runs exactly as long as a test needs."""

    info = ModelInfo("gated", "classical", "cpu", ("plain",), 0, "waits for the test between steps")
    gate = threading.Event()

    def colorize(self, job: ColorizeJob, ctx: JobContext) -> list[LayerSet]:
        for step in range(1, job.params.steps + 1):
            while not self.gate.wait(0.01):
                ctx.check_cancelled()
            ctx.progress(step, job.params.steps)
        blank = np.zeros((*job.sketch.shape[:2], 4), np.uint8)
        return [LayerSet(blank, blank, blank, job.seed + v) for v in range(job.params.variations)]


def load_gated(device: str) -> GatedColorizer:
    return GatedColorizer()


class StuckColorizer:
    """Reports one step, then computes in torch for minutes without looking at cancel: a model
    step at a huge working size, as a shutdown finds it."""

    info = ModelInfo("stuck", "classical", "cpu", ("plain",), 0, "one step, then a very long one")

    def colorize(self, job: ColorizeJob, ctx: JobContext) -> list[LayerSet]:
        import torch

        ctx.progress(1, job.params.steps)
        matrix = torch.randn(512, 512)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            matrix = torch.tanh(matrix @ matrix)
        raise RuntimeError("the stuck step ended")


def load_stuck(device: str) -> StuckColorizer:
    return StuckColorizer()
