"""``refcolor batch --ray``: the model's part of a shot's frames on a Ray cluster (issue 20).

Each worker is a Ray actor holding one copy of the model, loaded once. The driver (the process
that runs ``refcolor batch``) keeps a window of frames in flight ahead of the one it needs next,
spread over the workers, and takes the results in frame order: it carries the colours and writes
every file, so the manifest, the resume and the outputs are those of a local batch. A worker that
dies mid-frame (its process killed, its node lost) is restarted by Ray; the frames it held are sent
again to the next live worker, and each frame is written once, by the driver.

Ray is an optional dependency: ``pip install 'refcolor[ray]'``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from refcolor.batch.run import Arrays, RendererFactory, ShotError
from refcolor.batch.shot import Shot
from refcolor.models.carry import Frame

logger = logging.getLogger(__name__)

RETRIES = 3  # a frame is sent again this many times when the worker holding it dies


@dataclass(frozen=True)
class ClusterOptions:
    address: str | None = None  # None: the cluster Ray finds (RAY_ADDRESS), or a new local one
    workers: int = 0  # 0: one per CPU the cluster has (one per GPU with num_gpus_per_worker)
    num_gpus_per_worker: float = 0.0
    num_cpus_per_worker: float = 1.0
    window: int = 0  # frames in flight; 0: two per worker


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ShotError("refcolor batch --ray needs Ray: pip install 'refcolor[ray]'") from None
    return ray


class _Worker:
    """One model copy (a Ray actor's body)."""

    def __init__(self, model: str, device: str, options: dict[str, Any]) -> None:
        from refcolor.models import load_colorizer

        self.colorizer = load_colorizer(model, device, **options)

    def render(self, shot: Shot, sketch: Any, mask: Any) -> Frame:
        from refcolor.batch.shot import render

        return render(self.colorizer, shot, sketch, mask)

    def pid(self) -> int:
        return os.getpid()


class RayRenderer:
    """A :class:`~refcolor.batch.run.Renderer` on a Ray cluster."""

    def __init__(
        self,
        options: ClusterOptions,
        model: str,
        device: str,
        model_options: dict[str, Any],
        shot: Shot,
        todo: list[int],
        arrays: Arrays,
    ) -> None:
        ray = self.ray = _ray()
        self.todo, self.arrays = todo, arrays
        self.position = {index: i for i, index in enumerate(todo)}
        self.inflight: dict[int, tuple[Any, int]] = {}  # index -> (object ref, worker)
        self.tries: dict[int, int] = {}
        self.next = 0  # position in todo of the next frame to send
        self.errors: dict[int, Exception] = {}
        self.actors: list[Any] = []
        if not todo:
            return
        if not ray.is_initialized():
            ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=False)
        resources = ray.cluster_resources()
        workers = options.workers
        if workers <= 0:
            if options.num_gpus_per_worker > 0:
                workers = int(resources.get("GPU", 0) // options.num_gpus_per_worker)
            else:
                workers = int(resources.get("CPU", 1) // max(options.num_cpus_per_worker, 1e-3))
        workers = max(1, min(workers, len(todo)))
        actor = ray.remote(
            num_cpus=options.num_cpus_per_worker, num_gpus=options.num_gpus_per_worker, max_restarts=-1
        )(_Worker)
        self.actors = [actor.remote(model, device, model_options) for _ in range(workers)]
        try:  # every worker has its model before the first frame goes out
            ray.get([a.pid.remote() for a in self.actors])
        except ray.exceptions.RayActorError as error:
            self.close()
            raise ShotError(f"cannot load the model {model!r} on the Ray workers: {error}") from None
        self.window = options.window or 2 * workers
        self.shot = ray.put(shot)  # once: every worker reads the same reference from the object store
        logger.info("rendering %d frames on %d Ray workers", len(todo), workers)

    def worker_pids(self) -> list[int]:
        """The workers' process ids (for tests that kill one)."""
        return [int(pid) for pid in self.ray.get([a.pid.remote() for a in self.actors])]

    def _send(self, index: int, worker: int) -> None:
        try:
            sketch, mask = self.arrays(index)
        except Exception as error:  # the frame's own failure: reported when it is asked for
            self.errors[index] = error
            return
        ref = self.actors[worker].render.remote(self.shot, sketch, mask)
        self.inflight[index] = (ref, worker)

    def _fill(self, upto: int) -> None:
        while self.next < len(self.todo) and (self.next <= upto or len(self.inflight) < self.window):
            index = self.todo[self.next]
            self._send(index, self.next % len(self.actors))
            self.next += 1

    def get(self, index: int) -> Frame:
        ray = self.ray
        self._fill(self.position[index])
        while True:
            if index in self.errors:
                raise self.errors.pop(index)
            ref, worker = self.inflight[index]
            try:
                frame: Frame = ray.get(ref)
            except ray.exceptions.RayTaskError as error:  # the model failed on this frame
                self.inflight.pop(index)
                cause = getattr(error, "cause", None)
                raise (cause if isinstance(cause, Exception) else error) from None
            except (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError) as error:
                tries = self.tries[index] = self.tries.get(index, 0) + 1
                if tries > RETRIES:
                    self.inflight.pop(index)
                    raise RuntimeError(f"the workers holding this frame died {tries} times: {error}") from error
                other = (worker + tries) % len(self.actors)  # elsewhere; Ray restarts the dead one meanwhile
                logger.warning("a Ray worker died with frame %d; sending it to worker %d", index, other)
                self._send(index, other)
                continue
            self.inflight.pop(index)
            self._fill(self.position[index] + 1)
            return frame

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        self.inflight.clear()


def ray_renderer(
    options: ClusterOptions, model: str, device: str = "cpu", model_options: dict[str, Any] | None = None
) -> RendererFactory:
    """A renderer factory for :func:`refcolor.batch.run.run_shot`: the frames' model part on Ray."""
    return lambda shot, todo, arrays: RayRenderer(options, model, device, model_options or {}, shot, todo, arrays)
