"""Giving a finished job's memory back to the system.

A job at document size allocates and frees hundreds of MB in pieces of a few MB. glibc keeps
freed pieces below its mmap threshold in the heap of the thread that freed them, so without
a trim a server's RSS would stay near its largest job's peak. :func:`release` collects garbage
and asks glibc to return the free heap pages (``malloc_trim``); elsewhere it only collects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


_TRIM = _malloc_trim()


def release() -> None:
    """Collect garbage, then return free heap memory to the system where the C library can."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)
