"""The add-on's Blender interface (touches bpy): preferences, the "refcolor" sidebar panels of the
Image Editor and the 3D Viewport, the operators, and the timer that drives the connection.

One :class:`session.Session` lives while the add-on is enabled; ``bpy.app.timers`` calls its
``tick`` (no thread touches bpy). The backend this add-on started is stopped when the add-on is
disabled or Blender quits.
"""

# No `from __future__ import annotations` here: Blender reads the properties from the classes'
# annotations, which must stay objects, not strings.
import atexit
import dataclasses
import logging
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from refcolor_plugin.controller import Inputs
from refcolor_plugin.frames import FrameRange
from refcolor_plugin.masks import LABELS, MaskSource
from refcolor_plugin.pixels import PluginError, sentence
from refcolor_plugin.settings import Settings, SettingsStore, load_settings

from .controls import AUTO_PREFIX, controls, params_from_values
from .scene import BlenderDocuments, DrawingArt, ImageArt, ReferencePick, line_art_name
from .session import Session

logger = logging.getLogger(__name__)
ADDON = __package__
SESSION: Session | None = None

SKETCH_MASKS = (MaskSource.AUTO, MaskSource.IMAGE, MaskSource.NONE)
REFERENCE_MASKS = (MaskSource.ALPHA, MaskSource.AUTO, MaskSource.IMAGE, MaskSource.NONE)
MASK_HELP = {
    MaskSource.ALPHA: "The reference's own transparency: opaque = the character",
    MaskSource.AUTO: "The backend finds the character",
    MaskSource.IMAGE: "An image of the same size: white = the character",
    MaskSource.NONE: "Everything is foreground",
}


def _mask_items(sources: tuple[MaskSource, ...]) -> list[tuple[str, str, str]]:
    return [(s.value, "Transparency" if s is MaskSource.ALPHA else LABELS[s], MASK_HELP[s]) for s in sources]


# --- preferences: where the backend is ----------------------------------------------------------


def _reconnect(prefs: Any, context: Any) -> None:
    if SESSION is not None:
        SESSION.reconfigure(current_settings())


class RefcolorPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    connection_file: StringProperty(  # type: ignore[valid-type]
        name="Connection file",
        subtype="FILE_PATH",
        description="The backend's connection file (empty: where `refcolor serve` writes it by default)",
        update=_reconnect,
    )
    address: StringProperty(  # type: ignore[valid-type]
        name="Address", description="e.g. tcp://127.0.0.1:5557; overrides the connection file", update=_reconnect
    )
    key: StringProperty(
        name="Key", description="The backend's key, with Address", subtype="PASSWORD", update=_reconnect
    )  # type: ignore[valid-type]
    start_backend: BoolProperty(  # type: ignore[valid-type]
        name="Start a backend when none answers", default=True, update=_reconnect
    )
    backend_python: StringProperty(  # type: ignore[valid-type]
        name="Backend Python",
        subtype="FILE_PATH",
        description="The Python of a virtual environment with refcolor installed (empty: `refcolor` on PATH)",
        update=_reconnect,
    )
    backend_command: StringProperty(  # type: ignore[valid-type]
        name="Backend command",
        description="A full command line that starts the backend (overrides the Python)",
        update=_reconnect,
    )
    model: StringProperty(name="Model", description="The model to use (empty: the backend's default)")  # type: ignore[valid-type]

    def draw(self, context: Any) -> None:
        layout = self.layout
        for name in (
            "connection_file",
            "address",
            "key",
            "start_backend",
            "backend_python",
            "backend_command",
            "model",
        ):
            layout.prop(self, name)


class PreferencesStore(SettingsStore):
    """The shared settings read from the add-on's preferences (what the panel keeps is per scene)."""

    def __init__(self, prefs: Any) -> None:
        self.prefs = prefs

    def read(self, key: str, default: str) -> str:
        value = getattr(self.prefs, key, None)
        if value is None:
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def write(self, key: str, value: str) -> None:
        raise NotImplementedError("Blender saves the preferences itself")


def current_settings() -> Settings:
    addon = bpy.context.preferences.addons.get(ADDON)
    if addon is None:
        return Settings()
    settings = load_settings(PreferencesStore(addon.preferences))
    if settings.connection_file:
        settings = dataclasses.replace(settings, connection_file=bpy.path.abspath(settings.connection_file))
    return settings


# --- what the panel keeps, per scene ------------------------------------------------------------


def _param_annotations() -> dict[str, Any]:
    props: dict[str, Any] = {}
    for control in controls():
        common = {"name": control.label, "description": sentence(control.help)}
        if control.kind == "enum":
            items = [(c, c.title(), "") for c in control.choices]
            props[control.name] = EnumProperty(items=items, default=control.default, **common)
        elif control.kind == "bool":
            props[control.name] = BoolProperty(default=control.default, **common)
        elif control.kind == "int":
            props[control.name] = IntProperty(
                default=control.default, min=int(control.low or 0), max=int(control.high or 2**31 - 1), **common
            )
        else:
            extra = {"soft_max": control.soft_high} if control.soft_high is not None else {}
            props[control.name] = FloatProperty(
                default=control.default, min=control.low or 0.0, max=control.high or 1e9, **extra, **common
            )
        if control.auto:
            props[AUTO_PREFIX + control.name] = BoolProperty(
                name="Automatic", default=control.auto_default, description=f"{control.label}: the backend's choice"
            )
    return props


class RefcolorSceneSettings(bpy.types.PropertyGroup):
    __annotations__ = {
        "reference_from": EnumProperty(
            name="Reference",
            items=[("IMAGE", "Image", "An image in this file"), ("FILE", "File", "A picture on disk")],
            default="IMAGE",
        ),
        "reference_image": PointerProperty(name="Reference image", type=bpy.types.Image),
        "reference_path": StringProperty(name="Reference file", subtype="FILE_PATH"),
        "sketch_mask": EnumProperty(name="Line-art mask", items=_mask_items(SKETCH_MASKS), default="auto"),
        "sketch_mask_image": PointerProperty(name="Line-art mask image", type=bpy.types.Image),
        "reference_mask": EnumProperty(name="Reference mask", items=_mask_items(REFERENCE_MASKS), default="auto"),
        "reference_mask_image": PointerProperty(name="Reference mask image", type=bpy.types.Image),
        "replace_previous": BoolProperty(
            name="Replace the previous result", description="Write over the last result's images and plane"
        ),
        "show_advanced": BoolProperty(name="More settings"),
        **_param_annotations(),
    }


def scene_settings(context: Any) -> Any:
    return context.scene.refcolor


def inputs_for(context: Any, line_art: ImageArt | DrawingArt) -> Inputs:
    props = scene_settings(context)
    if props.reference_from == "IMAGE":
        reference = ReferencePick(image=props.reference_image.name if props.reference_image else "")
    else:
        reference = ReferencePick(path=props.reference_path)
    reference = ReferencePick(
        reference.image, reference.path, props.reference_mask_image.name if props.reference_mask_image else ""
    )
    return Inputs(
        line_art=line_art,
        reference=reference,
        sketch_mask=MaskSource(props.sketch_mask),
        reference_mask=MaskSource(props.reference_mask),
        replace_previous=props.replace_previous,
    )


def params_for(context: Any) -> Any:
    props = scene_settings(context)
    names = [c.name for c in controls()] + [AUTO_PREFIX + c.name for c in controls() if c.auto]
    return params_from_values({name: getattr(props, name) for name in names})


def active_image(context: Any) -> Any:
    space = getattr(context, "space_data", None)
    return getattr(space, "image", None) if space is not None and space.type == "IMAGE_EDITOR" else None


def active_drawing(context: Any) -> Any:
    obj = context.active_object
    return obj if obj is not None and obj.type == "GPENCIL" else None


# --- operators ----------------------------------------------------------------------------------


def _session() -> Session:
    if SESSION is None:
        raise PluginError("the add-on is not running: enable refcolor in the preferences")
    return SESSION


def _line_art(operator: Any, context: Any, drawing: bool) -> ImageArt | DrawingArt | None:
    """What the operator colorizes: its own argument, else the Image Editor's image or the active
    Grease Pencil object (None, and said, when there is none)."""
    props = scene_settings(context)
    mask = props.sketch_mask_image.name if props.sketch_mask_image else ""
    if drawing:
        name = operator.object or getattr(active_drawing(context), "name", "")
        if name:
            return DrawingArt(name, context.scene.frame_current, mask)
        operator.report({"WARNING"}, "Select a Grease Pencil object to colorize.")
        return None
    name = line_art_name(operator.image or getattr(active_image(context), "name", ""))
    if name:
        return ImageArt(name, mask)
    operator.report({"WARNING"}, "Open the line art in the Image Editor first.")
    return None


def _start(operator: Any, context: Any, drawing: bool, frames: bool = False) -> set[str]:
    """Start a job; FINISHED when it runs, else its problem as a warning (nothing is changed)."""
    line_art = _line_art(operator, context, drawing)
    if line_art is None:
        return {"CANCELLED"}
    try:
        session = _session()
        inputs, params = inputs_for(context, line_art), params_for(context)
        if frames:
            scene = context.scene
            session.colorize_frames(inputs, params, FrameRange(scene.frame_start, scene.frame_end))
        else:
            session.colorize(inputs, params)
    except PluginError as exc:
        operator.report({"WARNING"}, sentence(str(exc)))
        return {"CANCELLED"}
    if session.view.failed:
        operator.report({"WARNING"}, session.view.message)
        return {"CANCELLED"}
    return {"FINISHED"}


DRAWING_HELP = "The Grease Pencil object (empty: the active one)"
WRAP = 28  # characters a line of the sidebar shows at its usual width


class REFCOLOR_OT_colorize_image(bpy.types.Operator):
    """Colorize the image in the Image Editor in the colours of the reference: new images
    “<name> colors”, “<name> foreground” and “<name> background”"""

    bl_idname = "refcolor.colorize_image"
    bl_label = "Colorize"

    image: StringProperty(name="Line art", description="The image to colorize (empty: the Image Editor's)")  # type: ignore[valid-type]

    def execute(self, context: Any) -> set[str]:
        return _start(self, context, drawing=False)


class REFCOLOR_OT_colorize_drawing(bpy.types.Operator):
    """Render the active Grease Pencil drawing through the camera and colorize it: the colours go
    on a plane behind its strokes"""

    bl_idname = "refcolor.colorize_drawing"
    bl_label = "Colorize drawing"

    object: StringProperty(name="Drawing", description=DRAWING_HELP)  # type: ignore[valid-type]

    def execute(self, context: Any) -> set[str]:
        return _start(self, context, drawing=True)


class REFCOLOR_OT_colorize_frames(bpy.types.Operator):
    """Colorize every keyframe of the active Grease Pencil drawing in the scene's frame range, colours
    carried from frame to frame: image sequences on a plane behind its strokes"""

    bl_idname = "refcolor.colorize_frames"
    bl_label = "Colorize frames"

    object: StringProperty(name="Drawing", description=DRAWING_HELP)  # type: ignore[valid-type]

    def execute(self, context: Any) -> set[str]:
        return _start(self, context, drawing=True, frames=True)


class REFCOLOR_OT_cancel(bpy.types.Operator):
    """Cancel the colorization (frames: the first press stops after the frame in flight)"""

    bl_idname = "refcolor.cancel"
    bl_label = "Cancel"

    def execute(self, context: Any) -> set[str]:
        if SESSION is not None:
            SESSION.cancel()
        return {"FINISHED"}


class REFCOLOR_OT_reconnect(bpy.types.Operator):
    """Look for the backend again (and start one if the preferences say so)"""

    bl_idname = "refcolor.reconnect"
    bl_label = "Reconnect"

    def execute(self, context: Any) -> set[str]:
        if SESSION is not None:
            SESSION.reconfigure(current_settings())
        return {"FINISHED"}


# --- panels -------------------------------------------------------------------------------------


def draw_panel(layout: Any, context: Any, drawing: bool) -> None:
    session, props = SESSION, scene_settings(context)
    if session is None:
        layout.label(text="refcolor is not running", icon="ERROR")
        return
    view = session.view
    row = layout.row()
    lines = row.column()
    for index, line in enumerate(_wrap(view.connection, WRAP)):
        lines.label(text=line, icon=("CHECKMARK" if view.connected else "ERROR") if index == 0 else "BLANK1")
    row.operator(REFCOLOR_OT_reconnect.bl_idname, text="", icon="FILE_REFRESH")

    box = layout.box()
    if drawing:
        obj = active_drawing(context)
        box.label(
            text=f"Line art: {obj.name if obj else 'select a Grease Pencil object'}", icon="OUTLINER_OB_GREASEPENCIL"
        )
    else:
        image = active_image(context)
        box.label(text=f"Line art: {line_art_name(image.name) if image else 'open an image'}", icon="IMAGE_DATA")
    box.prop(props, "sketch_mask", text="Mask")
    if props.sketch_mask == MaskSource.IMAGE.value:
        box.template_ID(props, "sketch_mask_image", open="image.open")
    box = layout.box()
    box.prop(props, "reference_from", expand=True)
    if props.reference_from == "IMAGE":
        box.template_ID(props, "reference_image", open="image.open")
    else:
        box.prop(props, "reference_path")
    box.prop(props, "reference_mask", text="Mask")
    if props.reference_mask == MaskSource.IMAGE.value:
        box.template_ID(props, "reference_mask_image", open="image.open")

    column = layout.column()
    for control in controls()[:4]:  # mode, seed, steps, variations
        _draw_control(column, props, control)
    column.prop(props, "show_advanced", icon="TRIA_DOWN" if props.show_advanced else "TRIA_RIGHT", emboss=False)
    if props.show_advanced:
        for control in controls()[4:]:
            _draw_control(column, props, control)
        column.prop(props, "replace_previous")

    if view.running:
        layout.label(text=view.stage or "Working…", icon="TIME")
        layout.label(text=f"{view.progress:.0%}")
        layout.operator(REFCOLOR_OT_cancel.bl_idname, text="Stopping…" if view.cancelling else "Cancel", icon="CANCEL")
    else:
        column = layout.column()
        column.enabled = view.connected
        if drawing:
            column.operator(REFCOLOR_OT_colorize_drawing.bl_idname, icon="BRUSH_DATA")
            column.operator(REFCOLOR_OT_colorize_frames.bl_idname, icon="RENDER_ANIMATION")
        else:
            column.operator(REFCOLOR_OT_colorize_image.bl_idname, icon="BRUSH_DATA")
    if view.message:
        for line in _wrap(view.message, WRAP):
            layout.label(text=line, icon="ERROR" if view.failed else "NONE")


def _draw_control(layout: Any, props: Any, control: Any) -> None:
    if control.auto:
        row = layout.row(align=True)
        value = row.row(align=True)
        value.enabled = not getattr(props, AUTO_PREFIX + control.name)
        value.prop(props, control.name)
        row.prop(props, AUTO_PREFIX + control.name, text="", icon="AUTO")
    else:
        layout.prop(props, control.name)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


class REFCOLOR_PT_image(bpy.types.Panel):
    bl_label = "refcolor"
    bl_space_type = "IMAGE_EDITOR"
    bl_region_type = "UI"
    bl_category = "refcolor"

    def draw(self, context: Any) -> None:
        draw_panel(self.layout, context, drawing=False)


class REFCOLOR_PT_view3d(bpy.types.Panel):
    bl_label = "refcolor"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "refcolor"

    def draw(self, context: Any) -> None:
        draw_panel(self.layout, context, drawing=True)


# --- the loop -----------------------------------------------------------------------------------


def redraw() -> None:
    """Show the session's news: the sidebars and the status bar."""
    window_manager = getattr(bpy.context, "window_manager", None)
    if window_manager is None:
        return
    view = SESSION.view if SESSION is not None else None
    for window in window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("IMAGE_EDITOR", "VIEW_3D"):
                area.tag_redraw()
        if view is not None:
            text = f"refcolor: {view.stage} {view.progress:.0%}" if view.running else None
            window.workspace.status_text_set(text)


def tick() -> float:
    """The timer: the session's work, never an exception into Blender's loop."""
    if SESSION is None:
        return 1.0
    try:
        return SESSION.tick()
    except Exception:
        logger.exception("refcolor's timer failed")
        return 1.0


def shutdown() -> None:
    """Stop the backend this add-on started (Blender quits or the add-on is disabled)."""
    global SESSION
    session, SESSION = SESSION, None
    if session is not None:
        session.close()


CLASSES = (
    RefcolorPreferences,
    RefcolorSceneSettings,
    REFCOLOR_OT_colorize_image,
    REFCOLOR_OT_colorize_drawing,
    REFCOLOR_OT_colorize_frames,
    REFCOLOR_OT_cancel,
    REFCOLOR_OT_reconnect,
    REFCOLOR_PT_image,
    REFCOLOR_PT_view3d,
)


def register() -> None:
    global SESSION
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.refcolor = PointerProperty(type=RefcolorSceneSettings)
    SESSION = Session(current_settings(), BlenderDocuments(), redraw=redraw)
    SESSION.start()
    bpy.app.timers.register(tick, first_interval=0.1, persistent=True)
    atexit.register(shutdown)


def unregister() -> None:
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    atexit.unregister(shutdown)
    shutdown()
    del bpy.types.Scene.refcolor
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
