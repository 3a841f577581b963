"""The official ColorizeDiffusion v1.5 model, from a folder written by ``refcolor convert``.

Registry target ``refcolor.models.v15:load`` (``refcolor serve --model v1.5 --weights DIR``).
Device and dtype choices for it live here: fp16/bf16 on a GPU (UNet, sketch encoder, CLIP) with
the VAE and the background encoder kept in fp32 as the authors run them, fp32 on CPU.
Memory options for small GPUs: ``vae_tiling`` (tiled + sliced VAE decode) and ``offload``
(diffusers' model CPU offload: each component moves to the GPU only while it runs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from refcolor.convert.hub import CHECKPOINT_LICENSE, CLIP_REPO, cached_clip_dir, default_model_dir
from refcolor.models.diffusion import DiffusionColorizer, default_dtype

if TYPE_CHECKING:
    from refcolor.diffusion.pipeline import ReferenceColorizationPipeline

logger = logging.getLogger(__name__)

NAME = "v1.5"
FP32_COMPONENTS = ("vae", "background_encoder")  # the official model keeps these in fp32 at inference


def _how_to_get(folder: Path) -> str:
    return (
        f"get it with `refcolor models download {NAME}` (downloads and converts into {default_model_dir(NAME)}), "
        f"or convert a downloaded checkpoint: `refcolor convert switch-eps.safetensors {folder} --clip CLIP_DIR`; "
        "then pass --weights FOLDER"
    )


def check_offload(device: str) -> None:
    """Raise ``ValueError`` unless model CPU offload can work on ``device``."""
    if not device.startswith("cuda"):
        raise ValueError(
            f"--offload needs a GPU (--device cuda), got --device {device}: it keeps the model in CPU memory "
            "and moves each part to the GPU while it runs; on CPU everything already is in CPU memory"
        )
    if not torch.cuda.is_available():
        raise ValueError("--offload needs a CUDA GPU, but torch sees none (torch.cuda.is_available() is False)")
    try:
        import accelerate  # noqa: F401  (diffusers' offload hooks)
    except ImportError:
        raise ValueError("--offload needs the accelerate package: pip install accelerate") from None


def load_pipeline(
    folder: str | Path,
    device: str = "cpu",
    clip: str | Path | None = None,
    offload: bool = False,
    vae_tiling: bool = False,
    both_clean: bool = False,
) -> ReferenceColorizationPipeline:
    """The v1.5 :class:`~refcolor.diffusion.pipeline.ReferenceColorizationPipeline` from a converted folder.

    Args:
        folder: written by ``refcolor convert`` / ``refcolor models download v1.5``.
        device: ``cpu``, ``cuda``, ``cuda:1`` ...
        clip: a transformers CLIP ViT-H/14 folder; needed when ``folder`` has no ``image_encoder/``
            and the Hugging Face cache has no copy of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``.
        offload: diffusers' model CPU offload (GPU only).
        vae_tiling: decode (and encode) the VAE in tiles and one image at a time.
        both_clean: the paper's clean "both" split instead of the authors' shared-token context.

    Raises:
        FileNotFoundError: no converted model in ``folder`` (says how to get one), or no CLIP.
        ValueError: ``offload`` without a GPU.
    """
    from refcolor.convert.clip import load_clip_encoder
    from refcolor.diffusion.pipeline import ReferenceColorizationPipeline

    folder = Path(folder).expanduser()
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"no converted {NAME} model in {folder} (no model_index.json): {_how_to_get(folder)}")
    if offload:
        check_offload(device)
    dtype = default_dtype(device)
    dtypes: dict[str, torch.dtype] = {"default": dtype, **dict.fromkeys(FP32_COMPONENTS, torch.float32)}
    extra: dict[str, object] = {}
    if clip is not None or not (folder / "image_encoder" / "config.json").is_file():
        clip_dir = Path(clip) if clip is not None else cached_clip_dir()
        if clip_dir is None:
            raise FileNotFoundError(
                f"{folder} has no image_encoder/ and no CLIP ViT-H/14 ({CLIP_REPO}) is in the Hugging Face cache: "
                f"pass --clip DIR (a transformers CLIP folder) or run `refcolor models download {NAME}`"
            )
        extra["image_encoder"] = load_clip_encoder(clip_dir, dtype)
    pipe = ReferenceColorizationPipeline.from_pretrained(str(folder), dtype=dtypes, **extra)
    if both_clean:
        pipe.register_to_config(both_mode_shares_tokens=False)
    if vae_tiling:
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
    if offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe


def load(
    device: str = "cpu",
    weights: str | Path | None = None,
    clip: str | Path | None = None,
    offload: bool = False,
    vae_tiling: bool = False,
    both_clean: bool = False,
) -> DiffusionColorizer:
    """The registry factory of ``v1.5``: ``weights`` defaults to where ``refcolor models download`` puts it."""
    folder = Path(weights) if weights is not None else default_model_dir(NAME)
    pipe = load_pipeline(folder, device, clip, offload, vae_tiling, both_clean)
    options = [
        name for name, on in (("offload", offload), ("vae tiling", vae_tiling), ("clean both", both_clean)) if on
    ]
    description = f"official ColorizeDiffusion v1.5 ({CHECKPOINT_LICENSE}, non-commercial) from {folder}"
    if options:
        description += f" [{', '.join(options)}]"
    logger.info("loaded %s on %s (%s)", NAME, device, pipe.unet.dtype)
    return DiffusionColorizer(pipe, NAME, device, description)
