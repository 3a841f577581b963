"""Official ColorizeDiffusion v1.5 checkpoint -> refcolor pipeline folder, streamed.

Memory stays at about one tensor: the checkpoint is read a tensor at a time
(:mod:`~refcolor.convert.readers`), each tensor is renamed/reshaped by the plan
(:mod:`~refcolor.convert.mapping`) and written straight into its place in the output
file (:mod:`~refcolor.convert.writer`); our modules are only ever built on the meta
device, for their configs and shapes. Before anything is written the checkpoint's keys
and shapes are checked against the plan (:mod:`~refcolor.convert.checks`).

Output (what ``ReferenceColorizationPipeline.save_pretrained`` writes, loadable with
``from_pretrained``): ``model_index.json``, ``scheduler/``, ``unet/`` (diffusers UNet +
``adapters/{foreground,background}`` as peft folders), ``vae/``, ``sketch_encoder/``,
``background_encoder/``, ``image_encoder/`` (see :func:`convert_checkpoint`) and
``refcolor_conversion.json`` (what was converted, how).
"""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from refcolor import __version__
from refcolor.convert.checks import check_keys
from refcolor.convert.hub import CHECKPOINT_LICENSE
from refcolor.convert.mapping import ConversionPlan, build_plan, target_modules
from refcolor.convert.readers import TensorReader, open_checkpoint
from refcolor.convert.writer import SafetensorsWriter
from refcolor.diffusion.config import V1_5, ModelConfig

if TYPE_CHECKING:
    from refcolor.diffusion.factory import Components  # heavy: diffusers, transformers

logger = logging.getLogger(__name__)

INFO_FILE = "refcolor_conversion.json"


def _reader(source: str | Path | TensorReader) -> tuple[TensorReader, str]:
    if isinstance(source, (str, Path)):
        return open_checkpoint(source), str(source)
    return source, type(source).__name__


def check_checkpoint(reader: TensorReader, plan: ConversionPlan, source: str) -> None:
    """Raise :class:`~refcolor.convert.checks.CheckpointMismatchError` unless ``reader`` fits ``plan``."""
    found = {key: reader.shape(key) for key in reader.names()}
    check_keys(found, plan.expected, plan.optional, source, f"official {plan.config.name}")


def convert_to_modules(source: str | Path | TensorReader, config: ModelConfig = V1_5) -> Components:
    """The checkpoint loaded into our modules (``image_encoder`` stays on the meta device).

    The modules are built on the meta device and take the checkpoint's tensors as they are
    (``assign=True``): a reader of meta tensors gives a shapes-only model, a real one holds
    the whole model in memory. For a folder on disk use :func:`convert_checkpoint`.
    """
    reader, name = _reader(source)
    try:
        plan = build_plan(config)
        check_checkpoint(reader, plan, name)
        parts = target_modules(config)
        states: dict[str, dict[str, torch.Tensor]] = {}
        for key in reader.names():
            target = plan.targets.get(key)
            if target is not None:
                states.setdefault(target.component, {})[target.module_key] = target.convert(reader.get(key))
    finally:
        if isinstance(source, (str, Path)):
            reader.close()
    for component, state in states.items():
        parts[component].load_state_dict(state, strict=True, assign=True)
    return parts


def _write_configs(config: ModelConfig, folder: Path) -> None:
    """Every config file of the pipeline folder (no weights), from meta-device modules."""
    from refcolor.diffusion.adapters import ADAPTER_NAMES
    from refcolor.diffusion.factory import assemble_pipeline

    parts = target_modules(config)
    pipe = assemble_pipeline(config, parts)
    pipe.save_config(str(folder))  # model_index.json
    pipe.scheduler.save_pretrained(str(folder / "scheduler"))
    for component in ("unet", "vae", "sketch_encoder", "background_encoder"):
        parts[component].save_config(str(folder / component))
    for adapter in ADAPTER_NAMES:
        parts["unet"].peft_config[adapter].save_pretrained(str(folder / "unet" / "adapters" / adapter))


def _write_image_encoder(config: ModelConfig, folder: Path, clip: str | Path | None, dtype: torch.dtype) -> str | None:
    """Fill ``image_encoder/``; returns what it holds (None: nothing, to be supplied at load time)."""
    from refcolor.convert.clip import extract_vision_tower

    width = config.unet.cross_attention_dim
    if clip is not None:
        extract_vision_tower(clip, folder / "image_encoder", dtype, projection_dim=width)
        return f"CLIP vision tower from {clip}"
    if width != V1_5.unet.cross_attention_dim:
        # A reduced official variant: its reference tokens are stand-ins, so is its encoder.
        from refcolor.diffusion.reference_encoder import build_clip_encoder

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            build_clip_encoder(config.reference_encoder).save_pretrained(str(folder / "image_encoder"))
        return "random stand-in CLIP tower (reduced variant)"
    logger.warning(
        "no --clip given: the folder gets no image_encoder/; it is supplied at load time (refcolor serve "
        "--clip DIR, or the Hugging Face cache filled by `refcolor models download v1.5`)"
    )
    return None


def convert_checkpoint(
    source: str | Path | TensorReader,
    out_dir: str | Path,
    config: ModelConfig = V1_5,
    clip: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    overwrite: bool = False,
) -> Path:
    """Convert an official checkpoint into a refcolor pipeline folder.

    Args:
        source: the checkpoint (``.safetensors``, ``.ckpt``, ``.pt``, ``.pth``) or a reader.
        out_dir: the folder to create.
        config: the model's shapes (``v1.5``; ``official-tiny`` for the authors' tiny variant).
        clip: a transformers CLIP folder (``CLIPModel`` or ``CLIPVisionModelWithProjection``,
            e.g. ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``) whose vision tower becomes
            ``image_encoder/``. Without it the v1.5 folder has no ``image_encoder/`` and the
            loader supplies one (see :mod:`refcolor.models.v15`); a reduced variant gets a random
            stand-in of its width.
        dtype: the dtype written (the official file is fp32; fp16/bf16 halve the folder).
        overwrite: replace an existing ``out_dir``.

    Returns:
        ``out_dir``.

    Raises:
        CheckpointMismatchError: keys or shapes differ from the official layout (named).
        FileExistsError: ``out_dir`` exists and ``overwrite`` is False.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} exists and is not empty; choose another folder or pass --overwrite")
        if not (out / "model_index.json").is_file():
            raise FileExistsError(f"{out} is not a pipeline folder (no model_index.json): refusing to replace it")
    reader, name = _reader(source)
    partial = out.with_name(out.name + ".partial")
    try:
        plan = build_plan(config)
        check_checkpoint(reader, plan, name)
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        _write_configs(config, partial)
        keys = [k for k in reader.names() if k in plan.targets]
        with ExitStack() as stack:
            writers = {
                file: stack.enter_context(SafetensorsWriter(partial / file, {k: (s, dtype) for k, s in shapes.items()}))
                for file, shapes in plan.file_shapes.items()
            }
            report_every = max(1, len(keys) // 10)
            for done, key in enumerate(keys, 1):
                target = plan.targets[key]
                writers[target.file].write(target.key, target.convert(reader.get(key)))
                if done % report_every == 0 or done == len(keys):
                    logger.info("converted %d/%d tensors", done, len(keys))
        encoder = _write_image_encoder(config, partial, clip, dtype)
        info = {
            "source": name,
            "config": config.name,
            "dtype": str(dtype).removeprefix("torch."),
            "image_encoder": encoder,
            "tensors": len(keys),
            "converter": f"refcolor {__version__}",
            "license": f"{CHECKPOINT_LICENSE} (the official weights: non-commercial, share-alike)",
        }
        (partial / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        if isinstance(source, (str, Path)):
            reader.close()
    logger.info("wrote %s (%s, %d tensors)", out, config.name, len(keys))
    return out
