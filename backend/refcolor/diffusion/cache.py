"""A small LRU cache of encodings (reference tokens, sketch features) keyed by content hash.

Re-running a job with a new seed, mask or strength must not re-encode what did not
change; the key is a hash of the exact model inputs, so a hit is always correct. The cache
is bounded by the bytes of the arrays and tensors it holds, not by a count: a server's
memory between jobs is its model plus at most the stated budgets.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")

MiB = 1 << 20
ENCODING_CACHE_BYTES = 256 * MiB  # reference tokens and sketch features of recent jobs (a few MB each)


def nbytes(value: Any) -> int:
    """The bytes of the arrays and tensors in ``value`` (through lists, tuples, dicts and dataclasses)."""
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, list | tuple):
        return sum(nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0


def content_hash(*parts: np.ndarray | float | int | str | None) -> str:
    """A digest of arrays (bytes, shape and dtype) and scalars, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, np.ndarray):
            array = np.ascontiguousarray(part)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.data.cast("B"))
        else:
            digest.update(repr(part).encode())
        digest.update(b"|")
    return digest.hexdigest()


class EncodingCache:
    """Least-recently-used map from keys to encodings, holding at most ``max_bytes`` (:func:`nbytes`).

    An entry larger than the whole budget is not kept.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The entry of ``key``, computed and stored first if missing (``compute`` never returns None)."""
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value)
        return value

    def get(self, key: Hashable) -> Any | None:
        """The entry of ``key`` (now the most recent), or None."""
        if key not in self._entries:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return self._entries[key][0]

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` as the most recent entry, dropping the least recent beyond ``max_bytes``."""
        size = nbytes(value)
        if key in self._entries:
            self.bytes -= self._entries.pop(key)[1]
        if size > self.max_bytes:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self.bytes -= self._entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
