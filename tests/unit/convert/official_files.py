"""The authors' data files (``../shared/official`` beside the repository) and fake checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from refcolor.convert.mapping import load_manifest

OFFICIAL = Path(__file__).resolve().parents[3].parent / "shared" / "official"
TINY_CHECKPOINT = OFFICIAL / "tiny_switch.safetensors"
TINY_IO = OFFICIAL / "tiny_switch_io.safetensors"
TINY_CONFIG = OFFICIAL / "tiny_config.json"

requires_official = pytest.mark.skipif(
    not (TINY_CHECKPOINT.is_file() and TINY_IO.is_file() and TINY_CONFIG.is_file()),
    reason=f"official tiny checkpoint/oracle not present in {OFFICIAL}",
)


class MetaReader:
    """A checkpoint of the released manifest's names and shapes whose tensors are meta (nothing allocated).

    ``drop`` removes keys, ``reshape`` changes shapes, ``extra`` adds keys; ``optional=False`` leaves
    out the DDPM schedule buffers.
    """

    def __init__(
        self,
        drop: tuple[str, ...] = (),
        reshape: dict[str, tuple[int, ...]] | None = None,
        extra: dict[str, tuple[int, ...]] | None = None,
        optional: bool = True,
    ) -> None:
        manifest = load_manifest()
        shapes = {k: s for k, s in manifest.keys.items() if k not in drop and (optional or k not in manifest.optional)}
        shapes.update(reshape or {})
        shapes.update(extra or {})
        self.shapes = shapes
        self.read: list[str] = []

    def names(self) -> list[str]:
        return list(self.shapes)

    def shape(self, key: str) -> tuple[int, ...]:
        return self.shapes[key]

    def get(self, key: str) -> torch.Tensor:
        self.read.append(key)
        return torch.empty(self.shapes[key], device="meta")

    def close(self) -> None:
        pass
