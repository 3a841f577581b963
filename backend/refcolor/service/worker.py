"""The job queue and the one worker thread that runs jobs in order.

The worker never touches a socket it shares: it reports through a callback
(:class:`Worker` ``emit``), which the server turns into messages on its own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from refcolor.models import masks
from refcolor.models.carry import Frame, carry_frame
from refcolor.models.job import ColorizeJob, Colorizer, JobCancelled, LayerSet, PreviewFn
from refcolor.service import memory
from refcolor.service.images import decode_image, decode_mask, thumbnail
from refcolor_protocol.messages import Buffer, ColorizeRequest, Header, MaskName, Stage
from refcolor_protocol.spec import ErrorCode

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class QueuedJob:
    """A request waiting in the queue or running. ``job_id`` is the request's msg_id."""

    request: ColorizeRequest
    header: Header
    identity: tuple[bytes, ...]  # routing frames of the client that sent it
    buffers: tuple[Buffer, ...]
    model: str
    seed: int
    cancel: threading.Event = field(default_factory=threading.Event)
    step: int = 0
    total: int = 0
    answered: bool = False  # its final answer has been sent (at shutdown, before the worker stopped)

    @property
    def job_id(self) -> str:
        return self.header.msg_id

    def decode(self) -> ColorizeJob:
        """Pixels as numpy arrays (copied out of the message buffers)."""
        req, bufs = self.request, self.buffers

        def image(name: str) -> np.ndarray | None:
            ref = getattr(req, name)
            return None if ref is None else decode_image(ref, bufs[ref.buffer])

        def mask(name: str) -> np.ndarray | None:
            ref = getattr(req, name)
            return None if ref is None else decode_mask(ref, bufs[ref.buffer])

        return ColorizeJob(
            sketch=decode_image(req.sketch, bufs[req.sketch.buffer]),
            reference=decode_image(req.reference, bufs[req.reference.buffer]),
            params=req.params,
            seed=self.seed,
            sketch_mask=mask("sketch_mask"),
            reference_mask=mask("reference_mask"),
            background=image("background"),
            job_id=self.job_id,
        )

    def previous(self) -> Frame | None:
        """The shot's previous frame the request names (its line art, final fills and mask), or None."""
        req, bufs = self.request, self.buffers
        if req.previous_sketch is None or req.previous_fills is None:
            return None
        sketch = decode_image(req.previous_sketch, bufs[req.previous_sketch.buffer])
        fills = decode_image(req.previous_fills, bufs[req.previous_fills.buffer])
        mask = None if req.previous_mask is None else decode_mask(req.previous_mask, bufs[req.previous_mask.buffer])
        opaque = np.full(fills.shape[:2], 255, np.uint8)
        layers = LayerSet(combined=fills, foreground=fills, background=np.dstack([fills[..., :3], opaque]), seed=0)
        return Frame(sketch, mask, layers, age=req.previous_age)


@dataclass(frozen=True)
class Started:
    job: QueuedJob


@dataclass(frozen=True)
class Stepped:
    job: QueuedJob
    step: int
    total: int
    preview: np.ndarray | None
    variation: int = 0  # the first variation of the batch being computed
    stage: Stage = Stage.DENOISING
    fraction: float | None = None  # of a full-resolution stage


@dataclass(frozen=True)
class Finished:
    job: QueuedJob
    layers: list[LayerSet]
    elapsed_s: float
    masks: dict[MaskName, np.ndarray] = field(default_factory=dict)  # the ones computed (auto_masks)
    age: int = 0  # frames the colours were carried through (a frame of a shot: the previous one's + 1)


@dataclass(frozen=True)
class Failed:
    job: QueuedJob
    code: ErrorCode  # cancelled, job_timed_out or job_failed
    message: str


class JobTimedOut(Exception):
    """Raised inside a running job that has run past the server's ``max_job_seconds``."""


Event = Started | Stepped | Finished | Failed


class JobQueue:
    """FIFO of jobs plus the running one; shared by the server thread and the worker."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._waiting: deque[QueuedJob] = deque()
        self._running: QueuedJob | None = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, job: QueuedJob) -> int | None:
        """Queue ``job``; returns the number of jobs ahead of it, or None if the queue is full."""
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                return None
            self._waiting.append(job)
            self._cond.notify()
            return len(self._waiting) - 1 + (self._running is not None)

    def take(self) -> QueuedJob | None:
        """Block until a job is available and mark it running; None once closed."""
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            self._running = self._waiting.popleft()
            return self._running

    def done(self, job: QueuedJob) -> None:
        with self._cond:
            if self._running is job:
                self._running = None

    def remove(self, job_id: str, identity: tuple[bytes, ...] | None = None) -> QueuedJob | None:
        """Take a waiting job out of the queue (None if it is not waiting, or, with ``identity``, if
        another client sent it)."""
        with self._cond:
            for job in self._waiting:
                if job.job_id == job_id and (identity is None or job.identity == identity):
                    self._waiting.remove(job)
                    return job
            return None

    def close(self) -> list[QueuedJob]:
        """Stop handing out jobs; returns the ones that were still waiting."""
        with self._cond:
            self._closed = True
            dropped = list(self._waiting)
            self._waiting.clear()
            self._cond.notify_all()
            return dropped

    @property
    def running(self) -> QueuedJob | None:
        with self._cond:
            return self._running

    def waiting(self) -> list[QueuedJob]:
        with self._cond:
            return list(self._waiting)


class _Context:
    """The :class:`refcolor.models.job.JobContext` a running job reports through."""

    def __init__(
        self,
        job: QueuedJob,
        emit: Callable[[Event], None],
        preview_every: int,
        preview_size: int,
        max_seconds: float = 0.0,
    ) -> None:
        self.job = job
        self.emit = emit
        self.preview_every = preview_every
        self.preview_size = preview_size
        self.max_seconds = max_seconds
        self.deadline = time.monotonic() + max_seconds if max_seconds > 0 else None

    def check_cancelled(self) -> None:
        """Raises JobCancelled on a cancel, JobTimedOut past the time limit (every report checks both)."""
        if self.job.cancel.is_set():
            raise JobCancelled(self.job.job_id)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise JobTimedOut(
                f"job {self.job.job_id} ran longer than this server's limit of {self.max_seconds:g} s "
                "(refcolor serve --max-job-seconds) and was stopped"
            )

    def progress(self, step: int, total: int, preview: PreviewFn | None = None, variation: int = 0) -> None:
        self.check_cancelled()
        self.job.step, self.job.total = step, total
        wanted = (
            preview is not None
            and self.job.request.params.previews
            and (step % self.preview_every == 0 or step == total)
        )
        image = thumbnail(preview(), self.preview_size) if wanted and preview is not None else None
        self.emit(Stepped(self.job, step, total, image, variation))
        self.check_cancelled()

    def stage(self, stage: Stage, done: float = 0.0) -> None:
        self.check_cancelled()
        params = self.job.request.params
        total = self.job.total or params.steps * params.variations  # before the first step: the job's
        fraction = min(1.0, max(0.0, float(done))) if stage in (Stage.UPSAMPLING, Stage.FINISHING) else None
        self.emit(Stepped(self.job, self.job.step, total, None, 0, stage, fraction))


class Worker(threading.Thread):
    """Runs queued jobs one at a time with the colorizer ``load_model(name)`` returns."""

    def __init__(
        self,
        queue: JobQueue,
        load_model: Callable[[str], Colorizer],
        emit: Callable[[Event], None],
        preview_every: int,
        preview_size: int,
        max_job_seconds: float = 0.0,
    ) -> None:
        super().__init__(name="refcolor-worker", daemon=True)
        self.queue = queue
        self.load_model = load_model
        self.emit = emit
        self.preview_every = preview_every
        self.preview_size = preview_size
        self.max_job_seconds = max_job_seconds

    def run(self) -> None:
        while (job := self.queue.take()) is not None:
            self.emit(Started(job))
            final = self._run_one(job)
            memory.release()  # the job's full-resolution buffers go back to the system
            # Done before the final event goes out, so a status asked after it never shows the job.
            self.queue.done(job)
            self.emit(final)

    def _run_one(self, job: QueuedJob) -> Finished | Failed:
        start = time.perf_counter()
        try:
            if job.cancel.is_set():
                raise JobCancelled(job.job_id)
            colorizer = self.load_model(job.model)
            ctx = _Context(job, self.emit, self.preview_every, self.preview_size, self.max_job_seconds)
            decoded, computed = masks.fill(job.decode(), job.request.auto_masks)
            ctx.check_cancelled()
            layers = colorizer.colorize(decoded, ctx)
            if len(layers) != job.request.params.variations:
                raise RuntimeError(
                    f"model {job.model} returned {len(layers)} variations, {job.request.params.variations} asked"
                )
            age = 0
            previous = job.previous()
            if previous is not None:  # a frame of a shot: the previous frame's colours carried into it
                ctx.check_cancelled()
                frame = carry_frame(previous, Frame(decoded.sketch, decoded.sketch_mask, layers[0]))
                layers, age = [frame.layers], frame.age
            ctx.stage(Stage.LAYERS)  # the server thread encodes them next
        except JobCancelled:
            logger.info("job %s cancelled at step %d/%d", job.job_id, job.step, job.total)
            return Failed(job, ErrorCode.CANCELLED, f"job {job.job_id} was cancelled")
        except JobTimedOut as exc:
            logger.warning("%s", exc)
            return Failed(job, ErrorCode.JOB_TIMED_OUT, str(exc))
        except Exception as exc:  # a failing job must not take the service down
            logger.exception("job %s failed", job.job_id)
            return Failed(job, ErrorCode.JOB_FAILED, f"the model failed: {type(exc).__name__}: {exc}")
        elapsed = time.perf_counter() - start
        logger.info("job %s done in %.2f s", job.job_id, elapsed)
        return Finished(job, layers, elapsed, computed, age)
