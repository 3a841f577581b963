"""Ending the backend with the program that started it.

A paint app that starts ``refcolor serve`` passes its process id (``--parent-pid``, or the
``REFCOLOR_PARENT_PID`` environment variable, which also reaches a custom backend command). The
backend then stops by itself when that process is gone, whether it quit or crashed, so it never
outlives its app holding a connection file and a port.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

PARENT_ENV = "REFCOLOR_PARENT_PID"


def parent_from_env() -> int | None:
    """The pid in ``REFCOLOR_PARENT_PID``, or None when unset or not a positive integer."""
    text = os.environ.get(PARENT_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie counts as gone on Linux)."""
    if sys.platform == "win32":
        import ctypes

        synchronize, wait_timeout = 0x00100000, 0x102
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]  # Windows only
        handle = kernel32.OpenProcess(synchronize, False, pid)
        if not handle:
            return False
        try:
            return bool(kernel32.WaitForSingleObject(handle, 0) == wait_timeout)
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a parent that died but was not reaped yet is a zombie: gone for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def watch_parent(pid: int, on_gone: Callable[[], None], interval_s: float = 0.5) -> threading.Thread:
    """Call ``on_gone`` once, from a daemon thread, when process ``pid`` has ended."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval_s):
            if not is_alive(pid):
                logger.info("the process that started the backend (pid %d) has ended: stopping", pid)
                on_gone()
                return

    thread = threading.Thread(target=watch, name="refcolor-parent-watch", daemon=True)
    thread.start()
    return thread
