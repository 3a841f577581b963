"""The encoding cache is bounded by the bytes it holds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from refcolor.diffusion.cache import EncodingCache, nbytes


@dataclass(frozen=True)
class Fields:
    near: torch.Tensor
    far: list[np.ndarray]


def test_nbytes_counts_arrays_and_tensors_inside_containers() -> None:
    fields = Fields(torch.zeros(10, dtype=torch.float16), [np.zeros(5, np.float32), np.zeros(3, np.uint8)])
    assert nbytes(fields) == 20 + 20 + 3
    assert nbytes({"a": (torch.zeros(2, 2),)}) == 16 and nbytes("text") == 0


def test_least_recent_entries_go_once_the_byte_budget_is_passed() -> None:
    cache = EncodingCache(max_bytes=1000)
    for key in "abc":
        cache.put(key, np.zeros(100, np.float32))  # 400 bytes each
    assert len(cache) == 2 and cache.bytes == 800 and cache.get("a") is None
    cache.get("b")  # now the most recent
    cache.put("d", np.zeros(100, np.float32))
    assert cache.get("c") is None and cache.get("b") is not None and cache.bytes <= 1000
    cache.put("huge", np.zeros(1000, np.float32))  # larger than the whole budget: not kept
    assert cache.get("huge") is None and cache.bytes <= 1000
    cache.put("b", np.zeros(10, np.float32))  # replacing an entry counts its new size only
    assert cache.bytes == 400 + 40
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0
    with pytest.raises(ValueError, match="max_bytes"):
        EncodingCache(0)
