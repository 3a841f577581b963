"""The diffusion model behind the service's job interface (:class:`refcolor.models.job.Colorizer`).

Registry targets: ``refcolor.models.diffusion:load_tiny`` (``load(device)``) and
``refcolor.models.diffusion:load_folder`` (``load_folder(path, device)``). Device and
dtype are chosen here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from refcolor.diffusion.cache import EncodingCache, MiB, content_hash
from refcolor.diffusion.config import TINY
from refcolor.diffusion.pipeline import ColorizationOutput, ReferenceColorizationPipeline
from refcolor.imaging import finishing
from refcolor.models.job import ColorizeJob, JobContext, LayerSet, ModelInfo
from refcolor_protocol import Mode

logger = logging.getLogger(__name__)

MODES = tuple(m.value for m in Mode)
DENOISED_CACHE_BYTES = 32 * MiB  # denoised batches of recent jobs (model resolution), for re-finishing them
# Job parameters that do not change what is denoised (the seeds are keyed per batch).
NOT_DENOISING = (*finishing.PARAMS, "previews", "variations", "seed")


def denoising_key(job: ColorizeJob, seeds: list[int]) -> str:
    """What one batch's denoised images depend on: the images, the denoising parameters, the seeds."""
    params = {k: v for k, v in dataclasses.asdict(job.params).items() if k not in NOT_DENOISING}
    images = (job.sketch, job.reference, job.sketch_mask, job.reference_mask, job.background)
    return content_hash(*images, repr(sorted(params.items())), *seeds)


def default_dtype(device: str) -> torch.dtype:
    """fp32 on CPU; bf16 on GPUs that have it, else fp16."""
    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class DiffusionColorizer:
    """Runs :class:`ReferenceColorizationPipeline` for jobs; caches encodings across jobs."""

    def __init__(
        self,
        pipe: ReferenceColorizationPipeline,
        name: str,
        device: str,
        description: str = "",
        max_batch: int = 4,
    ) -> None:
        self.pipe = pipe
        self.max_batch = max_batch  # variations per pipeline call: bounds memory for large requests
        self.pipe.set_progress_bar_config(disable=True)
        self.cache = pipe.enable_encoding_cache()
        # A job that differs from a recent one only in finishing (color_match, flatten) reuses its
        # denoised images: only upsampling and finishing run again. Both caches are bounded in bytes.
        self.denoised = EncodingCache(DENOISED_CACHE_BYTES)
        self.info = ModelInfo(
            name=name,
            kind="diffusion",
            device=device,
            modes=MODES,
            native_resolution=int(pipe.config.native_resolution),
            description=description,
            color_match=float(pipe.config.color_match),
            flatten=float(pipe.config.flatten),
        )

    def clear_caches(self, encodings: bool = True) -> None:
        """Forget denoised images and (``encodings``) encodings: the next job denoises in full."""
        for cache in (self.cache if encodings else None, self.denoised):
            if cache is not None:
                cache.clear()

    def run(self, job: ColorizeJob, ctx: JobContext) -> list[ColorizationOutput]:
        """The pipeline's outputs for ``job``, reporting every step to ``ctx`` (which may cancel).

        Variations run in batches of at most ``max_batch``; each has its own seed, so batching
        does not change the images. Progress follows PROTOCOL.md: ``total`` is steps x variations,
        and each denoising step of a batch of n variations counts n.
        """
        variations, steps = job.params.variations, job.params.steps
        seeds = [(job.seed + i) % 2**32 for i in range(variations)]
        batches = [seeds[i : i + self.max_batch] for i in range(0, variations, self.max_batch)]
        total = steps * variations
        want_previews = job.params.previews
        images = (job.sketch, job.reference, job.sketch_mask, job.reference_mask, job.background)
        outputs = []
        first = 0  # the first variation of the batch
        for batch in batches:

            def on_step(
                pipe: ReferenceColorizationPipeline,
                step: int,
                timestep: int,
                tensors: dict[str, Any],
                first: int = first,
                size: int = len(batch),
            ) -> dict[str, Any]:
                latents = tensors["latents"]
                preview = (lambda: pipe.preview_image(latents)) if want_previews else None
                # raises JobCancelled on cancel
                ctx.progress(first * steps + (step + 1) * size, total, preview=preview, variation=first)
                return {}

            # The one translation between a job and the pipeline: a batch of the job's variations.
            params = dataclasses.replace(job.params, variations=len(batch))
            key = denoising_key(job, batch)
            denoised = self.denoised.get(key)
            if denoised is not None:
                output = self.pipe(*images, params, denoised=denoised, callback_on_stage=ctx.stage)
                ctx.progress((first + len(batch)) * steps, total, variation=first)
            else:
                generators = [torch.Generator("cpu").manual_seed(s) for s in batch]
                output = self.pipe(
                    *images, params, generator=generators, callback_on_step_end=on_step, callback_on_stage=ctx.stage
                )
                if not output.interrupted:
                    self.denoised.put(key, output.native)
            first += len(batch)
            outputs.append(output)
        return outputs

    def colorize(self, job: ColorizeJob, ctx: JobContext) -> list[LayerSet]:
        ctx.check_cancelled()
        layers = [
            (c, f, b)
            for out in self.run(job, ctx)
            for c, f, b in zip(out.combined, out.foreground, out.background, strict=True)
        ]
        return [
            LayerSet(combined=c, foreground=f, background=b, seed=(job.seed + i) % 2**32)
            for i, (c, f, b) in enumerate(layers)
        ]


def load_tiny(device: str = "cpu") -> DiffusionColorizer:
    """The ``tiny`` model: the full architecture with random weights (seed 0), for tests."""
    from refcolor.diffusion.factory import build_pipeline  # builds modules; keep import-time light

    pipe = build_pipeline(TINY, seed=0).to(device)
    dtype = default_dtype(device)
    if dtype != torch.float32:
        pipe.to(dtype=dtype)
    return DiffusionColorizer(pipe, "tiny", device, "random-weight test model (full architecture)")


def load_folder(path: str, device: str = "cpu") -> DiffusionColorizer:
    """A pipeline saved with ``save_pretrained`` in ``path``."""
    pipe = ReferenceColorizationPipeline.from_pretrained(path, dtype=default_dtype(device)).to(device)
    return DiffusionColorizer(pipe, Path(path).name, device, f"model folder {path}")


NANO_FOLDER = Path(__file__).resolve().parent.parent / "weights" / "nano"


def load_nano(device: str = "cpu") -> DiffusionColorizer:
    """The ``nano`` default model shipped in the package (``refcolor/weights/nano``, see its README)."""
    if not (NANO_FOLDER / "model_index.json").is_file():
        raise FileNotFoundError(
            f"the nano weights are missing from {NANO_FOLDER}; reinstall refcolor, or train them with "
            "`refcolor train --config nano --export` into that folder"
        )
    pipe = ReferenceColorizationPipeline.from_pretrained(NANO_FOLDER, dtype=default_dtype(device)).to(device)
    return DiffusionColorizer(
        pipe, "nano", device, "the default model: small, trained by refcolor on openly licensed art"
    )
