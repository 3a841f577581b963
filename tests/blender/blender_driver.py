"""Runs inside a real Blender (``blender -b --factory-startup --python blender_driver.py -- SPEC``):
installs the add-on zip into the (empty) user profile, enables it, plays one scenario through the
add-on's own operators, and writes what it saw to the spec's ``facts`` file as JSON.

The scenarios drive the add-on's timer function by hand (``ui.tick``, the function Blender's timer
calls): a background Blender runs no event loop, so registered timers never fire.
"""

import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import bpy

SPEC = json.loads(Path(sys.argv[sys.argv.index("--") + 1]).read_text())
FACTS: dict[str, Any] = {}
ADDON = "refcolor_blender"


def ui() -> Any:
    return sys.modules[f"{ADDON}.ui"]


def pump(until: Any, timeout: float = 120.0) -> bool:
    """Call the add-on's timer until ``until()`` holds (or the time is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ui().tick()
        if until():
            return True
        time.sleep(0.02)
    return False


def install() -> None:
    bpy.ops.preferences.addon_install(filepath=SPEC["zip"])
    bpy.ops.preferences.addon_enable(module=ADDON)
    prefs = bpy.context.preferences.addons[ADDON].preferences
    FACTS["installed_at"] = str(Path(sys.modules[ADDON].__file__).parent)
    FACTS["timer_registered"] = bpy.app.timers.is_registered(ui().tick)
    FACTS["zmq"] = sys.modules["zmq"].__file__  # from the zip's vendor folder, not the system
    FACTS["protocol"] = sys.modules["refcolor_protocol"].__file__
    prefs.start_backend = False
    prefs.connection_file = SPEC["connection_file"]  # reconnects (the preference's update)


def session() -> Any:
    return ui().SESSION


def image(name: str, width: int, height: int, pixel: Any) -> Any:
    """A new image whose pixel (x, y from the top) is ``pixel(x, y)`` -> RGBA floats."""
    made = bpy.data.images.new(name, width, height, alpha=True)
    values = []
    for row in range(height - 1, -1, -1):  # Blender's rows go bottom to top
        for x in range(width):
            values.extend(pixel(x, row))
    made.pixels.foreach_set(values)
    return made


def inside(x: int, y: int, width: int, height: int) -> bool:
    """The character: an ellipse in the middle."""
    return ((x - width / 2) / (width * 0.3)) ** 2 + ((y - height / 2) / (height * 0.35)) ** 2 <= 1


def line_art_scene(width: int = 96, height: int = 64) -> None:
    """The line art (a ring on white paper), its mask, and a reference: a red character cut out on
    transparency."""

    def lines(x: int, y: int) -> tuple[float, ...]:
        r = ((x - width / 2) / (width * 0.3)) ** 2 + ((y - height / 2) / (height * 0.35)) ** 2
        return (0.0, 0.0, 0.0, 1.0) if abs(r - 1) < 0.15 else (1.0, 1.0, 1.0, 1.0)

    image("sketch", width, height, lines)
    image(
        "sketch mask", width, height, lambda x, y: (1.0,) * 4 if inside(x, y, width, height) else (0.0, 0.0, 0.0, 1.0)
    )
    image("ref", 64, 64, lambda x, y: (0.9, 0.1, 0.1, 1.0) if inside(x, y, 64, 64) else (0.0, 0.0, 0.0, 0.0))
    props = bpy.context.scene.refcolor
    props.reference_from = "IMAGE"
    props.reference_image = bpy.data.images["ref"]
    props.reference_mask = "alpha"
    props.sketch_mask = "image"
    props.sketch_mask_image = bpy.data.images["sketch mask"]
    props.steps = SPEC.get("steps", 2)
    props.auto_seed = False
    props.seed = 7


def alpha_of(name: str) -> list[int]:
    made = bpy.data.images[name]
    values = [0.0] * (made.size[0] * made.size[1] * 4)
    made.pixels.foreach_get(values)
    return [round(v * 255) for v in values[3::4]]


def describe(name: str) -> dict[str, Any]:
    made = bpy.data.images.get(name)
    if made is None:
        return {}
    alpha = alpha_of(name)
    return {"size": list(made.size), "alpha": alpha, "packed": made.packed_file is not None}


def connected() -> bool:
    return session().view.connected


def idle() -> bool:
    return not session().busy


def scenario_image() -> None:
    install()
    FACTS["connected"] = pump(connected, 60)
    line_art_scene()
    before = sorted(i.name for i in bpy.data.images)
    FACTS["operator"] = sorted(bpy.ops.refcolor.colorize_image(image="sketch"))
    FACTS["finished"] = pump(idle)
    FACTS["message"] = session().view.message
    FACTS["failed"] = session().view.failed
    FACTS["new_images"] = sorted(set(i.name for i in bpy.data.images) - set(before))
    FACTS["mask"] = [255 if inside(x, y, 96, 64) else 0 for y in range(63, -1, -1) for x in range(96)]
    for what in ("colors", "foreground", "background"):
        FACTS[what] = describe(f"sketch {what}")
    # Again from the result (what the Image Editor shows after a job), with both masks automatic:
    # the line art is colorized again, and the masks found become images to correct.
    props = bpy.context.scene.refcolor
    props.sketch_mask, props.reference_mask = "auto", "auto"
    before = sorted(i.name for i in bpy.data.images)
    FACTS["again_operator"] = sorted(bpy.ops.refcolor.colorize_image(image="sketch colors"))
    FACTS["again_finished"] = pump(idle)
    FACTS["again_message"] = session().view.message
    FACTS["again_new_images"] = sorted(set(i.name for i in bpy.data.images) - set(before))
    FACTS["again_line_art"] = bpy.data.images["sketch colors.001"].get("refcolor_line_art")
    FACTS["sketch_auto_mask"] = describe("sketch auto mask")


def scenario_no_backend() -> None:
    install()
    pump(lambda: "No backend" in session().view.connection, 10)
    FACTS["connection"] = session().view.connection
    line_art_scene()
    before = sorted(i.name for i in bpy.data.images)
    FACTS["operator"] = sorted(bpy.ops.refcolor.colorize_image(image="sketch"))
    FACTS["message"] = session().view.message
    FACTS["new_images"] = sorted(set(i.name for i in bpy.data.images) - set(before))


def scenario_cancel() -> None:
    install()
    FACTS["connected"] = pump(connected, 60)
    line_art_scene()
    bpy.context.scene.refcolor.steps = 200
    before = sorted(i.name for i in bpy.data.images)
    FACTS["operator"] = sorted(bpy.ops.refcolor.colorize_image(image="sketch"))
    FACTS["started"] = pump(lambda: session().view.progress > 0 or not session().busy, 60) and session().busy
    FACTS["started_message"] = session().view.message
    bpy.ops.refcolor.cancel()
    FACTS["cancelling"] = session().view.cancelling
    FACTS["finished"] = pump(idle)
    FACTS["message"] = session().view.message
    FACTS["new_images"] = sorted(set(i.name for i in bpy.data.images) - set(before))


def drawing_scene() -> Any:
    """A Grease Pencil ring drawn in code at frames 1, 2 and 3 (growing), a camera looking at it
    from the front, 128x96 pixels."""
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 128, 96, 100
    scene.frame_start, scene.frame_end = 1, 3
    camera = scene.camera
    camera.location = (0.0, -10.0, 0.0)
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    data = bpy.data.grease_pencils.new("lines")
    layer = data.layers.new("ink")
    material = bpy.data.materials.new("ink")
    bpy.data.materials.create_gpencil_data(material)
    material.grease_pencil.color = (0.0, 0.0, 0.0, 1.0)
    data.materials.append(material)
    drawing = bpy.data.objects.new("drawing", data)
    scene.collection.objects.link(drawing)
    for frame_number in (1, 2, 3):
        frame = layer.frames.new(frame_number)
        stroke = frame.strokes.new()
        stroke.line_width = 80
        stroke.display_mode = "3DSPACE"
        stroke.use_cyclic = True
        stroke.points.add(24)
        for i, point in enumerate(stroke.points):
            angle = i / 24 * 2 * math.pi
            point.co = (math.cos(angle) * (1.2 + 0.2 * frame_number), 0.0, math.sin(angle) * 1.5)
            point.pressure = point.strength = 1.0
    bpy.context.view_layer.objects.active = drawing
    bpy.context.view_layer.update()
    props = scene.refcolor
    props.reference_from = "IMAGE"
    props.reference_image = bpy.data.images["ref"]
    props.reference_mask = "alpha"
    props.sketch_mask = "auto"
    return drawing


def plane_facts(drawing: Any) -> dict[str, Any]:
    plane = bpy.data.objects.get("drawing colors")
    if plane is None:
        return {}
    bpy.context.view_layer.update()  # a plane made just now has no world matrix yet
    camera = bpy.context.scene.camera
    to_camera = camera.matrix_world.inverted()
    plane_depth = min(-(to_camera @ (plane.matrix_world @ v.co)).z for v in plane.data.vertices)
    from mathutils import Vector

    drawing_depth = max(-(to_camera @ (drawing.matrix_world @ Vector(c))).z for c in drawing.bound_box)
    textures = [n for n in plane.active_material.node_tree.nodes if n.type == "TEX_IMAGE"]
    return {
        "parent": plane.parent.name if plane.parent else "",
        "plane_depth": plane_depth,
        "drawing_depth": drawing_depth,
        "images": {n.label: n.image.name for n in textures},
        "sources": {n.label: n.image.source for n in textures},
        "files": {n.label: bpy.path.abspath(n.image.filepath) for n in textures},
        "durations": {n.label: n.image_user.frame_duration for n in textures},
    }


def scenario_drawing() -> None:
    install()
    FACTS["connected"] = pump(connected, 60)
    line_art_scene()
    drawing = drawing_scene()
    bpy.context.scene.frame_set(2)
    FACTS["operator"] = sorted(bpy.ops.refcolor.colorize_drawing(object="drawing"))
    FACTS["finished"] = pump(idle)
    FACTS["message"] = session().view.message
    FACTS["failed"] = session().view.failed
    FACTS["foreground"] = describe("drawing foreground")
    FACTS["still_plane"] = plane_facts(drawing)
    FACTS["scenes"] = [s.name for s in bpy.data.scenes]
    FACTS["operator_frames"] = sorted(bpy.ops.refcolor.colorize_frames(object="drawing"))
    FACTS["frames_finished"] = pump(idle, 240)
    FACTS["frames_message"] = session().view.message
    FACTS["frames_failed"] = session().view.failed
    FACTS["plane"] = plane_facts(drawing)
    files = FACTS["plane"].get("files", {})
    folder = Path(files["foreground"]).parent if files.get("foreground") else None
    FACTS["sequence_files"] = sorted(p.name for p in folder.iterdir()) if folder else []
    FACTS["stroke_objects"] = [o.name for o in bpy.context.scene.objects]


def main() -> None:
    try:
        globals()[f"scenario_{SPEC['scenario']}"]()
    except Exception:
        FACTS["exception"] = traceback.format_exc()
    finally:
        ui_module = sys.modules.get(f"{ADDON}.ui")
        if ui_module is not None:
            ui_module.shutdown()
        Path(SPEC["facts"]).write_text(json.dumps(FACTS))


main()
