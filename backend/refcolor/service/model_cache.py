"""The colorizers a server holds: the default model, and the last other one asked for."""

from __future__ import annotations

import threading
from typing import Any

from refcolor.models import available_models, load_colorizer
from refcolor.models.job import Colorizer


class ModelCache:
    """Loads colorizers by name on ``device``; keeps the default and the last other one asked for
    (any more would only hold memory), safely from the server and worker threads."""

    def __init__(
        self, default: str, device: str, extra: tuple[str, ...] = (), options: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.default_name, self.device, self.extra = default, device, extra
        self.options = options or {}  # model name -> its factory's keyword options
        self._models: dict[str, Colorizer] = {}
        self._lock = threading.Lock()

    def load(self, name: str) -> Colorizer:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                model = load_colorizer(name, self.device, **self.options.get(name, {}))
                self._models = {k: v for k, v in self._models.items() if k == self.default_name}
                self._models[name] = model
            return model

    def names(self) -> list[str]:
        """Every model a request may name."""
        return sorted(set(available_models()) | set(self.extra) | {self.default_name})
