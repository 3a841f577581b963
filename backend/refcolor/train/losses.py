"""The training losses of each stage (``vae``, ``base``, ``adapters``) on a model's parts.

Each takes a batch of the sample cache and the step's generators (``numpy`` for choices, ``torch``
for noise), so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from refcolor.diffusion.attention import SplitAttentionInputs, masks_per_level
from refcolor.diffusion.conditioning import token_sets_for_mode
from refcolor.diffusion.config import ModelConfig
from refcolor.diffusion.patch_autoencoder import downsample_factor
from refcolor.diffusion.reference_encoder import encode_reference
from refcolor.train.cache import Batch
from refcolor.train.recipe import Recipe
from refcolor_protocol import Mode


class StageLosses:
    """The losses of ``config``'s modules (``parts``, trained in place) under ``recipe``."""

    def __init__(
        self,
        parts: dict[str, Any],
        config: ModelConfig,
        recipe: Recipe,
        noise_schedule: DDPMScheduler,
        device: str,
    ) -> None:
        self.parts, self.config, self.recipe = parts, config, recipe
        self.noise_schedule, self.device = noise_schedule, device

    def vae(self, batch: Batch, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        vae = self.parts["vae"]
        crop = min(self.recipe.vae_crop, batch.target.shape[-1])
        y = int(rng.integers(0, batch.target.shape[-2] - crop + 1))
        x = int(rng.integers(0, batch.target.shape[-1] - crop + 1))
        images = batch.target[..., y : y + crop, x : x + crop]
        posterior = vae.encode(images).latent_dist
        # The posterior's mean, not a sample: with a KL weight this small the sampling noise (std ~1 at
        # the start) buries every weak signal, and colour is a weak one next to luminance. The
        # diffusion model needs a good autoencoder, not a generative one.
        reconstruction = vae.decode(posterior.mode()).sample
        loss = F.l1_loss(reconstruction, images) + self.recipe.vae_kl_weight * posterior.kl().mean()
        if self.recipe.vae_chroma_weight:
            chroma = images - images.mean(1, keepdim=True)
            predicted = reconstruction - reconstruction.mean(1, keepdim=True)
            loss = loss + self.recipe.vae_chroma_weight * F.l1_loss(predicted, chroma)
        return loss

    @torch.no_grad()
    def latents(self, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        vae = self.parts["vae"]
        return vae.encode(target).latent_dist.sample(generator=generator) * vae.config.scaling_factor

    def sketch_features(self, ink: torch.Tensor) -> list[torch.Tensor]:
        """As the pipeline: ink in [0, 1] -> [-1, 1], one channel repeated to the encoder's."""
        encoder = self.parts["sketch_encoder"]
        return encoder((ink * 2 - 1).expand(-1, encoder.config.in_channels, -1, -1))

    def reference_tokens(self, reference: torch.Tensor) -> torch.Tensor:
        return encode_reference(self.parts["image_encoder"], reference * 2 - 1)

    def _noisy(
        self, latents: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noisy latents, the UNet's target for them (per the schedule's prediction type), timesteps."""
        noise = torch.randn(latents.shape, generator=generator, device=latents.device)
        steps = self.noise_schedule.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (latents.shape[0],), generator=generator, device=latents.device)
        prediction = self.noise_schedule.config.prediction_type
        if prediction == "epsilon":
            target = noise
        elif prediction == "v_prediction":
            target = self.noise_schedule.get_velocity(latents, noise, timesteps)
        elif prediction == "sample":
            target = latents
        else:
            raise ValueError(f"prediction type {prediction!r} is not supported for training")
        return self.noise_schedule.add_noise(latents, noise, timesteps), target, timesteps

    def _keep(self, share: float, batch: int, rng: np.random.Generator) -> torch.Tensor:
        """(B, 1, 1) 1 for kept samples, 0 for the ``share`` dropped ones."""
        keep = (rng.random(batch) >= share).astype(np.float32)
        return torch.from_numpy(keep).view(-1, 1, 1).to(self.device)

    def base(self, batch: Batch, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        unet = self.parts["unet"]
        size = batch.target.shape[0]
        latents = self.latents(batch.target, generator)
        keep = self._keep(self.recipe.reference_dropout, size, rng)
        tokens = self.reference_tokens(batch.reference) * keep
        ink = batch.ink * self._keep(self.recipe.sketch_dropout, size, rng).unsqueeze(-1)
        noisy, target, timesteps = self._noisy(latents, generator)
        prior = self.prior(batch, Mode.PLAIN, keep.view(-1, 1, 1, 1), batch.mask, 0.5)
        split = SplitAttentionInputs(Mode.PLAIN, tokens)
        features = self.sketch_features(ink)
        kwargs = {"split": split}
        prediction = unet(noisy, timesteps, tokens, features, cross_attention_kwargs=kwargs, prior=prior).sample
        return F.mse_loss(prediction, target)

    def prior(
        self, batch: Batch, mode: Mode, keep: torch.Tensor, mask: torch.Tensor, threshold: float
    ) -> torch.Tensor | None:
        """The colour prior of ``mode`` in [-1, 1] at the latent grid, as the pipeline composites it
        (:meth:`refcolor.imaging.matching.SideFields.for_mode`), zero where the reference is
        dropped (``keep`` (B, 1, 1, 1) 0); None for a model without one."""
        if not self.config.unet.prior_channels:
            return None
        if batch.prior is None:
            raise ValueError("this model takes a colour prior but the sample cache has none; rebuild it")
        whole, foreground, background = batch.prior.unbind(1)
        fg = foreground if mode is Mode.BOTH else whole
        bg = background if mode in (Mode.BACKGROUND, Mode.BOTH) else whole
        latent_mask = F.interpolate(mask, size=whole.shape[-2:], mode="area") >= threshold
        return (torch.where(latent_mask, fg, bg) * 2 - 1) * keep

    def adapters(self, batch: Batch, rng: np.random.Generator, generator: torch.Generator) -> torch.Tensor:
        unet, background = self.parts["unet"], self.parts["background_encoder"]
        modes = self.recipe.adapter_modes
        mode = Mode(str(rng.choice(list(modes), p=np.array(list(modes.values())) / sum(modes.values()))))
        threshold = float(rng.uniform(*self.recipe.thresholds))
        size = batch.target.shape[0]
        with torch.no_grad():
            latents = self.latents(batch.target, generator)
            features = self.sketch_features(batch.ink)
            tokens = self.reference_tokens(batch.reference)
            whited = torch.where(batch.reference_mask < threshold, batch.reference, torch.ones_like(batch.reference))
            whited_tokens = self.reference_tokens(whited)
        embedding = background.threshold_embedder(torch.full((size,), threshold, device=self.device))
        background_tokens = background.transformer(whited_tokens + embedding)
        sets = token_sets_for_mode(mode, tokens, background_tokens, embedding, self.config.both_mode_shares_tokens)
        keep = self._keep(self.recipe.reference_dropout, size, rng)
        assert sets.background is not None
        factor = downsample_factor(self.parts["vae"])
        latent_mask = F.interpolate(batch.mask, scale_factor=1 / factor, mode="area")
        split = SplitAttentionInputs(
            mode=mode,
            foreground_tokens=sets.foreground * keep,
            background_tokens=sets.background * keep,
            masks=masks_per_level(latent_mask, len(unet.config.block_out_channels), threshold),
        )
        noisy, target, timesteps = self._noisy(latents, generator)
        prior = self.prior(batch, mode, keep.view(-1, 1, 1, 1), batch.mask, threshold)
        prediction = unet(
            noisy, timesteps, split.foreground_tokens, features, cross_attention_kwargs={"split": split}, prior=prior
        ).sample
        return F.mse_loss(prediction, target)

    # ---- the loop -------------------------------------------------------------------------------
