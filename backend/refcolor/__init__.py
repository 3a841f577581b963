"""refcolor: reference-based sketch colorization backend (split cross-attention diffusion)."""

from __future__ import annotations

__version__ = "0.1.0"
