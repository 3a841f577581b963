"""Full GUI smoke test: real Krita under Xvfb, the plugin enabled in an isolated profile, a run
through the docker's own Colorize button, and a screenshot saved as an artifact."""

from __future__ import annotations

import pytest
from kritatest import ROOT, run_gui, run_gui_smoke

pytestmark = pytest.mark.timeout(400)


def test_docker_colorizes_through_its_own_button(krita_env, krita_site, backend, tmp_path) -> None:
    pythonpath = [str(ROOT / "protocol"), str(krita_site)]
    run_gui_smoke(krita_env, backend.connection_file, tmp_path / "gui", ROOT / "plugin", pythonpath, "krita-gui.png")


def test_a_reference_painted_after_the_docker_looked_is_looked_at_again(
    krita_env, krita_site, backend, tmp_path
) -> None:
    """make test found it (the smoke test above, one run): Krita showed the reference layer empty
    when the docker first looked; the look was kept until the layers changed, so the job ran with
    the wrong mask default and the status said "empty" after it was done."""
    pythonpath = [str(ROOT / "protocol"), str(krita_site)]
    settings = {"connection_file": str(backend.connection_file), "start_backend": "false"}
    facts = run_gui(krita_env, "late_paint", tmp_path / "gui", pythonpath=pythonpath, settings=settings)
    assert "is empty" in facts["status_empty"], facts["status_empty"]
    assert facts["reference_mask_used"] == "Layer transparency", facts["reference_mask_used"]
    assert facts["status"].startswith("Done: added Colorized 1"), facts["status"]
