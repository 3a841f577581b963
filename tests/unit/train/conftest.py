"""Fixtures for the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data(folders: tuple[Path, Path], tmp_path: Path) -> Path:
    """A data set folder laid out as `refcolor data build` writes it."""
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    for folder in folders:
        folder.rename(root / "train" / folder.name)
    return root
