"""The training loop: three resumable stages, checkpoints, loss log, sample sheets, export.

Everything a run needs to continue lives in its folder: ``checkpoint.pt`` (weights,
EMA, optimizer, stage and step, the recipe), ``log.jsonl`` (one line per logged step),
``samples/<stage>-<step>.png`` and the prepared sample cache ``cache/``. A step's
randomness comes from ``numpy.random.default_rng([seed, stage, step])`` and a torch
generator seeded the same way, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from refcolor.diffusion.attention import install_split_processors
from refcolor.diffusion.config import ModelConfig
from refcolor.diffusion.factory import assemble_pipeline, build_components
from refcolor.diffusion.patch_autoencoder import downsample_factor
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.diffusion.reference_encoder import encoder_input_size
from refcolor.train.cache import Batch, CacheSpec, SampleCache, build_cache
from refcolor.train.losses import StageLosses
from refcolor.train.recipe import PRECISIONS, STAGES, Recipe, StageRecipe
from refcolor_protocol import ColorizeParams, Mode

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
SHEET_SAMPLES = 4  # cache samples shown on every sample sheet


def widen_conv_in(state: dict[str, torch.Tensor], unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` (a UNet's) with ``conv_in.weight`` padded with zero input channels up to ``unet``'s,
    when ``unet`` takes more (the colour prior's); unchanged otherwise."""
    key = next((k for k in state if k.endswith("conv_in.weight")), None)
    if key is None:
        return state
    old, new = state[key], unet.state_dict()[key]
    others_differ = (old.shape[0], *old.shape[2:]) != (new.shape[0], *new.shape[2:])
    if others_differ or old.shape[1] >= new.shape[1]:
        return state
    logger.info("conv_in widened from %d to %d input channels (the new ones start at zero)", old.shape[1], new.shape[1])
    widened = torch.zeros_like(new)
    widened[:, : old.shape[1]] = old
    return {**state, key: widened}


def lora_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for name, p in unet.named_parameters() if ".lora_" in name]


def base_parameters(unet: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for name, p in unet.named_parameters() if ".lora_" not in name]


def same_but_steps(saved: Recipe, new: Recipe, stage_index: int) -> bool:
    """Whether ``new`` differs from ``saved`` at most in the step counts of stages from ``stage_index`` on
    (a run can be lengthened or shortened while it goes; what is already trained cannot change)."""
    relaxed: dict[str, Any] = {
        name: replace(new.stage(name), steps=saved.stage(name).steps)
        for name in STAGES[stage_index:]
    }
    return replace(new, **relaxed) == saved


class Trainer:
    """Trains ``config``'s modules with ``recipe`` in ``run_dir``.

    Args:
        data: the data set folder of ``refcolor data build`` (its ``train/characters`` and
            ``train/backgrounds`` are used).
        device: ``cpu`` or ``cuda[:n]``.
        precision: ``fp32``, or ``bf16`` for bfloat16 autocast of the forward pass (weights,
            optimizer and EMA stay fp32). On a CPU with AVX-512 BF16 the nano base step is about
            20 % faster; on a GPU it is the usual choice.
    """

    def __init__(
        self,
        config: ModelConfig,
        recipe: Recipe,
        run_dir: Path,
        data: Path,
        device: str = "cpu",
        seed: int = 0,
        workers: int = 2,
        precision: str = "fp32",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        self.config, self.recipe, self.seed, self.precision = config, recipe, seed, precision
        self.run_dir, self.data, self.device, self.workers = Path(run_dir), Path(data), device, workers
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.parts = build_components(config, seed=seed, every_path_random=False)
        for module in self.parts.values():
            module.to(device).train()
        install_split_processors(self.parts["unet"])
        self.stage_index, self.step = 0, 0
        self.ema: EMAModel | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._stop_requested = False
        self.noise_schedule = DDPMScheduler(**asdict(config.schedule))
        self.losses = StageLosses(self.parts, config, recipe, self.noise_schedule, device)
        self._cache: SampleCache | None = None
        self.init_from: str | None = None

    # ---- state ----------------------------------------------------------------------------------

    @property
    def stage(self) -> str:
        return STAGES[self.stage_index] if self.stage_index < len(STAGES) else "done"

    @property
    def finished(self) -> bool:
        return self.stage_index >= len(STAGES)

    def cache(self) -> SampleCache:
        if self._cache is None:
            spec = CacheSpec(
                characters=self.data / "train" / "characters",
                backgrounds=self.data / "train" / "backgrounds",
                count=self.recipe.samples,
                sample_size=self.recipe.sample_size,
                native=self.config.native_resolution,
                encoder_size=encoder_input_size(self.parts["image_encoder"]),
                seed=self.seed,
                prior_factor=downsample_factor(self.parts["vae"]) if self.config.unet.prior_channels else 0,
                auto_mask_share=self.recipe.auto_mask_share,
            )
            self._cache = SampleCache(build_cache(spec, self.run_dir / "cache", self.workers))
        return self._cache

    def trainable(self, stage: str) -> list[torch.nn.Parameter]:
        """The parameters ``stage`` trains; every other parameter is frozen."""
        p = self.parts
        if stage == "vae":
            chosen = list(p["vae"].parameters())
        elif stage == "base":
            chosen = base_parameters(p["unet"]) + list(p["sketch_encoder"].parameters())
            chosen += list(p["image_encoder"].parameters())
        elif stage == "adapters":
            chosen = lora_parameters(p["unet"]) + list(p["background_encoder"].parameters())
        else:
            raise ValueError(f"unknown stage {stage!r}")
        return chosen

    def _freeze_all_but(self, parameters: list[torch.nn.Parameter]) -> None:
        keep = {id(q) for q in parameters}
        for module in self.parts.values():
            for q in module.parameters():
                q.requires_grad_(id(q) in keep)

    def _start_stage(
        self, optimizer_state: dict[str, Any] | None = None, ema_state: dict[str, Any] | None = None
    ) -> None:
        stage_recipe = self.recipe.stage(self.stage)
        parameters = self.trainable(self.stage)
        self._freeze_all_but(parameters)
        if not parameters:  # e.g. the vae stage of a PatchAutoencoder: nothing to train
            return
        decay = [q for q in parameters if q.ndim > 1]
        no_decay = [q for q in parameters if q.ndim <= 1]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": stage_recipe.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=stage_recipe.learning_rate,
            betas=(0.9, 0.99),
        )
        self.ema = EMAModel(parameters, decay=self.recipe.ema_decay, use_ema_warmup=True, power=2 / 3)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)
        if ema_state is not None:
            self.ema.load_state_dict(ema_state)

    def save_checkpoint(self) -> Path:
        path = self.run_dir / CHECKPOINT
        state = {
            "config": self.config.name,
            "recipe": self.recipe.to_dict(),
            "seed": self.seed,
            "stage_index": self.stage_index,
            "step": self.step,
            "vae_scaling_factor": float(self.parts["vae"].config.scaling_factor),
            "modules": {name: module.state_dict() for name, module in self.parts.items()},
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "init_from": self.init_from,
        }
        temporary = path.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, path)
        logger.info("checkpoint: stage %s step %d -> %s", self.stage, self.step, path)
        return path

    def load_checkpoint(self) -> bool:
        """Continue from ``run_dir/checkpoint.pt`` if there is one (returns whether there was).

        Raises:
            ValueError: the checkpoint belongs to another config, recipe or seed.
        """
        path = self.run_dir / CHECKPOINT
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=False)
        saved = Recipe.from_dict(state["recipe"])
        if state["config"] != self.config.name or not same_but_steps(saved, self.recipe, state["stage_index"]):
            raise ValueError(
                f"{path} was written by config {state['config']!r} with another recipe; "
                "resume with the same --config, or train into a new folder "
                "(only the step counts of the current and later stages may change)"
            )
        if saved != self.recipe:
            logger.warning("step counts changed since the checkpoint: %s", self.recipe)
        if state["seed"] != self.seed:
            raise ValueError(f"{path} was trained with seed {state['seed']}, not {self.seed}")
        self.parts["vae"].register_to_config(scaling_factor=state["vae_scaling_factor"])
        for name, module in self.parts.items():
            module.load_state_dict(state["modules"][name])
        self.stage_index, self.step = state["stage_index"], state["step"]
        self.init_from = state.get("init_from")
        if not self.finished:
            self._start_stage(state["optimizer"], state["ema"])
        logger.info("resumed %s at stage %s step %d", path, self.stage, self.step)
        return True

    def initialise_from(self, folder: Path) -> None:
        """Start a new run from a model folder's weights (``--export`` of an earlier run): a warm start.

        Every module must match this config exactly, but for a UNet that gains colour-prior input
        channels (nano -> nano v2): those start at zero, so the model starts as the old one. The
        recipe then runs from its first stage as usual (a finished stage cannot be lengthened on
        resume; this is how to train on).

        Raises:
            ValueError: the run has already started, or the folder's modules do not fit this config.
        """
        if self.stage_index or self.step:
            raise ValueError("--init-from only starts a new run; this one has already trained")
        source = ReferenceColorizationPipeline.from_pretrained(str(folder), dtype=torch.float32)
        for name, module in self.parts.items():
            state = getattr(source, name).state_dict()
            if name == "unet":
                state = widen_conv_in(state, module)
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ValueError(f"{folder}: its {name} does not fit config {self.config.name!r}: {exc}") from None
        self.parts["vae"].register_to_config(scaling_factor=float(source.vae.config.scaling_factor))
        self.init_from = str(folder)
        self._log({"init_from": self.init_from})
        logger.info("initialised every module from %s", folder)

    # ---- steps ----------------------------------------------------------------------------------

    def _rng(self) -> tuple[np.random.Generator, torch.Generator]:
        rng = np.random.default_rng([self.seed, self.stage_index, self.step])
        generator = torch.Generator(self.device).manual_seed(int(rng.integers(2**62)))
        return rng, generator

    def _batch(self, stage_recipe: StageRecipe, rng: np.random.Generator) -> Batch:
        cache = self.cache()
        indices = rng.choice(len(cache), size=min(stage_recipe.batch, len(cache)), replace=False)
        fade = self.recipe.ink_fade if self.stage != "vae" else (1.0, 1.0)
        return cache.batch(indices, rng, fade).to(self.device)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _learning_rate(self, stage_recipe: StageRecipe) -> float:
        """Linear warm-up, then cosine decay to a tenth."""
        if self.step < stage_recipe.warmup:
            return stage_recipe.learning_rate * (self.step + 1) / stage_recipe.warmup
        progress = (self.step - stage_recipe.warmup) / max(1, stage_recipe.steps - stage_recipe.warmup)
        return stage_recipe.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / "log.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM finish the current step, save a checkpoint and return."""

        def request(signum: int, frame: object) -> None:
            logger.warning("signal %d: stopping after this step", signum)
            self._stop_requested = True

        previous = {s: signal.signal(s, request) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def train(
        self, until: str | None = None, max_seconds: float | None = None, max_steps: int | None = None
    ) -> bool:
        """Train from where the run stands, through stage ``until`` (default: all), for at most
        ``max_seconds`` or ``max_steps`` steps (then a checkpoint is saved). Returns True when every
        requested stage is done."""
        last = STAGES.index(until) if until else len(STAGES) - 1
        losses: dict[str, Callable[[Batch, np.random.Generator, torch.Generator], torch.Tensor]] = {
            "vae": self.losses.vae,
            "base": self.losses.base,
            "adapters": self.losses.adapters,
        }
        start, taken = time.monotonic(), 0
        with self._stop_on_signals():
            while self.stage_index <= last:
                stage_recipe = self.recipe.stage(self.stage)
                parameters = self.trainable(self.stage)
                if not parameters:
                    self._finish_stage()
                    continue
                if self.optimizer is None:
                    self._start_stage()
                assert self.optimizer is not None and self.ema is not None
                window: list[float] = []
                tick = time.monotonic()
                while self.step < stage_recipe.steps:
                    out_of_time = max_seconds is not None and time.monotonic() - start > max_seconds
                    if self._stop_requested or out_of_time or (max_steps is not None and taken >= max_steps):
                        self.save_checkpoint()
                        return False
                    rng, generator = self._rng()
                    for group in self.optimizer.param_groups:
                        group["lr"] = self._learning_rate(stage_recipe)
                    with self._autocast():
                        loss = losses[self.stage](self._batch(stage_recipe, rng), rng, generator)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"stage {self.stage} step {self.step}: loss is {loss.item()}; "
                            "lower the learning rate or resume from the last checkpoint"
                        )
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                    self.optimizer.step()
                    self.ema.step(parameters)
                    self.step += 1
                    taken += 1
                    window.append(float(loss.detach()))
                    if self.step % self.recipe.log_every == 0 or self.step == stage_recipe.steps:
                        seconds = (time.monotonic() - tick) / len(window)
                        record = {"stage": self.stage, "step": self.step, "loss": float(np.mean(window)),
                                  "lr": self.optimizer.param_groups[0]["lr"], "seconds_per_step": seconds}  # fmt: skip
                        self._log(record)
                        logger.info("%s step %d/%d loss %.4f (%.2f s/step)", self.stage, self.step,
                                    stage_recipe.steps, record["loss"], seconds)  # fmt: skip
                        window, tick = [], time.monotonic()
                    if self.step % self.recipe.sample_every == 0:
                        self.sample_sheet()
                        tick = time.monotonic()  # the sheet's time is not a training step's
                    if self.step % self.recipe.checkpoint_every == 0:
                        self.save_checkpoint()
                self._finish_stage()
        return True

    def _finish_stage(self) -> None:
        """The EMA weights become the weights; the VAE gets its latent scale; on to the next stage."""
        if self.ema is not None:
            self.ema.copy_to(self.trainable(self.stage))
        if self.stage == "vae" and (self.init_from is None or self.recipe.vae.steps > 0):
            # An autoencoder taken as it is from the model a run starts from keeps that model's
            # scale: the rest of it was trained on latents of that scale.
            self.calibrate_latent_scale()
        self.sample_sheet()
        logger.info("stage %s done", self.stage)
        self.stage_index += 1
        self.step = 0
        self.optimizer, self.ema = None, None
        self.save_checkpoint()

    @torch.no_grad()
    def calibrate_latent_scale(self, count: int = 256) -> float:
        """Set the VAE's ``scaling_factor`` to 1 / std of the latents of ``count`` cache samples."""
        vae = self.parts["vae"]
        cache = self.cache()
        rng = np.random.default_rng([self.seed, 99])
        indices = rng.choice(len(cache), size=min(count, len(cache)), replace=False)
        latents = [
            vae.encode(cache.batch(chunk, rng).target.to(self.device)).latent_dist.mode()
            for chunk in np.array_split(indices, max(1, len(indices) // 32))
        ]
        scale = 1.0 / float(torch.cat(latents).std())
        vae.register_to_config(scaling_factor=scale)
        logger.info("latent scaling factor %.4f", scale)
        return scale

    # ---- outputs --------------------------------------------------------------------------------

    @contextmanager
    def ema_weights(self) -> Iterator[None]:
        """Inside: the current stage's EMA weights in place of the trained ones."""
        if self.ema is None:
            yield
            return
        parameters = self.trainable(self.stage)
        self.ema.store(parameters)
        self.ema.copy_to(parameters)
        try:
            yield
        finally:
            self.ema.restore(parameters)

    def pipeline(self) -> ReferenceColorizationPipeline:
        """A pipeline sharing this trainer's modules (so it sees the weights as they are now)."""
        return assemble_pipeline(self.config, self.parts)

    @torch.no_grad()
    def sample_sheet(self, steps: int = 20) -> Path:
        """``samples/<stage>-<step>.png``: rows of sketch | reference | target | output (| plain output)."""
        cache = self.cache()
        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        path = folder / f"{self.stage}-{self.step:06d}.png"
        indices = np.arange(min(SHEET_SAMPLES, len(cache)))
        batch = cache.batch(indices, np.random.default_rng(0))  # fixed: mirror draws are seeded
        rows = []
        with self.ema_weights():
            pipe = self.pipeline()
            pipe.set_progress_bar_config(disable=True)
            for i in range(len(indices)):
                target = ((batch.target[i].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
                ink = batch.ink[i, 0].numpy()
                sketch = np.repeat(((1 - ink) * 255).round().astype(np.uint8)[..., None], 3, axis=-1)
                reference = (batch.reference[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                reference_mask = (batch.reference_mask[i, 0].numpy() * 255).round().astype(np.uint8)
                mask = (batch.mask[i, 0].numpy() * 255).round().astype(np.uint8)
                cells = [sketch, _resize(reference, sketch.shape[:2]), target]
                if self.stage == "vae":
                    vae = self.parts["vae"]
                    x = batch.target[i : i + 1].to(self.device)
                    decoded = vae.decode(vae.encode(x).latent_dist.mode()).sample[0]
                    cells.append(((decoded.permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8))
                else:
                    modes = ("plain",) if self.stage == "base" else ("both", "plain")
                    for mode in modes:
                        params = ColorizeParams(mode=Mode(mode), steps=steps)
                        out = pipe(
                            sketch, reference, sketch_mask=mask, reference_mask=reference_mask, params=params,
                            generator=torch.Generator("cpu").manual_seed(i), output_type="native",
                        )  # fmt: skip
                        cells.append((out.native[0] * 255).round().astype(np.uint8))
                rows.append(np.concatenate(cells, axis=1))
        for module in self.parts.values():
            module.train()
        Image.fromarray(np.concatenate(rows, axis=0)).save(path)
        logger.info("sample sheet %s", path)
        return path

    def export(self, folder: Path, dtype: torch.dtype = torch.float32) -> Path:
        """Save the model as a pipeline folder (``from_pretrained`` loads it); EMA weights if mid-stage.

        ``dtype=torch.float16`` stores the weights in half precision (half the size; what the
        shipped nano folder holds). The trainer's own modules stay fp32.
        """
        with self.ema_weights():
            pipe = self.pipeline()
            pipe.save_pretrained(str(folder))
        if dtype != torch.float32:  # cast on disk: converting in place would touch the trainer's modules
            for path in Path(folder).rglob("*.safetensors"):
                with safe_open(str(path), "pt") as stored:
                    metadata = stored.metadata()
                    tensors = {key: stored.get_tensor(key) for key in stored.keys()}  # noqa: SIM118 (not iterable)
                cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
                save_file(cast, str(path), metadata=metadata)
        logger.info("exported %s (stage %s step %d) to %s", self.config.name, self.stage, self.step, folder)
        return Path(folder)


def _resize(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.Resampling.BICUBIC))

