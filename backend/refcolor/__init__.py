"""refcolor: reference-based sketch colorization backend (split cross-attention diffusion).

Layers, each importing only those before it (``tests/unit/test_layers.py`` checks):
``refcolor_protocol`` -> ``imaging`` -> ``diffusion`` -> ``convert`` -> ``models`` -> ``service``
-> ``data`` / ``eval`` / ``train`` -> ``cli``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

__version__ = "0.1.0"

# Model folders saved before the layout of issue 15 name their components' modules in
# model_index.json (diffusers imports them by name); they load from where those modules live now.
LEGACY_MODULES = {
    "refcolor.model.background": "refcolor.diffusion.background",
    "refcolor.model.patch_autoencoder": "refcolor.diffusion.patch_autoencoder",
    "refcolor.model.sketch_encoder": "refcolor.diffusion.sketch_encoder",
    "refcolor.model.unet": "refcolor.diffusion.unet",
}


class _LegacyModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a legacy module name as the module that replaced it (the same module object)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name == "refcolor.model" or name in LEGACY_MODULES:
            return importlib.machinery.ModuleSpec(name, self, is_package=name == "refcolor.model")
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if spec.name == "refcolor.model":
            return ModuleType(spec.name, "legacy package name; see refcolor.LEGACY_MODULES")
        return importlib.import_module(LEGACY_MODULES[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        return None


sys.meta_path.append(_LegacyModules())
