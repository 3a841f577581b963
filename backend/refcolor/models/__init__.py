"""Model registry: names (and paths) to loaded :class:`refcolor.models.job.Colorizer` objects.

The server, the CLI and the evaluation harness load models only through
:func:`load_colorizer`, so adding a model means registering a factory here and
nothing else changes.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from refcolor.models.job import Colorizer

logger = logging.getLogger(__name__)

Factory = Callable[[str], Colorizer]
"""Builds a colorizer on a device ("cpu", "cuda", ...)."""

# name -> "module:function"; imported lazily so listing models never imports torch.
_REGISTRY: dict[str, str] = {
    "classical": "refcolor.models.classical:load",
    "classical-mean": "refcolor.models.classical:load_mean",
    "correspondence": "refcolor.models.correspondence:load",  # split feature matching, no training
    "nano": "refcolor.models.diffusion:load_nano",  # the shipped default model
    "tiny": "refcolor.models.diffusion:load_tiny",  # full architecture, random weights (tests)
    "folder": "refcolor.models.diffusion:load_folder",  # a saved pipeline folder (see load_colorizer)
    "v1.5": "refcolor.models.v15:load",  # the official weights, converted (refcolor models download v1.5)
}


class UnknownModelError(ValueError):
    """The requested model name is neither registered nor a model folder."""


def register(name: str, target: str) -> None:
    """Register ``name`` as ``"package.module:factory"`` (factory takes the device)."""
    _REGISTRY[name] = target


def available_models() -> list[str]:
    return sorted(name for name in _REGISTRY if name != "folder")


def load_colorizer(name: str, device: str = "cpu", **options: Any) -> Colorizer:
    """Load the model called ``name`` (a registered name or a model folder) on ``device``.

    ``options`` go to the model's factory (e.g. v1.5's ``weights`` folder); None and False ones are
    dropped, as options not given.

    Raises:
        UnknownModelError: ``name`` is not registered and is not a folder.
        ValueError: the factory takes no such option.
    """
    target = _REGISTRY.get(name)
    if target is None:
        if Path(name).is_dir() and "folder" in _REGISTRY:
            module_name, func_name = _REGISTRY["folder"].split(":")
            return getattr(importlib.import_module(module_name), func_name)(name, device)
        raise UnknownModelError(
            f"unknown model {name!r}: expected one of {', '.join(available_models())} or a model folder"
        )
    module_name, func_name = target.split(":")
    logger.info("loading model %s on %s", name, device)
    factory = getattr(importlib.import_module(module_name), func_name)
    options = {key: value for key, value in options.items() if value is not None and value is not False}
    unknown = sorted(set(options) - set(inspect.signature(factory).parameters))
    if unknown:
        raise ValueError(f"model {name!r} takes no option {', '.join(unknown)}")
    return factory(device, **options)
