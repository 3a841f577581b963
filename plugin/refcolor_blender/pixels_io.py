"""Blender's image pixels and the protocol's bytes (plain Python: no bpy).

Blender keeps an image's pixels as floats 0–1, RGBA, rows bottom to top; the protocol moves bytes,
rows top to bottom. numpy does the conversion when Blender has it (its own builds do); without it
(Debian's Blender on the system Python) a table turns the floats of an 8-bit image (exactly k/255)
into bytes at C speed, and anything else is rounded one value at a time.
"""

from __future__ import annotations

import array
from collections.abc import Sequence

from refcolor_plugin.pixels import Pixels, PluginError, swap_red_blue
from refcolor_protocol import Layout

try:
    import numpy
except ImportError:  # Debian's Blender: the slower, exact path below
    numpy = None  # type: ignore[assignment]

_FLOATS = array.array("f", [v / 255 for v in range(256)])
_BITS = {bits: v for v, bits in enumerate(memoryview(_FLOATS).cast("B").cast("I"))}  # float32 bits of k/255 -> k


def to_bytes(floats: array.array | Sequence[float], use_numpy: bool = True) -> bytes:
    """Floats 0–1 as bytes 0–255 (rounded, clipped)."""
    if numpy is not None and use_numpy:
        values = numpy.asarray(floats, dtype=numpy.float32)
        return numpy.clip(numpy.rint(values * 255), 0, 255).astype(numpy.uint8).tobytes()
    if not isinstance(floats, array.array) or floats.typecode != "f":
        floats = array.array("f", floats)
    try:
        return bytes(map(_BITS.__getitem__, memoryview(floats).cast("B").cast("I")))
    except KeyError:  # a float image (a render, an EXR): round each value
        return bytes(min(255, max(0, round(v * 255))) for v in floats)


def to_floats(data: bytes, use_numpy: bool = True) -> array.array:
    """Bytes 0–255 as floats 0–1 (float32), what ``pixels.foreach_set`` takes."""
    if numpy is not None and use_numpy:
        return array.array("f", (numpy.frombuffer(data, dtype=numpy.uint8).astype(numpy.float32) / 255).tobytes())
    return array.array("f", map(_FLOATS.__getitem__, data))


def flip_rows(data: bytes, width: int, height: int, bytes_per_pixel: int) -> bytes:
    """The rows in the other order (Blender's bottom-to-top <-> the protocol's top-to-bottom)."""
    row = width * bytes_per_pixel
    return b"".join(data[y * row : (y + 1) * row] for y in range(height - 1, -1, -1))


def from_blender(floats: array.array | Sequence[float], width: int, height: int, channels: int = 4) -> Pixels:
    """An image's ``pixels`` (``channels`` floats a pixel, bottom row first) as RGBA8 top to bottom.

    Raises:
        PluginError: the number of values is not width × height × channels.
    """
    if len(floats) != width * height * channels:
        raise PluginError(f"a {width}x{height} image should have {width * height * channels} values, has {len(floats)}")
    data = to_bytes(floats)
    if channels == 3:
        rgba = bytearray(width * height * 4)
        for c in range(3):
            rgba[c::4] = data[c::3]
        rgba[3::4] = b"\xff" * (width * height)
        data = bytes(rgba)
    elif channels == 1:
        data = _grey_rgba(data)
    elif channels != 4:
        raise PluginError(f"images with {channels} channels are not supported; convert it to RGBA")
    return Pixels(flip_rows(data, width, height, 4), width, height, Layout.RGBA8)


def to_blender(pixels: Pixels) -> array.array:
    """RGBA8/BGRA8 (or an L8 mask, as grey) as Blender's RGBA floats, bottom row first."""
    data = pixels.data
    if pixels.layout is Layout.L8:
        data = _grey_rgba(data)
    elif pixels.layout is Layout.BGRA8:
        data = swap_red_blue(data)
    return to_floats(flip_rows(data, pixels.width, pixels.height, 4))


def _grey_rgba(grey: bytes) -> bytes:
    """One byte a pixel as opaque grey RGBA."""
    rgba = bytearray(b"\xff" * (len(grey) * 4))
    for c in range(3):
        rgba[c::4] = grey
    return bytes(rgba)
