"""The CLIP reference encoder from a transformers folder: a whole ``CLIPModel`` (as laion's ViT-H/14
repository) or a ``CLIPVisionModelWithProjection``; tiny random towers stand in for ViT-H/14."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from refcolor.convert.clip import extract_vision_tower, load_clip_encoder, vision_config
from refcolor.convert.converter import convert_checkpoint
from refcolor.diffusion.config import OFFICIAL_TINY
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.diffusion.reference_encoder import CLIP_MEAN, CLIP_STD, clip_tokens

from .official_files import TINY_CHECKPOINT, requires_official

PROJECTION = OFFICIAL_TINY.unet.cross_attention_dim  # 64: the tiny UNet's context width


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CLIPModel]:
    """A tiny random whole CLIPModel (text + vision) saved the way the Hub repository holds ViT-H/14."""
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={
            "hidden_size": 48,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 3,
            "image_size": 56,
            "patch_size": 14,
            "hidden_act": "gelu",
        },
        projection_dim=PROJECTION,
    )
    model = CLIPModel(config).eval()
    folder = tmp_path_factory.mktemp("clip") / "whole"
    model.save_pretrained(str(folder))
    return folder, model


def reference_tokens(model: CLIPModel, pixels: torch.Tensor) -> torch.Tensor:
    """The official tokens, written out: proj(ln_post(last hidden)) of every patch, CLS dropped."""
    size = model.config.vision_config.image_size
    resized = torch.nn.functional.interpolate(pixels, (size, size), mode="bicubic", align_corners=True, antialias=True)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    hidden = model.vision_model(pixel_values=((resized + 1) / 2 - mean) / std).last_hidden_state
    return model.visual_projection(model.vision_model.post_layernorm(hidden))[:, 1:]


def test_vision_tower_extracted_from_a_whole_clip_gives_the_official_tokens(clip_folder, tmp_path: Path) -> None:
    folder, model = clip_folder
    config = extract_vision_tower(folder, tmp_path / "image_encoder", projection_dim=PROJECTION)
    assert config.projection_dim == PROJECTION and config.hidden_size == 48
    encoder = load_clip_encoder(tmp_path / "image_encoder")
    pixels = torch.rand(2, 3, 80, 72, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ours, expected = clip_tokens(encoder, pixels), reference_tokens(model, pixels)
    assert ours.shape == (2, (56 // 14) ** 2, PROJECTION)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)
    with torch.no_grad():  # the whole-CLIP folder loads directly too
        torch.testing.assert_close(clip_tokens(load_clip_encoder(folder), pixels), expected, rtol=0, atol=1e-6)


def test_a_clip_of_another_width_is_refused(clip_folder, tmp_path: Path) -> None:
    folder, _ = clip_folder
    with pytest.raises(ValueError, match=r"projects to 64-d tokens but the model needs 1024-d"):
        extract_vision_tower(folder, tmp_path / "out", projection_dim=1024)


def test_a_folder_that_is_not_clip_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="not a CLIP model"):
        vision_config(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"config\.json not found"):
        vision_config(tmp_path / "missing")


@requires_official
def test_convert_with_clip_puts_the_vision_tower_in_the_pipeline(clip_folder, tmp_path: Path) -> None:
    folder, model = clip_folder
    out = convert_checkpoint(TINY_CHECKPOINT, tmp_path / "tiny", OFFICIAL_TINY, clip=folder)
    pipe = ReferenceColorizationPipeline.from_pretrained(str(out))
    pixels = torch.rand(1, 3, 56, 56, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(
            pipe.encode_reference_tokens((pixels[0].permute(1, 2, 0).numpy() + 1) / 2),
            reference_tokens(model, pixels),
            rtol=0,
            atol=1e-5,
        )
