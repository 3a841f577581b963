"""ReferenceColorizationPipeline: determinism, modes, guidance, schedulers, callback, interrupt, save/load."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from refcolor.diffusion.config import TINY
from refcolor.diffusion.factory import build_pipeline
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.imaging.finishing import to_lab
from refcolor_protocol import ColorizeParams

from .conftest import generators

FAST: dict[str, Any] = {"steps": 3, "resolution": 64}
CALL = {"sketch_mask", "reference_mask", "background", "denoised", "callback_on_step_end",
        "callback_on_step_end_tensor_inputs"}  # pipeline arguments; the rest are ColorizeParams fields


def call(pipe: ReferenceColorizationPipeline, sketch: Any, reference: Any, seed: int = 0, **kwargs: Any) -> Any:
    """The pipeline on ``kwargs``: its own arguments, and ColorizeParams fields (FAST unless given)."""
    params = {**FAST, **{k: v for k, v in kwargs.items() if k not in CALL}}
    rest = {k: v for k, v in kwargs.items() if k in CALL}
    generator = generators(seed, params.get("variations", 1))
    return pipe(sketch, reference, params=ColorizeParams(**params), generator=generator, **rest)


def run(
    pipe: ReferenceColorizationPipeline,
    sketch: np.ndarray,
    reference: np.ndarray,
    seed: int = 0,
    **kwargs: Any,
) -> Any:
    return call(pipe, sketch, reference, seed, **kwargs)


def test_same_seed_same_output_different_seed_different_output(pipe, sketch, reference, sketch_mask) -> None:
    a = run(pipe, sketch, reference, seed=5, sketch_mask=sketch_mask, mode="both")
    b = run(pipe, sketch, reference, seed=5, sketch_mask=sketch_mask, mode="both")
    c = run(pipe, sketch, reference, seed=6, sketch_mask=sketch_mask, mode="both")
    assert np.array_equal(a.native, b.native) and np.array_equal(a.combined[0], b.combined[0])
    assert not np.allclose(a.native, c.native)


def test_variations_are_the_single_runs_of_their_seeds(pipe, sketch, reference) -> None:
    together = run(pipe, sketch, reference, seed=10, variations=2)
    second = run(pipe, sketch, reference, seed=11)
    assert len(together.combined) == 2
    np.testing.assert_allclose(together.native[1], second.native[0], atol=1e-5)


def test_layers_have_the_sketch_size_and_alpha_from_the_mask(pipe, sketch, reference, sketch_mask) -> None:
    out = run(pipe, sketch, reference, sketch_mask=sketch_mask, mode="background")
    for layer in (out.combined[0], out.foreground[0], out.background[0]):
        assert layer.shape == (*sketch.shape[:2], 4) and layer.dtype == np.uint8
    assert (out.combined[0][..., 3] == 255).all()
    assert np.array_equal(out.foreground[0][..., 3], sketch_mask)
    assert np.array_equal(out.background[0][..., 3], 255 - sketch_mask)
    assert np.array_equal(out.foreground[0][..., :3], out.background[0][..., :3])  # the same fills
    # combined = the fills with the line art multiplied over them: equal on paper, darker on lines
    paper, ink = sketch[..., 0] == 255, sketch[..., 0] == 0
    fills, combined = out.foreground[0][..., :3].astype(int), out.combined[0][..., :3].astype(int)
    assert np.abs(fills[paper] - combined[paper]).max() <= 1
    assert (combined[ink] == 0).all()


def test_no_mask_makes_everything_foreground(pipe, sketch, reference) -> None:
    out = run(pipe, sketch, reference, mode="plain")
    assert (out.foreground[0][..., 3] == 255).all() and (out.background[0][..., 3] == 0).all()


def test_modes_give_different_images(pipe, sketch, reference, sketch_mask, reference_mask) -> None:
    images = {
        mode: run(
            pipe, sketch, reference, sketch_mask=sketch_mask, reference_mask=reference_mask, mode=mode
        ).native
        for mode in ("plain", "foreground", "background", "both")
    }
    for a in images:
        for b in images:
            if a < b:
                assert not np.allclose(images[a], images[b]), (a, b)


def test_reference_alpha_is_its_foreground_mask(pipe, sketch, reference, sketch_mask, reference_mask) -> None:
    transparent = reference.copy()
    transparent[..., 3] = np.where(reference_mask > 0, 255, 0)
    # Transparent pixels are composited on white, so give the masked run the same pixels.
    flattened = transparent.copy()
    flattened[transparent[..., 3] == 0, :3] = 255
    flattened[..., 3] = 255
    from_alpha = run(pipe, sketch, transparent, sketch_mask=sketch_mask, mode="background")
    from_mask = run(
        pipe, sketch, flattened, sketch_mask=sketch_mask, reference_mask=reference_mask, mode="background"
    )
    no_mask = run(pipe, sketch, flattened, sketch_mask=sketch_mask, mode="background")
    np.testing.assert_allclose(from_alpha.native, from_mask.native, atol=1e-6)
    assert not np.allclose(from_mask.native, no_mask.native)


def test_background_image_replaces_the_recovered_background(pipe, sketch, reference, sketch_mask) -> None:
    other = np.roll(reference, 7, axis=1)
    recovered = run(pipe, sketch, reference, sketch_mask=sketch_mask, mode="background")
    given = run(pipe, sketch, reference, sketch_mask=sketch_mask, mode="background", background=other)
    assert not np.allclose(recovered.native, given.native)
    plain = run(pipe, sketch, reference, mode="plain")
    plain_with_background = run(pipe, sketch, reference, mode="plain", background=other)
    assert np.array_equal(plain.native, plain_with_background.native)  # plain mode uses one token set


def test_reference_outside_the_guidance_window_has_no_effect(pipe, sketch, reference) -> None:
    other = 255 - reference
    other[..., 3] = 255
    window = {
        "guidance_start": 0.9,
        "guidance_end": 1.0,
        "steps": 2,
    }  # t = 999, 499: never inside
    a = run(pipe, sketch, reference, **window)
    b = run(pipe, sketch, other, **window)
    c = run(pipe, sketch, other, steps=2)
    assert np.array_equal(a.native, b.native)
    assert not np.allclose(b.native, c.native)


@pytest.mark.parametrize("field", ["reference_scale", "sketch_scale"])
def test_guidance_scales_matter(pipe, sketch, reference, field: str) -> None:
    base = run(pipe, sketch, reference, reference_scale=1.0, sketch_scale=1.0)
    guided = run(
        pipe, sketch, reference, **{"reference_scale": 1.0, "sketch_scale": 1.0, field: 4.0}
    )
    assert not np.allclose(base.native, guided.native)


@pytest.mark.parametrize("scheduler", ["dpmpp_2m", "euler_a", "ddim", "unipc"])
def test_every_scheduler_runs(pipe, sketch, reference, scheduler: str) -> None:
    out = run(pipe, sketch, reference, scheduler=scheduler, steps=2)
    assert np.isfinite(out.native).all() and out.native.std() > 0


def test_callback_sees_every_step_and_can_replace_latents(pipe, sketch, reference) -> None:
    seen: list[tuple[int, int]] = []

    def callback(
        p: ReferenceColorizationPipeline, step: int, timestep: int, tensors: dict[str, torch.Tensor]
    ) -> dict:
        seen.append((step, timestep))
        assert tensors["latents"].shape == (1, 4, 8, 8)
        return {"latents": torch.zeros_like(tensors["latents"])} if step == 2 else {}

    out = run(pipe, sketch, reference, callback_on_step_end=callback)
    assert [s for s, _ in seen] == [0, 1, 2]
    assert seen[0][1] == 999  # trailing spacing starts at the last training step
    with torch.no_grad():
        zero = pipe.vae.decode(torch.zeros(1, 4, 8, 8)).sample
    np.testing.assert_allclose(
        out.native[0], ((zero[0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6
    )


def test_callback_exceptions_cancel_the_run(pipe, sketch, reference) -> None:
    class Cancelled(Exception):
        pass

    def callback(*args: Any) -> dict:
        raise Cancelled

    with pytest.raises(Cancelled):
        run(pipe, sketch, reference, callback_on_step_end=callback)


def test_interrupt_flag_stops_denoising(pipe, sketch, reference) -> None:
    steps: list[int] = []

    def callback(p: ReferenceColorizationPipeline, step: int, timestep: int, tensors: dict) -> dict:
        steps.append(step)
        if step == 1:
            p._interrupt = True  # diffusers' convention: a step-end callback sets the flag
        return {}

    out = run(pipe, sketch, reference, steps=5, callback_on_step_end=callback)
    assert steps == [0, 1] and out.interrupted
    assert not run(pipe, sketch, reference).interrupted  # the flag resets with each call


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "sideways"}, r"params.mode: expected one of 'plain', .*got str 'sideways'"),
        ({"scheduler": "lms"}, r"params.scheduler: expected one of 'dpmpp_2m'.*got str 'lms'"),
        ({"steps": 0}, r"params.steps: 0 is out of range; expected 1 <= value <= 1000"),
        ({"reference_scale": -1.0}, r"params.reference_scale: -1.0 is out of range"),
        ({"merge": 1.5}, r"params.merge: 1.5 is out of range"),
        ({"guidance_start": 0.8, "guidance_end": 0.2}, "guidance_start=0.8 is after guidance_end=0.2"),
        ({"resolution": 5000}, r"params.resolution: 5000 is out of range"),
        ({"sketch_mask": np.zeros((5, 5), np.uint8)}, r"sketch_mask is \(5, 5\)"),
        ({"reference_mask": np.zeros((5, 5), np.float32) + 2}, "reference_mask is float but outside"),
        ({"callback_on_step_end_tensor_inputs": ("noise",)}, r"has \['noise'\]; only 'latents'"),
    ],
)
def test_check_inputs_names_the_argument_and_value(
    pipe, sketch, reference, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(pipe, sketch, reference, **kwargs)


def test_one_generator_per_variation_and_any_resolution_rounds_to_the_model_grid(pipe, sketch, reference) -> None:
    with pytest.raises(ValueError, match="got 1 generators for variations=2"):
        pipe(sketch, reference, params=ColorizeParams(variations=2, steps=1), generator=generators(0, 1))
    out = call(pipe, sketch, reference, resolution=100, steps=1)  # the protocol allows any side
    assert out.native.shape[1:3] == (128, 128)


def test_bad_image_types_name_the_argument(pipe, reference) -> None:
    with pytest.raises(TypeError, match="sketch must be a PIL image or a numpy array, got list"):
        pipe([[0]], reference)
    # a strip: the model's working image would be thousands of times the resolution (refcolor colorize)
    with pytest.raises(ValueError, match=r"the sketch is 2000x1, more than 16 times longer than wide"):
        pipe(np.zeros((1, 2000, 3), np.uint8), reference)
    with pytest.raises(ValueError, match="reference must be uint8, got dtype float64"):
        pipe(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3)))


def test_save_and_load_round_trip_is_exact(pipe, sketch, reference, sketch_mask, tmp_path: Path) -> None:
    kwargs = {"sketch_mask": sketch_mask, "mode": "both"}
    before = run(pipe, sketch, reference, seed=3, **kwargs)
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "unet" / "adapters" / "foreground" / "adapter_config.json").is_file()
    assert (tmp_path / "unet" / "adapters" / "background" / "adapter_model.safetensors").is_file()
    loaded = ReferenceColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    after = run(loaded, sketch, reference, seed=3, **kwargs)
    assert np.array_equal(before.native, after.native)
    for mode in ("foreground", "background"):  # each adapter came back, not only the one "both" needs
        assert np.array_equal(
            run(pipe, sketch, reference, sketch_mask=sketch_mask, mode=mode).native,
            run(loaded, sketch, reference, sketch_mask=sketch_mask, mode=mode).native,
        )


def test_chroma_radius_is_model_config_and_smooths_only_chroma(sketch, reference, tmp_path: Path) -> None:
    smooth = build_pipeline(replace(TINY, chroma_radius=5.0), seed=0)
    smooth.set_progress_bar_config(disable=True)
    smooth.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "model_index.json").read_text())["chroma_radius"] == 5.0
    loaded = ReferenceColorizationPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    plain = build_pipeline(TINY, seed=0)  # the same weights, the default radius
    plain.set_progress_bar_config(disable=True)
    a, b = run(plain, sketch, reference, seed=1), run(loaded, sketch, reference, seed=1)
    assert np.array_equal(a.native, b.native)  # the model's own output is the same
    fills_a, fills_b = (x.foreground[0][..., :3].astype(np.float32) / 255 for x in (a, b))
    assert not np.array_equal(fills_a, fills_b)
    lab_a, lab_b = to_lab(fills_a), to_lab(fills_b)
    # Shading (lightness) kept: what moves it is only the gamut clipping and uint8 rounding.
    assert np.abs(lab_a[..., 0] - lab_b[..., 0]).mean() < 0.5
    chroma = [lab[..., 1:] for lab in (lab_a, lab_b)]
    assert np.abs(np.diff(chroma[1], axis=1)).mean() < np.abs(np.diff(chroma[0], axis=1)).mean()  # smoother


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_on_gpu(sketch, reference, sketch_mask, dtype: torch.dtype) -> None:
    from refcolor.diffusion.config import TINY
    from refcolor.diffusion.factory import build_pipeline

    pipe = build_pipeline(TINY).to("cuda", dtype)
    pipe.set_progress_bar_config(disable=True)
    reference_run = build_pipeline(TINY)
    reference_run.set_progress_bar_config(disable=True)
    half = run(pipe, sketch, reference, sketch_mask=sketch_mask, mode="both")
    full = run(reference_run, sketch, reference, sketch_mask=sketch_mask, mode="both")
    assert np.isfinite(half.native).all()
    assert np.abs(half.native - full.native).mean() < 0.1


@pytest.fixture(scope="module")
def prior_pipe() -> ReferenceColorizationPipeline:
    from refcolor.diffusion.config import TINY_PRIOR

    pipe = build_pipeline(TINY_PRIOR, seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_the_colour_prior_follows_the_reference_and_is_absent_without_one(
    prior_pipe, sketch, reference, sketch_mask, reference_mask
) -> None:
    seen: list[torch.Tensor] = []
    original = prior_pipe.unet.forward

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["prior"])
        return original(*args, **kwargs)

    prior_pipe.unet.forward = spy  # type: ignore[method-assign]
    try:
        run(prior_pipe, sketch, reference, sketch_mask=sketch_mask, reference_mask=reference_mask, mode="both")
    finally:
        del prior_pipe.unet.forward
    # Branches [cond, no reference] at every step: the prior, then zeros in place of the reference.
    prior = seen[0]
    assert prior.shape == (2, 3, 8, 8) and prior[0].abs().sum() > 0 and not prior[1].any()
    other = 255 - reference
    other[..., 3] = 255
    a = run(prior_pipe, sketch, reference, sketch_mask=sketch_mask, reference_mask=reference_mask, mode="both")
    b = run(prior_pipe, sketch, other, sketch_mask=sketch_mask, reference_mask=reference_mask, mode="both")
    assert not np.allclose(a.native, b.native)


def test_prior_strength_starts_from_the_noised_prior_and_skips_steps(prior_pipe, sketch, reference) -> None:
    steps: list[int] = []

    def callback(p: ReferenceColorizationPipeline, step: int, timestep: int, tensors: dict) -> dict:
        steps.append(step)
        return {}

    full = run(prior_pipe, sketch, reference, steps=4)
    prior_pipe.register_to_config(prior_strength=0.5)
    try:
        half = run(prior_pipe, sketch, reference, steps=4, callback_on_step_end=callback)
        again = run(prior_pipe, sketch, reference, steps=4)
    finally:
        prior_pipe.register_to_config(prior_strength=1.0)
    assert steps == [2, 3]  # the first half of the schedule is skipped: progress counts on from there
    assert not np.allclose(full.native, half.native) and np.array_equal(half.native, again.native)
    # A job sets it too (the parameter prior_strength; auto = the model's config value, 1.0 here).
    steps.clear()
    asked = run(prior_pipe, sketch, reference, steps=4, prior_strength=0.5, callback_on_step_end=callback)
    assert steps == [2, 3] and np.array_equal(asked.native, half.native)
    assert np.array_equal(run(prior_pipe, sketch, reference, steps=4, prior_strength=None).native, full.native)
