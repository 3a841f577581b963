"""Full GUI smoke test: real Krita under Xvfb, the plugin enabled in an isolated profile, a run
through the docker's own Colorize button, and a screenshot saved as an artifact."""

from __future__ import annotations

import pytest
from kritatest import ROOT, run_gui_smoke

pytestmark = pytest.mark.timeout(400)


def test_docker_colorizes_through_its_own_button(krita_env, krita_site, backend, tmp_path) -> None:
    pythonpath = [str(ROOT / "protocol"), str(krita_site)]
    run_gui_smoke(krita_env, backend.connection_file, tmp_path / "gui", ROOT / "plugin", pythonpath, "krita-gui.png")
