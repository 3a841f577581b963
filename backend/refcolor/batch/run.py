"""A shot from files to files, resumable: ``refcolor batch``'s engine.

For each frame, in natural order, the output folder gets ``<stem>_combined.png``,
``<stem>_foreground.png`` and ``<stem>_background.png`` (and ``<stem>_mask.png`` when the
frame's mask was computed), and ``manifest.json`` says what was done with what:

* the shot: reference, masks, background, model, parameters, the shot's seed, consistency,
  each input with the SHA-256 of its bytes;
* per frame: its input and mask with their hashes, its ``key``, its status (``done``,
  ``failed`` with the error, or ``pending``), its outputs and seconds.

A frame's key is a hash of everything its outputs depend on: the shot's settings, the frame's
and its mask's bytes and, when colours are carried, the previous frame's key. Re-running skips a
frame whose key matches a ``done`` entry whose files are all there, so an interrupted run goes on
where it stopped, and a changed frame is redone with the frames that carry its colours. Every
file is written whole (:mod:`refcolor.batch.output`: renamed into place in a local folder, one
object put on shared storage), so a run killed at any moment leaves whole PNGs and a whole
manifest, and loses at most the frame in flight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from refcolor import __version__
from refcolor.batch.frames import is_image
from refcolor.batch.output import Output, OutputBusyError
from refcolor.batch.shot import Consistency, Shot, carry, render
from refcolor.imaging import automask
from refcolor.models.carry import Frame
from refcolor.models.job import Colorizer, JobContext, LayerSet
from refcolor.models.masks import on_white
from refcolor_protocol.fields import to_dict
from refcolor_protocol.messages import ColorizeParams

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1
AUTO = "auto"
LAYERS = ("combined", "foreground", "background")
REFERENCE_MASK_FILE = "reference_mask.png"  # the computed reference mask, when it is "auto"


class ShotError(ValueError):
    """The shot as a whole cannot run (its reference cannot be read...): no frame was tried."""


@dataclass(frozen=True)
class ShotSpec:
    """A shot as the command line gives it: files, and how to colorize them."""

    frames: list[Path]
    reference: Path
    output: Path | str  # a local folder, or anything fsspec opens (s3://bucket/shot, ...)
    params: ColorizeParams  # seed None: the manifest's (a resumed shot), else a fresh one
    model: str = "nano"
    reference_mask: Path | str | None = None  # a file, "auto", or None (the reference's alpha)
    masks: Path | str | None = None  # a folder of masks named like the frames, "auto", or None
    background: Path | None = None
    consistency: Consistency = Consistency.CARRY


@dataclass
class Summary:
    frames: int = 0
    done: int = 0  # colorized in this run
    skipped: int = 0  # already done with the same inputs (resumed)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (frame, error)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted and self.done + self.skipped == self.frames


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def png_bytes(pixels: np.ndarray) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="PNG")
    return stream.getvalue()


def read_image(path: Path | io.BytesIO, what: str, mode: str, name: str = "") -> np.ndarray:
    """The image at ``path`` (or in a stream of bytes read from ``name``) in PIL ``mode`` (RGBA, L).

    Raises:
        ValueError: it cannot be read, naming ``what`` it is and why.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert(mode))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read the {what} {name or path}: {error}") from None


def read_output(output: Output, name: str, what: str, mode: str) -> np.ndarray:
    """An image an earlier run wrote into ``output``.

    Raises:
        ValueError: it cannot be read.
    """
    try:
        data = output.read(name)
    except OSError as error:
        raise ValueError(f"cannot read the {what} {output.describe(name)}: {error}") from None
    return read_image(io.BytesIO(data), what, mode, output.describe(name))


def read_rgba(path: Path, what: str) -> np.ndarray:
    return read_image(path, what, "RGBA")


def read_mask(path: Path, what: str) -> np.ndarray:
    return read_image(path, what, "L")


def mask_file(folder: Path, frame: Path) -> Path:
    """The mask of ``frame`` in ``folder``: the image with the frame's stem (any image suffix).

    Raises:
        ValueError: there is none.
    """
    for candidate in sorted(folder.glob(f"{frame.stem}.*")):
        if is_image(candidate):
            return candidate
    raise ValueError(f"no mask for frame {frame.name} in {folder}: expected {folder / (frame.stem + '.png')}")


def read_manifest(output: Output) -> dict[str, Any] | None:
    """The manifest of an earlier run in ``output``, or None (none, or unreadable: started over)."""
    try:
        data = json.loads(output.read(MANIFEST).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        where = output.describe(MANIFEST)
        logger.warning("the manifest %s cannot be read (%s): every frame is done again", where, error)
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def output_names(stem: str) -> dict[str, str]:
    return {name: f"{stem}_{name}.png" for name in LAYERS}


class ShotRun:
    """One run of a shot: reads its inputs, knows what an earlier run did, writes as it goes."""

    def __init__(self, spec: ShotSpec, output: Output | None = None) -> None:
        self.spec = spec
        self.output = output or Output(spec.output)
        self.earlier = read_manifest(self.output)
        seed = spec.params.seed
        if seed is None:
            seed = (self.earlier or {}).get("shot", {}).get("seed")
            seed = int(seed) if isinstance(seed, int) else secrets.randbelow(2**32)
        self.params = dataclasses.replace(spec.params, seed=seed)
        self.shot, self.shot_record = self._shot()
        self.shot_key = _key(self.shot_record)
        done = {} if self.earlier is None else {
            str(entry.get("frame")): entry for entry in self.earlier.get("frames", []) if isinstance(entry, dict)
        }
        self.earlier_frames: dict[str, dict[str, Any]] = done
        self.frames: list[dict[str, Any]] = [
            {"index": i, "frame": str(path), "status": "pending"} for i, path in enumerate(spec.frames)
        ]

    @property
    def seed(self) -> int:
        return int(self.params.seed or 0)

    def _shot(self) -> tuple[Shot, dict[str, Any]]:
        """The shot's shared inputs, read once (the reference is encoded once too: every frame hands
        the model the same reference array, which its encoding cache recognises).

        Raises:
            ShotError: the reference, its mask or the background cannot be read.
        """
        spec = self.spec
        try:
            reference = read_rgba(spec.reference, "reference")
            record: dict[str, Any] = {"reference": {"path": str(spec.reference), "sha256": file_hash(spec.reference)}}
            reference_mask = None
            if spec.reference_mask == AUTO:
                reference_mask = automask.reference_mask(on_white(reference))
                self.output.write(REFERENCE_MASK_FILE, png_bytes(reference_mask))
                record["reference_mask"] = AUTO
            elif spec.reference_mask is not None:
                path = Path(spec.reference_mask)
                reference_mask = read_mask(path, "reference mask")
                if reference_mask.shape != reference.shape[:2]:
                    raise ValueError(
                        f"the reference mask {path} is {reference_mask.shape[1]}x{reference_mask.shape[0]} but the "
                        f"reference is {reference.shape[1]}x{reference.shape[0]}: give a mask of the reference's size"
                    )
                record["reference_mask"] = {"path": str(path), "sha256": file_hash(path)}
            background = None
            if spec.background is not None:
                background = read_rgba(spec.background, "background")
                record["background"] = {"path": str(spec.background), "sha256": file_hash(spec.background)}
        except (OSError, ValueError, automask.MaskModelMissingError) as error:
            raise ShotError(str(error)) from None
        masks = spec.masks
        record.update(
            masks=None if masks is None else str(masks),
            model=spec.model,
            params=to_dict(self.params),
            seed=self.seed,
            consistency=spec.consistency.value,
        )
        shot = Shot(
            reference=reference, params=self.params, reference_mask=reference_mask, background=background,
            auto_masks=masks == AUTO, consistency=spec.consistency,
        )
        return shot, record

    # --- the manifest --------------------------------------------------------------------

    def manifest(self, summary: Summary) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "refcolor": __version__,
            "shot": self.shot_record,
            "frames": self.frames,
            "summary": {
                "frames": summary.frames,
                "done": summary.done,
                "skipped": summary.skipped,
                "failed": len(summary.failed),
                "interrupted": summary.interrupted,
            },
        }

    def save(self, summary: Summary) -> None:
        self.output.write(MANIFEST, (json.dumps(self.manifest(summary), indent=2) + "\n").encode("utf-8"))

    # --- frames --------------------------------------------------------------------------

    def hashes(self, index: int) -> dict[str, Any]:
        """Frame ``index``'s record fields about its inputs: its hash, and its mask's path and hash.

        Raises:
            ValueError, OSError: a file cannot be read, or there is no mask for it in the masks folder.
        """
        path = self.spec.frames[index]
        record: dict[str, Any] = {"sha256": file_hash(path)}
        masks = self.spec.masks
        if masks is not None and masks != AUTO:
            mask_path = mask_file(Path(masks), path)
            record["mask"] = {"path": str(mask_path), "sha256": file_hash(mask_path)}
        return record

    def arrays(self, index: int, record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame ``index``'s line art and given mask (None: none, or computed by the model's side).

        Raises:
            ValueError: a file cannot be decoded.
        """
        sketch = read_rgba(self.spec.frames[index], "frame")
        mask = read_mask(Path(record["mask"]["path"]), "mask") if "mask" in record else None
        return sketch, mask

    def frame_key(self, record: dict[str, Any], previous_key: str | None) -> str:
        carried = previous_key if self.shot.consistency is Consistency.CARRY else None
        return _key(self.shot_key, record.get("sha256"), record.get("mask"), carried)

    def finished(self, index: int, key: str) -> bool:
        """Whether an earlier run did frame ``index`` with this key and its files are all there."""
        earlier = self.earlier_frames.get(str(self.spec.frames[index]))
        if not earlier or earlier.get("status") != "done" or earlier.get("key") != key:
            return False
        outputs = earlier.get("outputs", {})
        return isinstance(outputs, dict) and all(self.output.exists(str(name)) for name in outputs.values())

    def load_done(self, index: int) -> Frame:
        """Frame ``index`` as an earlier run wrote it (what the next frame carries from)."""
        entry = self.earlier_frames[str(self.spec.frames[index])]
        sketch = read_rgba(self.spec.frames[index], "frame")
        names = entry["outputs"]
        layers = {name: read_output(self.output, names[name], "earlier output", "RGBA") for name in LAYERS}
        mask_name = names.get("mask")
        if mask_name is not None:
            mask: np.ndarray | None = read_output(self.output, mask_name, "earlier mask", "L")
        elif "mask" in entry:
            mask = read_mask(Path(entry["mask"]["path"]), "mask")
        else:
            mask = None
        return Frame(sketch, mask, LayerSet(**layers, seed=self.seed), age=int(entry.get("age", 0)))

    def write(self, index: int, frame: Frame) -> dict[str, str]:
        """Frame ``index``'s layers (and computed mask) into the output folder; their names."""
        stem = self.spec.frames[index].stem
        names = output_names(stem)
        for name, pixels in frame.layers.named().items():
            self.output.write(names[name], png_bytes(pixels))
        if self.spec.masks == AUTO and frame.mask is not None:
            names["mask"] = f"{stem}_mask.png"
            self.output.write(names["mask"], png_bytes(frame.mask))
        return names


@contextlib.contextmanager
def output_lock(output: Output | Path | str) -> Iterator[None]:
    """Holds ``output``'s lock for the block, so two runs never write one folder.

    Raises:
        ShotError: another run holds it.
    """
    try:
        with (output if isinstance(output, Output) else Output(output)).lock():
            yield
    except OutputBusyError:
        busy = f"another refcolor batch is writing to {output}: wait for it, or give another --output"
        raise ShotError(busy) from None


class Renderer(Protocol):
    """Where the model's part of a frame runs (:func:`refcolor.batch.shot.render`): here, one frame at
    a time (:class:`LocalRenderer`), or on a cluster, frames ahead of the one asked for
    (:mod:`refcolor.batch.cluster`). The carry and every write stay with :func:`run_shot`."""

    def get(self, index: int) -> Frame:
        """Frame ``index`` rendered (one of the frames it was made for, asked in order).

        Raises:
            ShotError: no frame can render (the model cannot be loaded).
            Exception: this frame could not render (its message says why).
        """
        ...

    def close(self) -> None: ...


Arrays = Callable[[int], tuple[np.ndarray, np.ndarray | None]]
RendererFactory = Callable[[Shot, list[int], Arrays], Renderer]


class LocalRenderer:
    """Renders each frame when it is asked for, in this process; loads the model on first use."""

    def __init__(self, load: Callable[[], Colorizer], shot: Shot, arrays: Arrays, ctx: JobContext | None = None):
        self.load, self.shot, self.arrays, self.ctx = load, shot, arrays, ctx
        self.model: Colorizer | None = None

    @classmethod
    def factory(cls, load: Callable[[], Colorizer], ctx: JobContext | None = None) -> RendererFactory:
        return lambda shot, todo, arrays: cls(load, shot, arrays, ctx)

    def get(self, index: int) -> Frame:
        sketch, mask = self.arrays(index)
        if self.model is None:
            try:
                self.model = self.load()
            except Exception as error:  # the model, not a frame: no frame can run
                raise ShotError(f"cannot load the model: {error}") from error
        return render(self.model, self.shot, sketch, mask, self.ctx)

    def close(self) -> None:
        self.model = None


def run_shot(
    spec: ShotSpec,
    load: Callable[[], Colorizer] | None = None,
    on_frame: Callable[[int, dict[str, Any]], None] | None = None,
    ctx: JobContext | None = None,
    renderer: RendererFactory | None = None,
) -> tuple[Summary, ShotRun]:
    """Colorize ``spec``'s frames, skipping those an earlier run finished.

    The model's part of each frame runs where ``renderer`` says (default: here, with the model
    ``load()`` gives, loaded once and only if a frame needs it); frames are carried and written
    here, in order. ``on_frame(index, record)`` is called after each frame (done, skipped or
    failed). A frame that fails (an unreadable file, a missing mask, an error in the model) is
    recorded and the next one goes on without carrying from it. A KeyboardInterrupt ends the run
    after saving the manifest (``summary.interrupted``).

    Raises:
        ShotError: the shot's shared inputs cannot be read (no frame was tried), or the model
            cannot be loaded (the manifest is saved first).
    """
    if renderer is None:
        if load is None:
            raise ValueError("run_shot needs a model loader or a renderer")
        renderer = LocalRenderer.factory(load, ctx)
    try:
        output = Output(spec.output)
        output.prepare()
    except (OSError, ValueError) as error:
        raise ShotError(f"cannot write to the output {spec.output}: {error}") from None
    with output_lock(output):
        return _run(spec, output, renderer, on_frame)


def _plan(shot_run: ShotRun) -> list[tuple[dict[str, Any] | None, str | None, str | None]]:
    """Per frame: its input hashes, its key as if every frame before it succeeds, or why its inputs
    cannot be read."""
    plan: list[tuple[dict[str, Any] | None, str | None, str | None]] = []
    previous_key: str | None = None
    for index in range(len(shot_run.spec.frames)):
        try:
            inputs = shot_run.hashes(index)
        except (OSError, ValueError) as error:
            plan.append((None, None, str(error)))
            previous_key = None
            continue
        previous_key = shot_run.frame_key(inputs, previous_key)
        plan.append((inputs, previous_key, None))
    return plan


def _run(
    spec: ShotSpec,
    output: Output,
    make_renderer: RendererFactory,
    on_frame: Callable[[int, dict[str, Any]], None] | None,
) -> tuple[Summary, ShotRun]:
    shot_run = ShotRun(spec, output)
    summary = Summary(frames=len(spec.frames))
    start = time.perf_counter()
    plan = _plan(shot_run)
    todo = [i for i, (_, key, error) in enumerate(plan) if error is None and not shot_run.finished(i, str(key))]
    renderer = make_renderer(shot_run.shot, todo, lambda i: shot_run.arrays(i, plan[i][0] or {}))
    previous: Frame | None = None  # the previous frame's final colours, when in memory
    skipped: int | None = None  # or: it was done by an earlier run (its index), read back on demand
    previous_key: str | None = None
    todo_set = set(todo)
    try:
        for index, path in enumerate(spec.frames):
            record = shot_run.frames[index]
            began = time.perf_counter()
            inputs, planned_key, unreadable = plan[index]
            try:
                if unreadable is not None:
                    raise ValueError(unreadable)
                record.update(inputs or {})
                if index not in todo_set:
                    earlier = shot_run.earlier_frames[str(path)]
                    record.update(
                        key=planned_key, status="done", outputs=earlier["outputs"], seconds=earlier.get("seconds"),
                        age=earlier.get("age", 0),
                    )
                    summary.skipped += 1
                    previous, skipped, previous_key = None, index, planned_key
                else:
                    rendered = renderer.get(index)
                    if skipped is not None and shot_run.shot.consistency is Consistency.CARRY:
                        previous = shot_run.load_done(skipped)
                    frame = carry(shot_run.shot, rendered, previous)
                    previous_key = shot_run.frame_key(inputs or {}, previous_key)
                    outputs = shot_run.write(index, frame)
                    record.update(key=previous_key, status="done", outputs=outputs, error=None, age=frame.age)
                    record["seconds"] = round(time.perf_counter() - began, 3)
                    summary.done += 1
                    previous, skipped = frame, None
            except ShotError:
                shot_run.save(summary)
                raise
            except Exception as error:  # one frame's failure, whatever it is, must not end the shot
                logger.warning("frame %s failed: %s", path, error, exc_info=logger.isEnabledFor(logging.DEBUG))
                record.update(status="failed", error=str(error) or type(error).__name__)
                record.pop("outputs", None)
                summary.failed.append((str(path), record["error"]))
                previous = skipped = previous_key = None
            shot_run.save(summary)
            if on_frame is not None:
                on_frame(index, record)
    except KeyboardInterrupt:
        summary.interrupted = True
        shot_run.save(summary)
    finally:
        renderer.close()
    summary.seconds = time.perf_counter() - start
    return summary, shot_run
