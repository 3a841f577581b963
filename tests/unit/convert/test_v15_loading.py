"""Serving a converted official model: ``--model v1.5 --weights DIR`` and its options, on CPU.

The authors' tiny checkpoint, converted, stands in for the real v1.5 folder (same layout).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from refcolor.cli import main
from refcolor.convert import hub
from refcolor.models import load_colorizer, v15
from refcolor.models.job import ColorizeJob, NullContext
from refcolor_protocol.messages import ColorizeParams, Mode, Scheduler

from .official_files import requires_official


@pytest.fixture(autouse=True)
def isolated_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REFCOLOR_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(v15, "cached_clip_dir", lambda: None)  # the machine's HF cache must not matter


def job(mode: Mode = Mode.BOTH, resolution: int = 128, reference_scale: float = 5.0) -> ColorizeJob:
    rng = np.random.default_rng(0)
    sketch = np.full((100, 120, 4), 255, np.uint8)
    sketch[20:22, 10:110, :3] = 0
    mask = np.zeros((100, 120), np.uint8)
    mask[15:80, 20:90] = 255
    reference = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    reference[..., 3] = 255
    reference_mask = np.zeros((40, 40), np.uint8)
    reference_mask[10:30, 10:30] = 255
    params = ColorizeParams(
        mode=mode, steps=2, resolution=resolution, scheduler=Scheduler.EULER_A, reference_scale=reference_scale
    )
    return ColorizeJob(sketch, reference, params, seed=3, sketch_mask=mask, reference_mask=reference_mask)


def test_without_weights_the_error_says_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as raised:
        load_colorizer("v1.5")
    message = str(raised.value)
    assert str(tmp_path / "models" / "v1.5") in message
    assert "refcolor models download v1.5" in message and "refcolor convert" in message


def test_colorize_command_reports_missing_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    image = tmp_path / "sketch.png"
    Image.new("RGBA", (64, 64), "white").save(image)
    args = ["colorize", str(image), str(image), "--model", "v1.5", "--weights", str(tmp_path / "nowhere")]
    assert main([*args, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"no converted v1.5 model in {tmp_path / 'nowhere'}" in err and "refcolor models download v1.5" in err


def test_offload_without_a_gpu_is_refused_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(ValueError, match="--offload needs a GPU"):
        v15.load("cpu", weights=tmp_path, offload=True)


def test_options_of_a_model_that_takes_none_are_refused() -> None:
    with pytest.raises(ValueError, match="model 'tiny' takes no option weights"):
        load_colorizer("tiny", weights=Path("somewhere"), offload=False)


@requires_official
def test_converted_folder_serves_with_the_official_both_context(converted_tiny: Path) -> None:
    colorizer = load_colorizer("v1.5", weights=converted_tiny)
    pipe = colorizer.pipe
    assert colorizer.info.name == "v1.5" and "CC-BY-NC-SA-4.0" in colorizer.info.description
    assert pipe.config.both_mode_shares_tokens is True
    assert pipe.unet.dtype == pipe.vae.dtype == torch.float32  # fp32 on CPU
    layers = colorizer.colorize(job(reference_scale=1.0), NullContext())
    assert layers[0].combined.shape == (100, 120, 4)


@requires_official
def test_clean_both_and_vae_tiling_work_through_the_pipeline(converted_tiny: Path, monkeypatch) -> None:
    colorizer = v15.load("cpu", weights=converted_tiny, both_clean=True, vae_tiling=True)
    pipe = colorizer.pipe
    assert pipe.config.both_mode_shares_tokens is False
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    tiles: list[tuple[int, ...]] = []
    tiled_decode = pipe.vae.tiled_decode
    monkeypatch.setattr(pipe.vae, "tiled_decode", lambda z, **kw: tiles.append(tuple(z.shape)) or tiled_decode(z, **kw))
    # 192 px -> a 24x24 latent, above the VAE's 16x16 tile (sample_size 128 / 8): decoded in tiles
    layers = colorizer.colorize(job(resolution=192, reference_scale=1.0), NullContext())
    assert tiles == [(1, 4, 24, 24)]
    assert layers[0].combined.shape == (100, 120, 4) and np.ptp(layers[0].combined[..., :3]) > 0


@requires_official
def test_a_folder_without_image_encoder_needs_clip(converted_tiny: Path, tmp_path: Path) -> None:
    folder = tmp_path / "no-clip"
    folder.mkdir()
    for item in converted_tiny.iterdir():
        if item.name != "image_encoder":
            (folder / item.name).symlink_to(item)
    with pytest.raises(FileNotFoundError, match=r"no image_encoder/ .* pass --clip DIR"):
        v15.load("cpu", weights=folder)
    colorizer = v15.load("cpu", weights=folder, clip=converted_tiny / "image_encoder")
    assert colorizer.pipe.image_encoder.config.projection_dim == 64
    assert hub.default_model_dir("v1.5") == tmp_path / "models" / "v1.5"


def test_serve_command_reports_missing_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["serve", "--model", "v1.5", "--weights", str(tmp_path / "nowhere"), "--bind", "tcp://127.0.0.1:0"]
    assert main([*args, "--connection-file", str(tmp_path / "backend.json")]) == 2
    assert "refcolor serve: no converted v1.5 model in" in capsys.readouterr().err
    assert not (tmp_path / "backend.json").exists()
