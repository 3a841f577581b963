"""Where results go in the layer stack and what they are called (pure rules)."""

from __future__ import annotations

import re
from collections.abc import Iterable

GROUP_PREFIX = "Colorized"
# "Colorized 3", or with a note on what it holds: "Colorized 3 (4 of 6 frames)"
_GROUP_NAME = re.compile(rf"^{GROUP_PREFIX} (\d+)(?: \(.*\))?$")


def group_number(name: str) -> int | None:
    match = _GROUP_NAME.match(name)
    return int(match.group(1)) if match else None


def next_group_names(existing: Iterable[str], count: int) -> list[str]:
    """Names for ``count`` new result groups: "Colorized <n>", numbering on from the highest."""
    numbers = [n for n in (group_number(name) for name in existing) if n is not None]
    start = max(numbers, default=0) + 1
    return [f"{GROUP_PREFIX} {start + i}" for i in range(count)]


def with_note(name: str, note: str) -> str:
    """A result group's name with a note on what it holds ("" : none)."""
    return f"{name} ({note})" if note else name


def latest_group(existing: Iterable[str]) -> str | None:
    """The most recent result group's name (for the "replace previous" setting)."""
    numbered = [(n, name) for name in existing if (n := group_number(name)) is not None]
    return max(numbered)[1] if numbered else None
