"""Ending the backend with the program that started it.

A paint app that starts ``refcolor serve`` passes its process id (``--parent-pid``, or the
``REFCOLOR_PARENT_PID`` environment variable, which also reaches a custom backend command). The
backend then stops by itself when that process is gone, whether it quit or crashed, so it never
outlives its app holding a connection file and a port.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from refcolor_protocol.connection import is_alive

__all__ = ["PARENT_ENV", "is_alive", "parent_from_env", "watch_parent"]

logger = logging.getLogger(__name__)

PARENT_ENV = "REFCOLOR_PARENT_PID"


def parent_from_env() -> int | None:
    """The pid in ``REFCOLOR_PARENT_PID``, or None when unset or not a positive integer."""
    text = os.environ.get(PARENT_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


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
