"""Completeness checks of an official checkpoint, done before anything is converted.

The authors' loader is non-strict (``load_state_dict(strict=False)`` with missing LoRA
keys silenced), so a truncated or mismatched file would load "fine" with random
adapters. Here every expected key must be present with its shape, nothing else may be
there, and only the DDPM schedule buffers may be absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SHOWN = 40  # keys listed per category in the message; the counts are always complete


def _listing(title: str, lines: list[str]) -> list[str]:
    if not lines:
        return []
    shown = [f"  {title} ({len(lines)}):"] + [f"    {line}" for line in lines[:SHOWN]]
    if len(lines) > SHOWN:
        shown.append(f"    ... and {len(lines) - SHOWN} more")
    return shown


@dataclass(eq=False)  # exceptions stay hashable
class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes are not those of the expected layout."""

    source: str
    layout: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong_shape: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{self.source} does not match the {self.layout} layout:"]
        lines += _listing("missing", self.missing)
        lines += _listing("unexpected", self.unexpected)
        lines += _listing(
            "wrong shape",
            [f"{k}: expected {list(e)}, got {list(g)}" for k, (e, g) in sorted(self.wrong_shape.items())],
        )
        lines.append(
            "Every key of the official checkpoint must be present with its shape (only the DDPM schedule "
            "buffers may be absent); check that the file is complete and is the v1.5 'switch' model, "
            "or pass --config for the variant it is."
        )
        return "\n".join(lines)


def check_keys(
    found: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
    optional: frozenset[str] | set[str],
    source: str,
    layout: str,
) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``found`` holds exactly ``expected`` (less optional keys).

    Args:
        found: key -> shape of the checkpoint.
        expected: key -> shape it must have.
        optional: keys of ``expected`` that may be absent.
        source, layout: named in the message (the file; the layout's name).
    """
    missing = sorted(k for k in expected if k not in found and k not in optional)
    unexpected = sorted(k for k in found if k not in expected)
    wrong = {
        k: (tuple(expected[k]), tuple(shape))
        for k, shape in found.items()
        if k in expected and tuple(shape) != tuple(expected[k])
    }
    if missing or unexpected or wrong:
        raise CheckpointMismatchError(source, layout, missing, unexpected, wrong)
