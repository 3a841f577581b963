"""``refcolor serve`` with the test models of broken_models.py registered: run as a script."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from refcolor import models
from refcolor.cli import main

if __name__ == "__main__":
    for name in ("failing", "gated", "stuck"):
        models.register(name, f"broken_models:load_{name}")
    sys.exit(main(sys.argv[1:]))
