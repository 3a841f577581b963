"""Every sampler a request can name keeps the model's noise schedule, zero terminal SNR included."""

from __future__ import annotations

import inspect

import pytest
import torch
from diffusers import DDPMScheduler

from refcolor.diffusion.config import ScheduleSpec
from refcolor.diffusion.schedulers import SCHEDULERS, default_scheduler, make_scheduler

ZERO_SNR = ScheduleSpec(prediction_type="v_prediction", rescale_betas_zero_snr=True)


def oracle_sample(scheduler_name: str, spec: ScheduleSpec, x0: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Run sampler ``scheduler_name`` from pure noise with a denoiser that knows ``x0`` exactly."""
    scheduler = make_scheduler(scheduler_name, default_scheduler(spec).config)
    train = DDPMScheduler.from_config(default_scheduler(spec).config)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(x0.shape, generator=generator) * scheduler.init_noise_sigma
    extra = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        alpha = train.alphas_cumprod[int(t)].sqrt()
        sigma = (1 - train.alphas_cumprod[int(t)]).sqrt()
        noise = (model_input - alpha * x0) / sigma  # what x_t holds besides x0
        velocity = alpha * noise - sigma * x0
        latents = scheduler.step(velocity, t, latents, **extra).prev_sample
    return latents


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_zero_terminal_snr_reaches_every_sampler_and_ends_on_the_data(name: str) -> None:
    scheduler = make_scheduler(name, default_scheduler(ZERO_SNR).config)
    assert scheduler.config.rescale_betas_zero_snr
    assert scheduler.alphas_cumprod[-1] < 1e-6  # nothing of the image is left at the last step
    assert default_scheduler(ScheduleSpec()).alphas_cumprod[-1] > 1e-3  # SD2.1's schedule leaks ~7 %
    x0 = torch.linspace(-1, 1, 2 * 4 * 8 * 8).reshape(2, 4, 8, 8)
    out = oracle_sample(name, ZERO_SNR, x0)
    assert torch.isfinite(out).all()
    assert (out - x0).abs().mean() < 0.04, name  # DDIM stops at t = 0, whose noise (σ 0.03) remains
