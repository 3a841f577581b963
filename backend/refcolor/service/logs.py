"""Logging what comes from the wire: escaped, truncated, and rate-limited when repeated.

A client chooses its name, its message types and its ids; written to the log as they are, a
newline forges a log line and a megabyte floods the file. :func:`wire_text` makes any such
value one short printable line; :class:`Throttle` lets a repeated warning through once per
period, then says how many it held back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

WIRE_TEXT_LIMIT = 80  # characters of a client-chosen value shown in a log line


def wire_text(value: Any, limit: int = WIRE_TEXT_LIMIT) -> str:
    """``value`` as one printable line: control and non-ASCII characters escaped, at most ``limit``
    characters of the original, "…(N more)" when cut."""
    text = value if isinstance(value, str) else str(value)
    shown = text[:limit].encode("ascii", "backslashreplace").decode("ascii")
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in shown)
    return shown if len(text) <= limit else f"{shown}…({len(text) - limit} more)"


class Throttle:
    """Lets a warning of one kind through at most once per ``period`` seconds.

    ``warn(kind, msg, *args)`` logs at once if this kind was quiet for a period; otherwise
    it counts, and the next line that gets through says how many were held back.
    """

    def __init__(self, logger: logging.Logger, period: float = 10.0, clock: Any = time.monotonic) -> None:
        self.logger = logger
        self.period = period
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, kind: str, msg: str, *args: object, level: int = logging.WARNING) -> bool:
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.period:
            self._held[kind] = self._held.get(kind, 0) + 1
            return False
        if len(self._last) > 1024:  # kinds are few; never let them grow without bound
            self._last.clear()
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        if held:
            msg += " (and %d more like it in the last %.0f s)"
            args = (*args, held, now - last if last is not None else self.period)
        self.logger.log(level, msg, *args)
        return True
