"""Fixtures of the converter tests: the authors' tiny checkpoint converted once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from refcolor.convert.converter import convert_checkpoint
from refcolor.convert.official_config import load_official_config
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline

from .official_files import TINY_CHECKPOINT, TINY_CONFIG, TINY_IO


@pytest.fixture(scope="session")
def converted_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_switch.safetensors`` converted with ``tiny_config.json`` (tests using it need the shared files)."""
    return convert_checkpoint(
        TINY_CHECKPOINT, tmp_path_factory.mktemp("convert") / "tiny", load_official_config(TINY_CONFIG)
    )


@pytest.fixture(scope="session")
def tiny_io() -> dict[str, torch.Tensor]:
    return load_file(str(TINY_IO))


@pytest.fixture(scope="session")
def converted_pipe(converted_tiny: Path) -> ReferenceColorizationPipeline:
    pipe = ReferenceColorizationPipeline.from_pretrained(str(converted_tiny))
    pipe.set_progress_bar_config(disable=True)
    return pipe
