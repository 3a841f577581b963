"""Field checks of the content layer: every error names the field path, the value and what was expected."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from refcolor_protocol.errors import ProtocolError
from refcolor_protocol.fields import from_dict, to_dict
from refcolor_protocol.messages import (
    Attachments,
    ColorizeParams,
    ColorizeRequest,
    ImageRef,
    Pong,
    Result,
    check_buffers,
    content_from_dict,
    image_refs,
)
from refcolor_protocol.spec import ErrorCode, Layout


def image(
    width: int, height: int, layout: str = "RGBA8", buffer: int = 0, nbytes: int | None = None
) -> dict[str, Any]:
    bpp = 1 if layout == "L8" else 4
    return {
        "width": width,
        "height": height,
        "layout": layout,
        "nbytes": width * height * bpp if nbytes is None else nbytes,
        "buffer": buffer,
    }


def request(**changes: Any) -> dict[str, Any]:
    """A valid colorize_request content with all five images, then ``changes``."""
    content: dict[str, Any] = {
        "sketch": image(8, 6, "RGBA8", 0),
        "reference": image(4, 4, "BGRA8", 1),
        "sketch_mask": image(8, 6, "L8", 2),
        "reference_mask": image(4, 4, "L8", 3),
        "background": image(5, 5, "RGBA8", 4),
        "params": {},
    }
    content.update(changes)
    return content


def with_param(**params: Any) -> dict[str, Any]:
    return request(params=params)


def decode_error(data: dict[str, Any], msg_type: str = "colorize_request") -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        content_from_dict(msg_type, data)
    return info.value


def test_valid_request_decodes() -> None:
    content = content_from_dict("colorize_request", request())
    assert isinstance(content, ColorizeRequest)
    assert set(content.images()) == {"sketch", "reference", "sketch_mask", "reference_mask", "background"}
    assert content.params == ColorizeParams()
    assert to_dict(content) == {
        **request(), "params": to_dict(ColorizeParams()), "model": "", "auto_masks": [],
        "previous_sketch": None, "previous_fills": None, "previous_mask": None, "previous_age": 0,
    }


def test_a_frame_of_a_shot_names_its_previous_frame() -> None:
    previous = {"previous_sketch": image(8, 6, "RGBA8", 5), "previous_fills": image(8, 6, "BGRA8", 6),
                "previous_mask": image(8, 6, "L8", 7), "previous_age": 3}
    content = content_from_dict("colorize_request", request(**previous))
    assert content.previous_age == 3 and {"previous_sketch", "previous_fills", "previous_mask"} <= set(content.images())


@pytest.mark.parametrize(
    ("changes", "code", "says"),
    [
        ({"previous_sketch": image(8, 6, "RGBA8", 5)}, "invalid_field", "needs previous_sketch and previous_fills"),
        ({"previous_mask": image(8, 6, "L8", 5)}, "invalid_field", "got previous_mask"),
        ({"previous_sketch": image(8, 6, "RGBA8", 5), "previous_fills": image(8, 6, "RGBA8", 6),
          "params": {"variations": 2}}, "invalid_field", "params.variations: 2 with a previous frame"),
        ({"previous_sketch": image(8, 6, "RGBA8", 5), "previous_fills": image(8, 5, "RGBA8", 6)},
         "size_mismatch", "previous_fills: 8x5 but the sketch is 8x6"),
        ({"previous_sketch": image(8, 6, "RGBA8", 5), "previous_fills": image(8, 6, "RGBA8", 6),
          "previous_mask": image(8, 6, "RGBA8", 7)}, "unsupported_layout", "previous_mask: layout RGBA8"),
        ({"previous_sketch": image(8, 6, "RGBA8", 5), "previous_fills": image(8, 6, "RGBA8", 6),
          "previous_age": -1}, "invalid_field", "previous_age: -1 is out of range"),
    ],
)
def test_a_previous_frame_that_cannot_be_carried_from_is_refused(changes: dict, code: str, says: str) -> None:
    error = decode_error(request(**changes))
    assert error.code.value == code and says in error.message, error.message


# --- invalid_field -------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["sketch", "reference"])
def test_missing_required_field(missing: str) -> None:
    data = request()
    del data[missing]
    error = decode_error(data)
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.message == f"colorize_request.{missing}: required field is missing"


def test_missing_required_nested_field() -> None:
    sketch = image(8, 6)
    del sketch["nbytes"]
    error = decode_error(request(sketch=sketch))
    assert error.code is ErrorCode.INVALID_FIELD
    assert "colorize_request.sketch.nbytes: required field is missing" in error.message


@pytest.mark.parametrize(
    ("params", "path", "expected", "got"),
    [
        ({"steps": True}, "steps", "an integer", "bool True"),
        ({"steps": 20.0}, "steps", "an integer", "float 20.0"),
        ({"steps": "20"}, "steps", "an integer", "str '20'"),
        ({"seed": 1.5}, "seed", "an integer", "float 1.5"),
        ({"previews": 1}, "previews", "true or false", "int 1"),
        ({"merge": False}, "merge", "a number", "bool False"),
        ({"merge": "0.5"}, "merge", "a number", "str '0.5'"),
        (
            {"mode": "sideways"},
            "mode",
            "one of 'plain', 'foreground', 'background', 'both'",
            "str 'sideways'",
        ),
        ({"scheduler": 3}, "scheduler", "one of 'dpmpp_2m'", "int 3"),
        ({"steps": None}, "steps", "an integer", "NoneType None"),
    ],
)
def test_wrong_type_names_path_expected_and_received(
    params: dict[str, Any], path: str, expected: str, got: str
) -> None:
    error = decode_error(with_param(**params))
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.message.startswith(f"colorize_request.params.{path}: expected {expected}")
    assert error.message.endswith(f"got {got}")


def test_wrong_type_of_whole_objects() -> None:
    error = decode_error(request(params=[]))
    assert (error.code, error.message) == (
        ErrorCode.INVALID_FIELD,
        "colorize_request.params: expected an object, got list []",
    )
    error = decode_error(request(sketch="layer.png"))
    assert error.code is ErrorCode.INVALID_FIELD and error.message.startswith(
        "colorize_request.sketch: expected an"
    )
    error = decode_error(request(model=None))
    assert error.code is ErrorCode.INVALID_FIELD and error.message.startswith(
        "colorize_request.model: expected"
    )


def test_wrong_type_inside_a_list_names_the_index() -> None:
    data = {"job_id": "j", "model": "m", "layers": [], "seeds": [1, "two", 3]}
    error = decode_error(data, "result")
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.message == "result.seeds[1]: expected an integer, got str 'two'"
    data = {"job_id": "j", "model": "m", "layers": {}, "seeds": []}
    assert decode_error(data, "result").message == "result.layers: expected a list, got dict {}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("steps", 0),
        ("steps", 1001),
        ("variations", 0),
        ("variations", 65),
        ("seed", -1),
        ("seed", 2**32),
        ("reference_scale", -0.5),
        ("reference_scale", 30.01),
        ("guidance_end", 1.5),
        ("merge", -1e-9),
        ("resolution", 4097),
        ("resolution", -1),
        ("fg_strength", 2.5),
    ],
)
def test_out_of_range(name: str, value: float) -> None:
    error = decode_error(with_param(**{name: value}))
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.message.startswith(f"colorize_request.params.{name}: {value!r} is out of range; expected ")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("steps", 1),
        ("steps", 1000),
        ("seed", 0),
        ("seed", 2**32 - 1),
        ("merge", 1),
        ("guidance_start", 0.0),
        ("resolution", 0),
    ],
)
def test_range_ends_are_inclusive(name: str, value: float) -> None:
    content = content_from_dict("colorize_request", with_param(**{name: value}))
    assert getattr(content.params, name) == value


def test_ints_are_accepted_for_floats() -> None:
    content = content_from_dict("colorize_request", with_param(reference_scale=7))
    assert content.params.reference_scale == 7.0 and type(content.params.reference_scale) is float


@pytest.mark.parametrize("value", [1e400, -1e400, 10**400], ids=["1e400", "-1e400", "10**400"])
def test_non_finite_floats_are_refused(value: float) -> None:
    error = decode_error({"uptime_s": value}, "pong")
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.message.startswith("pong.uptime_s: expected a finite number")


def test_guidance_start_after_end() -> None:
    error = decode_error(with_param(guidance_start=0.8, guidance_end=0.2))
    assert error.code is ErrorCode.INVALID_FIELD
    assert error.message == "colorize_request.params: guidance_start=0.8 is after guidance_end=0.2"
    assert content_from_dict("colorize_request", with_param(guidance_start=0.5, guidance_end=0.5))


def test_image_ref_ranges() -> None:
    for field, value in (
        ("width", 0),
        ("height", (1 << 20) + 1),
        ("buffer", 64),
        ("buffer", -1),
        ("nbytes", -4),
    ):
        data = image(2, 2)
        data[field] = value
        error = decode_error(request(sketch=data))
        assert error.code is ErrorCode.INVALID_FIELD, (field, value)
        assert error.message.startswith(f"colorize_request.sketch.{field}: {value!r} is out of range"), (
            error.message
        )


def test_errors_carry_a_hint() -> None:
    error = decode_error(with_param(steps=0))
    assert error.hint and "[invalid_field]" in str(error)


# --- buffer_mismatch, unsupported_layout, size_mismatch ------------------------------------------


@pytest.mark.parametrize(("layout", "nbytes"), [("RGBA8", 8 * 6 * 4 - 1), ("RGBA8", 8 * 6), ("BGRA8", 0)])
def test_nbytes_must_match_size_and_layout(layout: str, nbytes: int) -> None:
    error = decode_error(request(sketch=image(8, 6, layout, nbytes=nbytes)))
    assert error.code is ErrorCode.BUFFER_MISMATCH
    assert error.message == (
        f"colorize_request.sketch: declares nbytes={nbytes} but 8x6 {layout} needs {8 * 6 * 4}"
    )


def test_nbytes_of_a_mask() -> None:
    error = decode_error(request(sketch_mask=image(8, 6, "L8", 2, nbytes=8 * 6 * 4)))
    assert error.code is ErrorCode.BUFFER_MISMATCH
    assert error.message.startswith("colorize_request.sketch_mask: declares nbytes=192 but 8x6 L8 needs 48")


@pytest.mark.parametrize("layout", ["RGB8", "rgba8", "", 4, None])
def test_unknown_layout(layout: object) -> None:
    data = image(8, 6)
    data["layout"] = layout
    error = decode_error(request(sketch=data))
    assert error.code is ErrorCode.UNSUPPORTED_LAYOUT
    assert error.message.startswith("colorize_request.sketch.layout: unsupported pixel layout")
    assert "'RGBA8', 'BGRA8', 'L8'" in error.message


@pytest.mark.parametrize(("mask", "size"), [("sketch_mask", (8, 6)), ("reference_mask", (4, 4))])
@pytest.mark.parametrize("layout", ["RGBA8", "BGRA8"])
def test_mask_not_l8(mask: str, size: tuple[int, int], layout: str) -> None:
    error = decode_error(request(**{mask: image(*size, layout, 2)}))
    assert error.code is ErrorCode.UNSUPPORTED_LAYOUT
    assert error.message == f"colorize_request.{mask}: layout {layout}, expected L8"


@pytest.mark.parametrize(
    ("name", "size"), [("sketch", (8, 6)), ("reference", (4, 4)), ("background", (5, 5))]
)
def test_image_in_l8(name: str, size: tuple[int, int]) -> None:
    error = decode_error(request(**{name: image(*size, "L8")}))
    assert error.code is ErrorCode.UNSUPPORTED_LAYOUT
    assert error.message == f"colorize_request.{name}: layout L8, expected RGBA8 or BGRA8"


@pytest.mark.parametrize(
    ("mask", "size", "owner", "owner_size"),
    [
        ("sketch_mask", (8, 5), "sketch", "8x6"),
        ("sketch_mask", (6, 8), "sketch", "8x6"),
        ("reference_mask", (4, 3), "reference", "4x4"),
    ],
)
def test_mask_size_must_match(mask: str, size: tuple[int, int], owner: str, owner_size: str) -> None:
    error = decode_error(request(**{mask: image(*size, "L8", 2)}))
    assert error.code is ErrorCode.SIZE_MISMATCH
    assert error.message == f"colorize_request.{mask}: {size[0]}x{size[1]} but the {owner} is {owner_size}"


def test_background_may_have_any_size() -> None:
    content = content_from_dict("colorize_request", request(background=image(100, 1, "BGRA8", 4)))
    assert content.background is not None and content.background.width == 100


def test_masks_are_optional() -> None:
    data = request()
    for name in ("sketch_mask", "reference_mask", "background", "params"):
        del data[name]
    content = content_from_dict("colorize_request", data)
    assert set(content.images()) == {"sketch", "reference"}


# --- check_buffers -------------------------------------------------------------------------------


def refs_and_buffers() -> tuple[list[tuple[str, ImageRef]], list[bytes]]:
    files = Attachments()
    sketch = files.add(bytes(8 * 6 * 4), 8, 6, Layout.RGBA8)
    reference = files.add(bytes(4 * 4 * 4), 4, 4, Layout.BGRA8)
    mask = files.add(bytes(8 * 6), 8, 6, Layout.L8)
    content = ColorizeRequest(sketch, reference, sketch_mask=mask)
    return image_refs(content, "colorize_request"), list(files.buffers)  # type: ignore[arg-type]


def test_image_refs_finds_every_image_with_its_path() -> None:
    refs, _ = refs_and_buffers()
    assert [path for path, _ in refs] == [
        "colorize_request.sketch",
        "colorize_request.reference",
        "colorize_request.sketch_mask",
    ]
    ref = ImageRef(1, 1, Layout.RGBA8, 4, 0)
    result = Result("j", "m", layers=(), seeds=())
    assert image_refs(result, "result") == []
    from refcolor_protocol.messages import LayerName, ResultLayer

    result = Result("j", "m", layers=(ResultLayer(LayerName.COMBINED, 0, ref),) * 2, seeds=(1,))
    assert [p for p, _ in image_refs(result, "result")] == [
        "result.layers[0].image",
        "result.layers[1].image",
    ]


def test_check_buffers_accepts_matching_buffers() -> None:
    refs, buffers = refs_and_buffers()
    check_buffers(refs, buffers, max_pixels=8 * 6)
    check_buffers(refs, [memoryview(b) for b in buffers], max_pixels=8 * 6)


def test_buffer_index_beyond_buffers() -> None:
    refs, buffers = refs_and_buffers()
    with pytest.raises(ProtocolError) as info:
        check_buffers(refs, buffers[:2], max_pixels=1000)
    assert info.value.code is ErrorCode.BUFFER_MISMATCH
    assert (
        info.value.message
        == "colorize_request.sketch_mask: refers to buffer 2 but the message has 2 buffer(s)"
    )


@pytest.mark.parametrize("delta", [-1, 1, -48])
def test_buffer_length_differs_from_nbytes(delta: int) -> None:
    refs, buffers = refs_and_buffers()
    buffers[2] = bytes(48 + delta)
    with pytest.raises(ProtocolError) as info:
        check_buffers(refs, buffers, max_pixels=1000)
    assert info.value.code is ErrorCode.BUFFER_MISMATCH
    assert info.value.message == (
        f"colorize_request.sketch_mask: buffer 2 holds {48 + delta} bytes but the image declares 48"
    )


def test_image_too_large() -> None:
    refs, buffers = refs_and_buffers()
    with pytest.raises(ProtocolError) as info:
        check_buffers(refs, buffers, max_pixels=8 * 6 - 1)
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert info.value.message == "colorize_request.sketch: 8x6 = 48 pixels exceeds the limit of 47"


def test_image_too_large_is_checked_before_buffers() -> None:
    """A huge declared image is refused by its size alone, whatever buffers came with it."""
    ref = ImageRef(1 << 20, 1 << 20, Layout.RGBA8, (1 << 40) * 4, 0)
    with pytest.raises(ProtocolError) as info:
        check_buffers([("colorize_request.sketch", ref)], [], max_pixels=1 << 26)
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE


# --- to_dict / from_dict basics ------------------------------------------------------------------


def test_unknown_keys_are_ignored_at_every_level() -> None:
    data = request(future_field={"x": 1})
    data["sketch"] = {**data["sketch"], "stride": 32}
    data["params"] = {"steps": 5, "cfg_rescale": 0.7}
    content = content_from_dict("colorize_request", data)
    assert content.params.steps == 5 and content.sketch.width == 8


def test_from_dict_does_not_modify_its_input() -> None:
    data = request()
    before = copy.deepcopy(data)
    content_from_dict("colorize_request", data)
    assert data == before


def test_from_dict_top_level_not_an_object() -> None:
    with pytest.raises(ProtocolError) as info:
        from_dict(Pong, [], "pong")  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert info.value.message == "pong: expected an object, got list []"
