"""Blender's side of a job (touches bpy): read images and Grease Pencil drawings, place results.

:class:`BlenderDocuments` is the ``DocumentAccess`` and ``ShotAccess`` the shared controllers call.
What the artist picked arrives as :class:`ImageArt` / :class:`DrawingArt` and :class:`ReferencePick`
inside the shared ``Inputs``. A drawing is rendered alone, through the scene's camera, at the
scene's resolution, on white, in a scratch scene made for the render and removed after it (the
artist's scene is not touched). Results:

- an image: new images ``<name> colors`` (the finished picture), ``<name> foreground`` and
  ``<name> background`` (the flat colours under the lines, split by the mask), packed into the
  .blend;
- a drawing: the same images, and a plane ``<name> colors`` parented to the camera just behind the
  drawing, filling the camera's view, whose material lays the foreground over the background: the
  strokes stay in front;
- frames: PNG sequences of both layers (a file per frame of the range, a held drawing's repeated),
  beside the .blend (``//refcolor/``) or in the temporary folder for an unsaved file, on the plane.
"""

from __future__ import annotations

import array
import logging
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
from mathutils import Matrix, Vector

from refcolor_plugin.controller import ComputedMasks, Inputs, MadeSelections, Placement
from refcolor_plugin.frames import FrameInput, FrameRange, ShotOutcome, ShotSnapshot, shot_times
from refcolor_plugin.jobs import Snapshot, VariationLayers
from refcolor_plugin.masks import MaskSource
from refcolor_plugin.pixels import Pixels, PluginError, alpha_channel
from refcolor_protocol import Layout, MaskName

from .pixels_io import from_blender, to_blender

logger = logging.getLogger(__name__)

RENDER_SCENE = "refcolor render"
AUTO_MASK = "auto mask"  # a computed mask's image: "<image> auto mask"
LINE_ART_KEY = "refcolor_line_art"  # a result image's custom property: the line art it was made from
PLANE_MARGIN = 1.02  # the plane sits this much farther than the drawing's farthest point


@dataclass(frozen=True)
class ImageArt:
    """Line art that is an image datablock; ``mask``: the mask image's name (MaskSource.IMAGE)."""

    image: str
    mask: str = ""


@dataclass(frozen=True)
class DrawingArt:
    """Line art that is a Grease Pencil object, rendered at ``frame`` (frames: at each keyframe)."""

    obj: str
    frame: int
    mask: str = ""


@dataclass(frozen=True)
class ReferencePick:
    """An image datablock, or a file; ``mask``: the mask image's name (MaskSource.IMAGE)."""

    image: str = ""
    path: str = ""
    mask: str = ""


@dataclass
class Target:
    """Where a job's results go."""

    name: str  # the results' base name: the image's or the drawing's
    size: tuple[int, int]
    drawing: str = ""  # the Grease Pencil object ("" for an image)
    camera: str = ""
    renders: dict[int, bytes] = field(default_factory=dict)  # a shot's renders, zlib'd RGBA8, by frame
    mask: Pixels | None = None  # a shot's line-art mask (the same every frame)
    frames: FrameRange | None = None


# --- images ---------------------------------------------------------------------------------------


def image_named(name: str, what: str) -> Any:
    image = bpy.data.images.get(name)
    if image is None:
        raise PluginError(f"there is no image “{name}” for the {what}: pick another")
    return image


def read_image(image: Any, what: str) -> Pixels:
    """An image datablock's pixels as RGBA8, top row first.

    Raises:
        PluginError: it has no pixels (a missing file, an empty render result).
    """
    width, height = image.size
    if width == 0 or height == 0:
        where = f" (its file {image.filepath!r} cannot be read)" if image.filepath else ""
        raise PluginError(f"the {what} “{image.name}” has no pixels{where}: pick another image")
    values = array.array("f", bytes(4 * width * height * image.channels))
    image.pixels.foreach_get(values)
    return from_blender(values, width, height, image.channels)


def read_mask(name: str, size: tuple[int, int], what: str) -> Pixels:
    """A mask painted as an image: white (and opaque) = foreground; L8 at ``size``.

    Raises:
        PluginError: the image is missing or not the size of what it masks.
    """
    pixels = read_image(image_named(name, f"{what} mask"), f"{what} mask")
    if pixels.size != size:
        raise PluginError(
            f"the mask image “{name}” is {pixels.width}x{pixels.height} but the {what} is {size[0]}x{size[1]}: "
            "scale it to that size (Image ▸ Resize) or pick another mask"
        )
    red, alpha = pixels.data[0::4], pixels.data[3::4]
    if alpha.count(255) != len(alpha):  # transparent parts count as background
        red = bytes(r * a // 255 for r, a in zip(red, alpha, strict=True))
    return Pixels(red, size[0], size[1], Layout.L8)


def write_image(name: str, pixels: Pixels, replace: bool) -> Any:
    """A new image (``replace``: the one of that name overwritten) holding ``pixels``, packed into the
    .blend and kept there even while nothing shows it."""
    image = bpy.data.images.get(name) if replace else None
    if image is not None and tuple(image.size) != pixels.size:
        image.scale(*pixels.size)
    if image is None:
        image = bpy.data.images.new(name, pixels.width, pixels.height, alpha=True)
    image.pixels.foreach_set(to_blender(pixels))
    image.pack()
    image.use_fake_user = True
    return image


def line_art_name(name: str) -> str:
    """The line art an image stands for: a result's own line art, else the image itself."""
    image = bpy.data.images.get(name)
    source = image.get(LINE_ART_KEY) if image is not None else None
    return source if isinstance(source, str) and source in bpy.data.images else name


def show_instead(line_art: str, result: Any) -> None:
    """Image Editors showing the line art (or an earlier result of it) show ``result`` now."""
    window_manager = getattr(bpy.context, "window_manager", None)
    for window in window_manager.windows if window_manager is not None else ():
        for area in window.screen.areas:
            if area.type != "IMAGE_EDITOR":
                continue
            shown = area.spaces.active.image
            if shown is not None and line_art_name(shown.name) == line_art:
                area.spaces.active.image = result


# --- Grease Pencil ------------------------------------------------------------------------------


def drawing_object(name: str) -> Any:
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != "GPENCIL":
        raise PluginError(f"“{name}” is not a Grease Pencil object: select the drawing to colorize")
    return obj


def keyframes(obj: Any) -> list[int]:
    """The frames where the drawing's visible layers have a keyframe."""
    return sorted({frame.frame_number for layer in obj.data.layers if not layer.hide for frame in layer.frames})


def _with_parents(obj: Any) -> Iterator[Any]:
    while obj is not None:
        yield obj
        obj = obj.parent


@contextmanager
def render_scene(scene: Any, drawing: Any) -> Iterator[Any]:
    """A scratch scene holding the drawing and the camera alone (with what they are parented to),
    the scene's resolution, a white world and no colour transform; removed afterwards."""
    camera = scene.camera
    if camera is None:
        raise PluginError(f"the scene “{scene.name}” has no camera: add one (Add ▸ Camera) looking at the drawing")
    scratch = bpy.data.scenes.new(RENDER_SCENE)
    world = bpy.data.worlds.new(RENDER_SCENE)
    try:
        for obj in {*_with_parents(drawing), *_with_parents(camera)}:
            scratch.collection.objects.link(obj)
        scratch.camera = camera
        world.color = (1.0, 1.0, 1.0)
        scratch.world = world
        render = scratch.render
        render.engine = "BLENDER_WORKBENCH"  # strokes need no lighting, and it is the quickest
        render.resolution_x, render.resolution_y = scene.render.resolution_x, scene.render.resolution_y
        render.resolution_percentage = scene.render.resolution_percentage
        render.pixel_aspect_x, render.pixel_aspect_y = scene.render.pixel_aspect_x, scene.render.pixel_aspect_y
        render.film_transparent = False
        render.image_settings.file_format = "PNG"
        render.image_settings.color_mode = "RGBA"
        render.image_settings.color_depth = "8"
        scratch.display.shading.light = "FLAT"
        scratch.view_settings.view_transform = "Standard"
        scratch.view_settings.look = "None"
        yield scratch
    finally:
        bpy.data.scenes.remove(scratch)
        bpy.data.worlds.remove(world)


def render_drawing(scratch: Any, frame: int, folder: Path) -> Pixels:
    """Render the scratch scene at ``frame``; RGBA8, the drawing's strokes on white."""
    scratch.frame_set(frame)
    path = folder / f"render_{frame}.png"
    scratch.render.filepath = str(path)
    with bpy.context.temp_override(scene=scratch):
        bpy.ops.render.render(write_still=True, scene=scratch.name)
    if not path.is_file():
        raise PluginError(f"Blender did not render frame {frame} (see the console for why)")
    image = bpy.data.images.load(str(path))
    try:
        return read_image(image, "render")
    finally:
        bpy.data.images.remove(image)


def render_frames(scene: Any, drawing: Any, frames: list[int]) -> dict[int, Pixels]:
    with tempfile.TemporaryDirectory(prefix="refcolor-render-") as folder, render_scene(scene, drawing) as scratch:
        return {frame: render_drawing(scratch, frame, Path(folder)) for frame in frames}


def plane_corners(scene: Any, camera: Any, drawing: Any) -> list[Vector]:
    """The camera's view rectangle, in the camera's space, just behind the drawing's farthest point."""
    depsgraph = bpy.context.evaluated_depsgraph_get()  # the matrices as they are now (not as last drawn)
    to_camera = camera.evaluated_get(depsgraph).matrix_world.inverted()
    drawing_matrix = drawing.evaluated_get(depsgraph).matrix_world
    depths = [-(to_camera @ (drawing_matrix @ Vector(corner))).z for corner in drawing.bound_box]
    depth = max([d for d in depths if d > 0], default=1.0) * PLANE_MARGIN
    depth = min(depth, camera.data.clip_end * 0.99)
    frame = camera.data.view_frame(scene=scene)  # at the camera's display distance (z < 0)
    if camera.data.type == "ORTHO":
        return [Vector((c.x, c.y, -depth)) for c in frame]
    return [c * (depth / -c.z) for c in frame]


def place_plane(scene: Any, target: Target, foreground: Any, background: Any) -> Any:
    """The drawing's plane, filling the camera's view behind it, showing ``foreground`` over
    ``background`` (emission: the colours as they are, whatever the lights). A drawing has one
    plane: colorizing it again shows the new colours there (the earlier images stay in the file)."""
    camera = bpy.data.objects[target.camera]
    drawing = bpy.data.objects[target.drawing]
    name = f"{target.name} colors"
    obj = bpy.data.objects.get(name)
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(plane_corners(scene, camera, drawing), [], [(3, 2, 1, 0)])
    uv = mesh.uv_layers.new(name="UVMap")
    for loop, (u, v) in zip(uv.data, ((0, 1), (0, 0), (1, 0), (1, 1)), strict=True):  # view_frame: TR, BR, BL, TL
        loop.uv = (u, v)
    mesh.materials.append(colors_material(name, foreground, background))
    if obj is not None and obj.type == "MESH":
        obj.data = mesh
    else:
        obj = bpy.data.objects.new(name, mesh)
        scene.collection.objects.link(obj)
    obj.parent = camera
    obj.matrix_parent_inverse = Matrix.Identity(4)
    obj.matrix_basis = Matrix.Identity(4)
    obj.hide_select = False
    return obj


def colors_material(name: str, foreground: Any, background: Any) -> Any:
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    output = nodes.new("ShaderNodeOutputMaterial")
    mix = nodes.new("ShaderNodeMixShader")
    for index, (image, label) in enumerate(((background, "background"), (foreground, "foreground"))):
        texture = nodes.new("ShaderNodeTexImage")
        texture.name = texture.label = label
        texture.image = image
        texture.location = (-600, -300 * index)
        emission = nodes.new("ShaderNodeEmission")
        emission.location = (-250, -300 * index)
        links.new(texture.outputs["Color"], emission.inputs["Color"])
        links.new(emission.outputs["Emission"], mix.inputs[1 + index])
        if label == "foreground":
            links.new(texture.outputs["Alpha"], mix.inputs["Fac"])
    links.new(mix.outputs["Shader"], output.inputs["Surface"])
    mix.location, output.location = (0, 0), (250, 0)
    return material


def sequence_folder(name: str) -> tuple[Path, bool]:
    """Where a shot's frames are written: beside the .blend, or (unsaved) in the temporary folder.
    Returns the folder and whether it is beside the .blend."""
    safe = re.sub(r"[^\w.-]+", "_", name).strip("_") or "drawing"
    if bpy.data.filepath:
        base, saved = Path(bpy.path.abspath("//")) / "refcolor", True
    else:
        base, saved = Path(tempfile.gettempdir()) / "refcolor", False
    for n in range(1, 10_000):
        folder = base / f"{safe} colors {n}"
        if not folder.exists():
            folder.mkdir(parents=True)
            return folder, saved
    raise PluginError(f"{base} holds too many earlier shots of “{name}”: move some away")


def write_sequence(
    folder: Path, layer: str, frames: FrameRange, keyed: dict[int, Pixels | None], size: tuple[int, int]
) -> Any:
    """``<layer>_####.png`` for every frame of ``frames``: each keyframe's picture (transparent where
    it has none) until the next. Returns the sequence as an image datablock."""
    scratch = bpy.data.images.new(f"refcolor {layer}", size[0], size[1], alpha=True)
    scratch.file_format = "PNG"
    try:
        times = sorted(keyed)
        written: dict[int, Path] = {}
        for frame in range(frames.start, frames.end + 1):
            key = max((t for t in times if t <= frame), default=None)
            path = folder / f"{layer}_{frame:04d}.png"
            if key in written:
                shutil.copyfile(written[key], path)  # a held drawing: the same picture again
                continue
            pixels = keyed.get(key) if key is not None else None
            if pixels is None:
                pixels = Pixels(bytes(4 * size[0] * size[1]), size[0], size[1], Layout.RGBA8)
            scratch.pixels.foreach_set(to_blender(pixels))
            scratch.filepath_raw = str(path)
            scratch.save()
            if key is not None:
                written[key] = path
    finally:
        bpy.data.images.remove(scratch)
    first = folder / f"{layer}_{frames.start:04d}.png"
    image = bpy.data.images.load(bpy.path.relpath(str(first)) if bpy.data.filepath else str(first))
    image.source = "SEQUENCE"
    image.name = f"{folder.name} {layer}"
    return image


def set_sequence(material: Any, frames: FrameRange) -> None:
    """Make the plane's textures play their sequences over ``frames``."""
    for node in material.node_tree.nodes:
        if node.type == "TEX_IMAGE":
            user = node.image_user
            user.frame_start = frames.start
            user.frame_offset = frames.start - 1
            user.frame_duration = frames.end - frames.start + 1
            user.use_auto_refresh = True


# --- the document access the shared controllers use ---------------------------------------------


class BlenderDocuments:
    """Reads what a job needs and places what it made (``DocumentAccess`` and ``ShotAccess``)."""

    def __init__(self, scene: Any = None) -> None:
        self._scene = scene

    @property
    def scene(self) -> Any:
        return self._scene or bpy.context.scene

    # still ---------------------------------------------------------------------------------------

    def snapshot(self, inputs: Inputs) -> tuple[Snapshot, Target]:
        art = inputs.line_art
        if isinstance(art, DrawingArt):
            drawing = drawing_object(art.obj)
            sketch = render_frames(self.scene, drawing, [art.frame])[art.frame]
            target = Target(drawing.name, sketch.size, drawing.name, self.scene.camera.name)
        elif isinstance(art, ImageArt):
            sketch = read_image(image_named(art.image, "line art"), "line art")
            target = Target(art.image, sketch.size)
        else:
            raise PluginError("pick the line art: an image in the Image Editor, or a Grease Pencil drawing")
        sketch_mask = self._sketch_mask(inputs, sketch.size)
        reference, reference_mask = self._reference(inputs)
        auto = tuple(
            name
            for name, source in ((MaskName.SKETCH, inputs.sketch_mask), (MaskName.REFERENCE, inputs.reference_mask))
            if source is MaskSource.AUTO
        )
        return Snapshot(sketch, reference, sketch_mask, reference_mask, None, auto), target

    def _sketch_mask(self, inputs: Inputs, size: tuple[int, int]) -> Pixels | None:
        if inputs.sketch_mask is not MaskSource.IMAGE:
            return None
        mask = inputs.line_art.mask
        if not mask:
            raise PluginError("pick the image to use as the line art's mask, or another mask")
        return read_mask(mask, size, "line art")

    def _reference(self, inputs: Inputs) -> tuple[Pixels, Pixels | None]:
        pick = inputs.reference
        if not isinstance(pick, ReferencePick) or not (pick.image or pick.path):
            raise PluginError("pick a reference: an image, or a file")
        if pick.image:
            reference = read_image(image_named(pick.image, "reference"), "reference")
        else:
            path = bpy.path.abspath(pick.path)
            if not Path(path).is_file():
                raise PluginError(f"the reference file {path} does not exist: pick another")
            known = {image.name for image in bpy.data.images}
            image = bpy.data.images.load(path, check_existing=True)
            try:
                reference = read_image(image, "reference")
            finally:
                if image.name not in known:  # loaded only to be read
                    bpy.data.images.remove(image)
        source = inputs.reference_mask
        if source is MaskSource.ALPHA:
            return reference, alpha_channel(reference)
        if source is MaskSource.IMAGE:
            if not pick.mask:
                raise PluginError("pick the image to use as the reference's mask, or another mask")
            return reference, read_mask(pick.mask, reference.size, "reference")
        return reference, None

    def document_size(self, target: Target) -> tuple[int, int]:
        return target.size

    def add_results(self, target: Target, layers: list[VariationLayers], replace_previous: bool) -> Placement:
        names = []
        for layers_of in layers:
            suffix = "" if layers_of.variation == 0 else f" {layers_of.variation + 1}"
            images = {}
            for what, pixels in (
                ("colors", layers_of.combined),
                ("foreground", layers_of.foreground),
                ("background", layers_of.background),
            ):
                if pixels is not None:
                    images[what] = write_image(f"{target.name} {what}{suffix}", pixels, replace_previous)
            for image in images.values():
                image[LINE_ART_KEY] = target.name  # Colorize with a result shown colorizes its line art again
            names.append(images["colors"].name if "colors" in images else images["foreground"].name)
            if not target.drawing and layers_of.variation == 0 and "colors" in images:
                show_instead(target.name, images["colors"])
            if target.drawing and layers_of.variation == 0:
                place_plane(self.scene, target, images["foreground"], images["background"])
        if target.drawing:
            where = f"as images, and behind “{target.drawing}” on the plane “{target.name} colors”"
        else:
            where = "as new images, shown in the Image Editor"
        return Placement(names, where)

    def discard(self, target: Target) -> None:
        target.renders.clear()

    def use_as_selection(self, computed: ComputedMasks) -> MadeSelections:
        """Blender has no selection: the masks the backend found become images the artist can
        correct and pick as “An image”: “<line art> auto mask”, “<reference> auto mask” (written
        over at each job, so never one the artist painted under another name)."""
        made, words = set(), []
        for name, pixels in computed.masks.items():
            if name is MaskName.SKETCH:
                base = computed.target.name
            else:
                pick = computed.inputs.reference
                base = pick.image or Path(pick.path).stem
            image = write_image(f"{base} {AUTO_MASK}", pixels, replace=True)
            made.add(name)
            words.append(f"“{image.name}”")
        return MadeSelections(frozenset(made), words)

    # frames --------------------------------------------------------------------------------------

    def shot_snapshot(self, inputs: Inputs, frames: FrameRange) -> tuple[ShotSnapshot, Target]:
        art = inputs.line_art
        if not isinstance(art, DrawingArt):
            raise PluginError("Colorize frames works on a Grease Pencil drawing: select one")
        drawing = drawing_object(art.obj)
        times = shot_times(keyframes(drawing), frames)
        if not times:
            raise PluginError(
                f"“{drawing.name}” has no keyframe in frames {frames.words}: draw some, or change the range"
            )
        renders = render_frames(self.scene, drawing, times)
        size = renders[times[0]].size
        target = Target(
            drawing.name,
            size,
            drawing.name,
            self.scene.camera.name,
            renders={t: zlib.compress(p.data, 1) for t, p in renders.items()},
            frames=frames,
        )
        target.mask = self._sketch_mask(inputs, size)
        reference, reference_mask = self._reference(inputs)
        snapshot = ShotSnapshot(
            tuple(times),
            reference,
            reference_mask,
            None,
            auto_sketch=inputs.sketch_mask is MaskSource.AUTO,
            auto_reference=inputs.reference_mask is MaskSource.AUTO,
        )
        return snapshot, target

    def read_frame(self, target: Target, time: int) -> FrameInput:
        width, height = target.size
        sketch = Pixels(zlib.decompress(target.renders[time]), width, height, Layout.RGBA8)
        return FrameInput(time, sketch, target.mask)

    def add_frames(self, target: Target, outcome: ShotOutcome, replace_previous: bool) -> Placement:
        assert target.frames is not None
        folder, saved = sequence_folder(target.name)
        sequences = {}
        for layer in ("foreground", "background"):
            keyed: dict[int, Pixels | None] = {}
            for frame in outcome.frames:
                packed = getattr(frame, layer)
                keyed[frame.time] = None if packed is None else packed.unpack()
            sequences[layer] = write_sequence(folder, layer, target.frames, keyed, target.size)
        plane = place_plane(self.scene, target, sequences["foreground"], sequences["background"])
        set_sequence(plane.active_material, target.frames)
        where = f"behind “{target.drawing}” on the plane “{plane.name}”, frames {target.frames.words} in {folder}"
        if not saved:
            where += " (a temporary folder: save the .blend first to keep them beside it)"
        return Placement([plane.name], where)
