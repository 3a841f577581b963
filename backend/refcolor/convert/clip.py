"""The reference encoder of the official model: CLIP ViT-H/14 (laion2b_s32b_b79k) via transformers.

The official checkpoint does not contain it (their release drops ``cond_stage_model``);
the same weights are published in transformers format as
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (a whole ``CLIPModel``: text and vision towers).
:func:`extract_vision_tower` streams the vision tower and its projection out of such a
folder (or of a ``CLIPVisionModelWithProjection`` folder) into a pipeline's
``image_encoder/``; :func:`load_clip_encoder` loads either kind of folder. Tokens are
computed by :func:`refcolor.diffusion.reference_encoder.clip_tokens` (bicubic to 224, CLIP
mean/std, ``visual_projection(post_layernorm(last_hidden_state))[:, 1:]``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from refcolor.convert.checks import check_keys
from refcolor.convert.hub import CLIP_REPO
from refcolor.convert.readers import TensorReader, open_checkpoint
from refcolor.convert.writer import SafetensorsWriter

logger = logging.getLogger(__name__)

VISION_PREFIXES = ("vision_model.", "visual_projection.")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def vision_config(folder: str | Path) -> CLIPVisionConfig:
    """The vision tower's config of a ``CLIPModel`` or ``CLIPVisionModelWithProjection`` folder.

    Raises:
        FileNotFoundError: no ``config.json``.
        ValueError: not a CLIP model.
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected a transformers CLIP folder (e.g. {CLIP_REPO})")
    raw = json.loads(path.read_text())
    kind = raw.get("model_type")
    if kind == "clip":
        # A whole CLIPModel: the projection width is a top-level field, not the vision config's.
        vision = dict(raw.get("vision_config") or {})
        vision["projection_dim"] = raw.get("projection_dim", vision.get("projection_dim", 512))
        vision.pop("model_type", None)
        config = CLIPVisionConfig(**vision)
    elif kind == "clip_vision_model":
        config = CLIPVisionConfig.from_pretrained(str(folder))
    else:
        raise ValueError(f"{path}: model_type {kind!r} is not a CLIP model (expected 'clip' or 'clip_vision_model')")
    config.architectures = ["CLIPVisionModelWithProjection"]
    return config


class _ShardedReader:
    """Several checkpoint files behind one :class:`TensorReader` (transformers' sharded folders)."""

    def __init__(self, folder: Path, index: Path) -> None:
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        self._file_of = dict(weight_map)
        self._readers = {name: open_checkpoint(folder / name) for name in sorted(set(weight_map.values()))}

    def names(self) -> list[str]:
        return list(self._file_of)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._readers[self._file_of[key]].shape(key)

    def get(self, key: str) -> torch.Tensor:
        return self._readers[self._file_of[key]].get(key)

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()


def open_weights(folder: str | Path) -> TensorReader:
    """A reader of a transformers folder's weights (single file or sharded)."""
    folder = Path(folder)
    for name in INDEX_FILES:
        if (folder / name).is_file():
            return _ShardedReader(folder, folder / name)
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return open_checkpoint(folder / name)
    raise FileNotFoundError(f"{folder}: no {' or '.join(WEIGHT_FILES)} (transformers weights) found")


def extract_vision_tower(
    source: str | Path,
    out_dir: str | Path,
    dtype: torch.dtype = torch.float32,
    projection_dim: int | None = None,
) -> CLIPVisionConfig:
    """Write the vision tower + projection of the CLIP folder ``source`` to ``out_dir``, one tensor at a time.

    Args:
        projection_dim: the token width the UNet expects; a CLIP of another width is refused.

    Returns:
        The written config.

    Raises:
        ValueError: wrong projection width, or the weights lack vision keys (names them).
    """
    config = vision_config(source)
    if projection_dim is not None and config.projection_dim != projection_dim:
        raise ValueError(
            f"{source}: CLIP projects to {config.projection_dim}-d tokens but the model needs {projection_dim}-d; "
            f"use {CLIP_REPO} (ViT-H/14) for v1.5"
        )
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in CLIPVisionModelWithProjection(config).state_dict().items()}
    reader = open_weights(source)
    try:
        found = {
            k: reader.shape(k)
            for k in reader.names()
            if k.startswith(VISION_PREFIXES) and (k in expected or not k.endswith("position_ids"))
        }
        check_keys(found, expected, frozenset(), f"{source} (vision tower)", "CLIP vision tower + projection")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        config.dtype = dtype
        config.save_pretrained(str(out))
        with SafetensorsWriter(out / "model.safetensors", {k: (s, dtype) for k, s in expected.items()}) as writer:
            for key in expected:
                writer.write(key, reader.get(key))
    finally:
        reader.close()
    logger.info("wrote the CLIP vision tower (%d tensors) to %s", len(expected), out_dir)
    return config


def load_clip_encoder(folder: str | Path, dtype: torch.dtype | None = None) -> CLIPVisionModelWithProjection:
    """A CLIP vision tower from a ``CLIPVisionModelWithProjection`` folder or a whole ``CLIPModel`` folder."""
    config = vision_config(folder)
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = CLIPVisionModelWithProjection.from_pretrained(str(folder), config=config, **kwargs)
    return model.eval()
