"""Blender with its UI (under Xvfb): the README's screenshot. Installs the add-on zip, colorizes
docs/examples/sketch.png in the colours of docs/examples/reference.png with the Image Editor's
sidebar open on the refcolor tab (the add-on then shows the result there), and writes ``ready`` into the spec's folder;
the caller takes the screenshot (``import -window root``) and ends Blender.

Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" blender --factory-startup --python
tests/blender/screenshot_driver.py -- SPEC.json`` (spec: zip, connection_file, examples, out).
Unlike the headless tests, here Blender's own timer drives the add-on.
"""

import json
import sys
import traceback
from pathlib import Path

import bpy

SPEC = json.loads(Path(sys.argv[sys.argv.index("--") + 1]).read_text())
OUT = Path(SPEC["out"])
ADDON = "refcolor_blender"
STATE = {"phase": "connect"}


def image_area() -> tuple:
    """The Image Editor made at start-up (an area's type changed from a timer crashes Blender 3.4)."""
    screen = bpy.context.window_manager.windows[0].screen
    area = next(a for a in screen.areas if a.type == "IMAGE_EDITOR")
    return area, area.spaces.active


def step() -> float | None:
    print("refcolor screenshot:", STATE["phase"], flush=True)
    try:
        session = sys.modules[f"{ADDON}.ui"].SESSION
        if STATE["phase"] == "connect":
            if not session.view.connected:
                return 0.5
            examples = Path(SPEC["examples"])
            sketch = bpy.data.images.load(str(examples / "sketch.png"))
            reference = bpy.data.images.load(str(examples / "reference.png"))
            props = bpy.context.scene.refcolor
            props.reference_image = reference
            props.reference_mask = "alpha"
            props.sketch_mask = "auto"
            props.auto_seed = False
            props.seed = 1
            area, space = image_area()
            space.image = sketch
            if SPEC.get("colorize", True):
                with bpy.context.temp_override(window=bpy.context.window_manager.windows[0], area=area):
                    bpy.ops.refcolor.colorize_image()
            STATE["phase"] = "running"
            return 0.5
        if STATE["phase"] == "running":
            if session.busy:
                return 0.5
            (OUT / "message.txt").write_text(session.view.message)
            STATE["phase"] = "shown"
            return 2.0
        (OUT / "ready").write_text("ready")
        return None
    except Exception:
        (OUT / "error.txt").write_text(traceback.format_exc())
        (OUT / "ready").write_text("error")
        return None


bpy.ops.preferences.addon_install(filepath=SPEC["zip"])
bpy.ops.preferences.addon_enable(module=ADDON)
prefs = bpy.context.preferences.addons[ADDON].preferences
prefs.start_backend = False
prefs.connection_file = SPEC["connection_file"]
editor = max((a for a in bpy.context.screen.areas if a.type == "VIEW_3D"), key=lambda a: a.width * a.height)
editor.type = "IMAGE_EDITOR"
editor.spaces.active.show_region_ui = SPEC.get("sidebar", True)
sidebar = next(r for r in editor.regions if r.type == "UI")
try:
    sidebar.active_panel_category = "refcolor"
except (AttributeError, TypeError) as exc:  # read-only before Blender 4
    print("refcolor screenshot: cannot pick the sidebar tab:", exc, flush=True)
bpy.app.timers.register(step, first_interval=1.0)
