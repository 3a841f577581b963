"""The training loop on the tiny config: stages train what they should, resuming changes nothing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from refcolor.cli import train as train_cli
from refcolor.diffusion.config import TINY, AdapterSpec, ScheduleSpec, VaeSpec
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.train.cache import CacheSpec, SampleCache, build_cache, takes_auto_masks
from refcolor.train.recipe import NANO, SMOKE, Recipe, StageRecipe
from refcolor.train.trainer import CHECKPOINT, Trainer, base_parameters, lora_parameters
from refcolor_protocol import ColorizeParams, Mode

RECIPE = replace(
    SMOKE,
    samples=6,
    sample_size=64,
    vae=StageRecipe(steps=2, batch=2, learning_rate=1e-3, warmup=1),
    base=StageRecipe(steps=3, batch=2, learning_rate=1e-3, warmup=1),
    adapters=StageRecipe(steps=3, batch=2, learning_rate=1e-3, warmup=1),
    sample_every=10_000,
    checkpoint_every=10_000,
)


def make_trainer(data: Path, run: Path, recipe: Recipe = RECIPE) -> Trainer:
    return Trainer(TINY, recipe, run, data, workers=0)


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.detach().clone()
        for name, module in trainer.parts.items()
        for key, value in module.state_dict().items()
    }


def test_recipes_round_trip_through_their_dicts() -> None:
    for recipe in (NANO, SMOKE, RECIPE):
        assert Recipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(ValueError, match="unknown stage 'decoder'"):
        NANO.stage("decoder")


def test_cache_holds_samples_as_the_pipeline_prepares_them(data: Path, tmp_path: Path) -> None:
    spec = CacheSpec(data / "train/characters", data / "train/backgrounds", 4, 64, 128, 32)
    folder = build_cache(spec, tmp_path / "cache", workers=0)
    cache = SampleCache(folder)
    assert len(cache) == 4
    assert cache.arrays["target"].shape == (4, 128, 128, 3) and cache.arrays["reference"].shape == (4, 32, 32, 3)
    batch = cache.batch(np.arange(4), np.random.default_rng(0))
    assert batch.target.shape == (4, 3, 128, 128) and -1 <= batch.target.min() < batch.target.max() <= 1
    assert batch.ink.max() > 0.5 and batch.mask.max() == 1 and batch.mask.min() == 0
    # Sketch, mask and target are mirrored together: ink sits where the target has its dark ring.
    dark = batch.target.mean(1, keepdim=True) < -0.6
    assert batch.ink[dark].mean() > batch.ink[~dark].mean() + 0.2
    assert build_cache(spec, folder, workers=0) == folder  # reused
    with pytest.raises(ValueError, match="another folder"):
        build_cache(replace(spec, count=5), folder, workers=0)


def test_a_share_of_samples_trains_with_the_masks_automatic_computes(data: Path, tmp_path: Path) -> None:
    """Issue 19: the model sees the masks a user gets from "Automatic" for a share of samples: the
    same pictures, masks computed from the sketch and the reference instead of the true ones."""
    true = CacheSpec(data / "train/characters", data / "train/backgrounds", 3, 64, 128, 32)
    auto = replace(true, auto_mask_share=1.0)
    plain, computed = (SampleCache(build_cache(s, tmp_path / str(s.auto_mask_share), workers=0)) for s in (true, auto))
    for name in ("target", "ink", "reference"):
        np.testing.assert_array_equal(plain.arrays[name], computed.arrays[name])
    assert not np.array_equal(plain.arrays["mask"], computed.arrays["mask"])
    assert not np.array_equal(plain.arrays["reference_mask"], computed.arrays["reference_mask"])
    with pytest.raises(ValueError, match="another folder"):  # a cache knows which masks it holds
        build_cache(true, tmp_path / "1.0", workers=0)
    half = replace(true, auto_mask_share=0.5)
    picks = [takes_auto_masks(half, i) for i in range(400)]
    assert 150 < sum(picks) < 250 and picks == [takes_auto_masks(half, i) for i in range(400)]
    assert not any(takes_auto_masks(true, i) for i in range(400))


def test_each_stage_trains_only_its_own_parameters(data: Path, tmp_path: Path) -> None:
    trainer = make_trainer(data, tmp_path / "run")
    unet = trainer.parts["unet"]
    before = weights(trainer)
    assert trainer.train(until="vae")
    after_vae = weights(trainer)
    changed = {k for k in before if not torch.equal(before[k], after_vae[k])}
    assert changed and all(k.startswith("vae.") for k in changed)
    assert trainer.parts["vae"].config.scaling_factor != 1.0  # calibrated on the latents

    assert trainer.train(until="base")
    after_base = weights(trainer)
    changed = {k for k in after_vae if not torch.equal(after_vae[k], after_base[k])}
    assert any(k.startswith("unet.") for k in changed) and any(k.startswith("image_encoder.") for k in changed)
    assert any(k.startswith("sketch_encoder.") for k in changed)
    assert not any(".lora_" in k or k.startswith(("vae.", "background_encoder.")) for k in changed)

    assert trainer.train()
    final = weights(trainer)
    changed = {k for k in after_base if not torch.equal(after_base[k], final[k])}
    assert any(".lora_B.foreground" in k for k in changed) and any(".lora_B.background" in k for k in changed)
    assert any(k.startswith("background_encoder.") for k in changed)
    assert all(".lora_" in k or k.startswith("background_encoder.") for k in changed)
    assert trainer.finished and lora_parameters(unet) and base_parameters(unet)
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(log) == 2 + 3 + 3 and '"stage": "adapters"' in log[-1]


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(data: Path, tmp_path: Path) -> None:
    whole = make_trainer(data, tmp_path / "whole")
    assert whole.train()
    interrupted = make_trainer(data, tmp_path / "parts")
    assert not interrupted.train(max_steps=4)  # stops inside the base stage, after a checkpoint
    assert (tmp_path / "parts" / CHECKPOINT).is_file() and interrupted.stage == "base"
    resumed = make_trainer(data, tmp_path / "parts")
    assert resumed.load_checkpoint() and (resumed.stage, resumed.step) == ("base", 2)
    assert not resumed.train(max_steps=2)  # across the stage boundary, into the adapters
    again = make_trainer(data, tmp_path / "parts")
    again.load_checkpoint()
    assert again.train() and again.finished
    expected, got = weights(whole), weights(again)
    mismatched = [k for k in expected if not torch.allclose(expected[k], got[k], atol=1e-6)]
    assert not mismatched, mismatched[:5]


def test_a_checkpoint_of_another_recipe_is_refused(data: Path, tmp_path: Path) -> None:
    trainer = make_trainer(data, tmp_path / "run")
    trainer.train(max_steps=1)
    other = make_trainer(data, tmp_path / "run", replace(RECIPE, reference_dropout=0.5))
    with pytest.raises(ValueError, match="another recipe"):
        other.load_checkpoint()
    # The step counts of the stage under way and later ones may change; finished stages may not.
    longer = replace(RECIPE, vae=replace(RECIPE.vae, steps=5), adapters=replace(RECIPE.adapters, steps=9))
    assert make_trainer(data, tmp_path / "run", longer).load_checkpoint()
    trainer.train(until="vae")
    with pytest.raises(ValueError, match="another recipe"):
        make_trainer(data, tmp_path / "run", longer).load_checkpoint()


def stored_and_trained(
    pipe: ReferenceColorizationPipeline, trainer: Trainer
) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, loaded tensor, trainer's tensor) for every trainer weight; LoRA-wrapped names mapped."""
    for name, module in trainer.parts.items():
        loaded = getattr(pipe, name).state_dict()
        for key, value in module.state_dict().items():
            key = key.replace(".base_layer.", ".") if key not in loaded else key
            yield f"{name}.{key}", loaded[key], value


def test_export_loads_with_from_pretrained_and_sample_sheets_are_written(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = make_trainer(data, tmp_path / "run")
    trainer.train()
    monkeypatch.setitem(sys.modules, "cv2", None)  # the GPU training image has no OpenCV: sheets need none
    sheet = trainer.sample_sheet(steps=2)
    monkeypatch.undo()
    assert Image.open(sheet).size == (5 * 256, 4 * 256)  # sketch, reference, target, both, plain
    folder = trainer.export(tmp_path / "model")
    pipe = ReferenceColorizationPipeline.from_pretrained(folder)
    assert pipe.vae.config.scaling_factor == pytest.approx(trainer.parts["vae"].config.scaling_factor)
    for key, loaded, value in stored_and_trained(pipe, trainer):
        assert torch.equal(loaded, value), key
    trainer.export(tmp_path / "half", torch.float16)
    with safe_open(tmp_path / "half" / "unet" / "diffusion_pytorch_model.safetensors", "pt") as stored:
        assert {stored.get_slice(key).get_dtype() for key in stored.keys()} == {"F16"}  # noqa: SIM118 (not iterable)
    assert (tmp_path / "half" / "unet" / "adapters" / "background").is_dir()
    half = ReferenceColorizationPipeline.from_pretrained(tmp_path / "half", dtype=torch.float32)
    for key, loaded, value in stored_and_trained(half, trainer):
        assert loaded.dtype == value.dtype, key
        assert torch.allclose(loaded, value, rtol=1e-3, atol=1e-4), key
    assert "_name_or_path" not in (tmp_path / "half" / "unet" / "config.json").read_text()  # no local paths
    assert {p.dtype for p in trainer.parts["unet"].parameters()} == {torch.float32}  # the trainer's stay
    assert sum(f.stat().st_size for f in (tmp_path / "half").rglob("*.safetensors")) < 0.6 * sum(
        f.stat().st_size for f in folder.rglob("*.safetensors")
    )


def cli_args(data: Path, run: Path, **overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    args = parser.parse_args(["--config", "tiny", "--recipe", "smoke", "--data", str(data), "--run", str(run)])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_cli_refuses_what_it_cannot_train(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli.run(cli_args(tmp_path / "nothing", tmp_path / "run")) == 2
    assert "refcolor data build" in capsys.readouterr().err
    assert train_cli.run(cli_args(data, tmp_path / "run", recipe="nano")) == 2
    assert "is for config 'nano'" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / CHECKPOINT).write_bytes(b"")
    assert train_cli.run(cli_args(data, tmp_path / "run")) == 2
    assert "--resume" in capsys.readouterr().err


def test_a_pixel_space_v_prediction_model_skips_the_autoencoder_stage(data: Path, tmp_path: Path) -> None:
    schedule = ScheduleSpec(prediction_type="v_prediction", rescale_betas_zero_snr=True)  # as nano
    config = replace(TINY, vae=VaeSpec(patch_size=8), schedule=schedule)
    trainer = Trainer(config, RECIPE, tmp_path / "run", data, workers=0)
    assert float(trainer.noise_schedule.alphas_cumprod[-1]) == 0.0  # trained with nothing left at t = 999
    assert trainer.trainable("vae") == []
    assert trainer.train(until="base")
    scale = trainer.parts["vae"].config.scaling_factor
    targets = trainer.cache().batch(np.arange(6), np.random.default_rng(0)).target
    latents = trainer.losses.latents(targets, torch.Generator())
    assert scale != 1.0 and 0.8 < float(latents.std()) < 1.25  # calibrated to unit spread
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert len(log) == 3 and all('"stage": "base"' in line for line in log)  # no autoencoder steps
    folder = trainer.export(tmp_path / "model")
    pipe = ReferenceColorizationPipeline.from_pretrained(folder)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.scheduler.config.rescale_betas_zero_snr  # and sampled that way


def test_a_new_run_can_start_from_an_exported_model(data: Path, tmp_path: Path) -> None:
    first = make_trainer(data, tmp_path / "first")
    first.train()
    folder = first.export(tmp_path / "model")
    exported = weights(first)
    second = make_trainer(data, tmp_path / "second")
    assert any(not torch.equal(exported[k], v) for k, v in weights(second).items())  # fresh random weights
    second.initialise_from(folder)
    assert all(torch.equal(exported[k], v) for k, v in weights(second).items())
    assert second.parts["vae"].config.scaling_factor == first.parts["vae"].config.scaling_factor
    second.train(max_steps=3)  # a checkpoint mid-run remembers where the run started from
    resumed = make_trainer(data, tmp_path / "second")
    assert resumed.load_checkpoint() and resumed.init_from == str(folder)
    with pytest.raises(ValueError, match="already trained"):
        resumed.initialise_from(folder)
    other = Trainer(replace(TINY, foreground_adapter=AdapterSpec(rank=2)), RECIPE, tmp_path / "third", data, workers=0)
    with pytest.raises(ValueError, match="its unet does not fit config 'tiny'"):
        other.initialise_from(folder)


def test_a_fine_tune_that_leaves_the_autoencoder_keeps_its_latent_scale(data: Path, tmp_path: Path) -> None:
    """Fine-tuning the adapters of an exported model (issue 19's auto-mask recipe) with its own,
    smaller sample cache: the untrained autoencoder must not be re-scaled on those samples, since the
    UNet it came with was trained on latents of the old scale."""
    first = make_trainer(data, tmp_path / "first")
    first.train()
    folder = first.export(tmp_path / "model")
    frozen = replace(
        RECIPE, samples=4, vae=StageRecipe(steps=0, batch=2, learning_rate=0.0),
        base=StageRecipe(steps=0, batch=2, learning_rate=0.0), auto_mask_share=0.5,
    )  # fmt: skip
    second = Trainer(TINY, frozen, tmp_path / "second", data, workers=0)
    second.initialise_from(folder)
    assert second.train(until="base")
    assert second.parts["vae"].config.scaling_factor == first.parts["vae"].config.scaling_factor
    assert all(torch.equal(weights(first)[k], v) for k, v in weights(second).items() if not k.startswith("ema"))


def test_bf16_precision_runs_the_forward_pass_in_bfloat16_and_keeps_fp32_weights(
    data: Path, tmp_path: Path
) -> None:
    trainer = Trainer(TINY, RECIPE, tmp_path / "run", data, workers=0, precision="bf16")
    seen: list[torch.dtype] = []
    # Only the training steps run under autocast; sample sheets and validation stay in fp32.
    trainer.parts["unet"].conv_in.register_forward_hook(
        lambda module, inputs, output: seen.append(output.dtype) if torch.is_grad_enabled() else None
    )
    before = weights(trainer)
    assert trainer.train(until="base")
    assert seen and set(seen) == {torch.bfloat16}, seen
    after = weights(trainer)
    assert all(value.dtype == torch.float32 for value in after.values() if value.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith("unet."))
    with pytest.raises(ValueError, match="precision 'fp8'"):
        Trainer(TINY, RECIPE, tmp_path / "other", data, workers=0, precision="fp8")


def test_cli_refuses_an_init_folder_that_is_not_a_model(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_cli.run(cli_args(data, tmp_path / "run", init_from=tmp_path)) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_a_model_with_a_colour_prior_starts_from_one_without_it_and_trains_with_it(
    data: Path, tmp_path: Path
) -> None:
    """nano -> nano v2 in miniature: a run of the prior config initialised from a model without the
    prior starts as that model exactly (the new input channels are zero), the cache carries the
    prior's three fields, training moves the new channels, and the export runs with its prior."""
    first = make_trainer(data, tmp_path / "first")
    first.train()
    folder = first.export(tmp_path / "model")
    config = replace(TINY, name="tiny-prior", unet=replace(TINY.unet, prior_channels=3))
    recipe = replace(RECIPE, config="tiny-prior")
    second = Trainer(config, recipe, tmp_path / "second", data, workers=0)
    second.initialise_from(folder)
    unet_old, unet_new = first.parts["unet"], second.parts["unet"]
    assert unet_new.conv_in.weight.shape[1] == unet_old.conv_in.weight.shape[1] + 3
    assert not unet_new.conv_in.weight[:, -3:].any()
    sample = torch.randn(1, unet_old.config.in_channels, 8, 8)
    tokens = torch.randn(1, 64, TINY.unet.cross_attention_dim)
    with torch.no_grad():
        before = unet_old(sample, 10, tokens).sample
        after = unet_new(sample, 10, tokens, prior=torch.rand(1, 3, 8, 8)).sample
    torch.testing.assert_close(after, before)  # the prior does nothing yet: the old model, exactly

    cache = second.cache()
    assert cache.has_prior and cache.arrays["prior_whole"].shape == (6, 32, 32, 3)  # 256 px / 8
    batch = cache.batch(np.arange(6), np.random.default_rng(0))
    assert batch.prior is not None and batch.prior.shape == (6, 3, 3, 32, 32)
    # The foreground field takes only the character's colours: it differs from the whole reference's.
    assert not torch.equal(batch.prior[:, 0], batch.prior[:, 1])
    prior = second.losses.prior(batch, Mode.BOTH, torch.ones(6, 1, 1, 1), batch.mask, 0.5)
    assert prior is not None and prior.shape == (6, 3, 32, 32) and -1 <= prior.min() < prior.max() <= 1
    dropped = second.losses.prior(batch, Mode.BOTH, torch.zeros(6, 1, 1, 1), batch.mask, 0.5)
    assert dropped is not None and not dropped.any()  # no reference, no prior

    assert second.train()
    assert unet_new.conv_in.weight[:, -3:].abs().sum() > 0  # it learnt to read the prior
    pipe = ReferenceColorizationPipeline.from_pretrained(second.export(tmp_path / "prior-model"))
    assert pipe.prior_channels == 3
    characters = sorted((data / "train" / "characters").iterdir())
    reference = np.asarray(Image.open(characters[0]).convert("RGBA"))
    sketch = np.full((96, 96, 4), 255, np.uint8)
    sketch[30:32, :, :3] = 0
    params = ColorizeParams(mode=Mode.BOTH, steps=2, resolution=64)
    out = pipe(sketch, reference, params=params, generator=torch.Generator().manual_seed(0))
    assert out.combined[0].shape == (96, 96, 4)
