"""refcolor for Krita: the "Reference Colorize" docker.

Krita imports this package at start-up (when the plugin is enabled) and it registers the
docker. Bundled dependencies are put on the path first.
"""

from __future__ import annotations

from . import vendor

vendor.activate()

from .docker import register  # noqa: E402  (needs the bundled packages on the path)

register()
