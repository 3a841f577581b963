"""The parameter schema: one declaration, read back whole, and what is derived from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from refcolor_protocol import ColorizeParams, Limits, Mode, ProtocolError
from refcolor_protocol.schema import AUTO, BY_NAME, PARAMS, markdown_table, params_from, parse_mode

SPEC_PATH = Path(__file__).resolve().parents[3] / "protocol" / "PROTOCOL.md"


def test_every_field_is_a_described_parameter_in_declaration_order() -> None:
    assert [spec.name for spec in PARAMS] == [f.name for f in dataclasses.fields(ColorizeParams)]
    defaults = ColorizeParams()
    for spec in PARAMS:
        assert spec.label and spec.help, spec.name
        assert spec.default == getattr(defaults, spec.name)
        if spec.low is not None and spec.default is not None:
            assert spec.low <= spec.default <= spec.high, spec.name
        if spec.slider_high is not None:
            assert spec.low <= spec.slider_high <= spec.high, spec.name


def test_protocol_md_has_the_table_made_from_the_schema() -> None:
    # The scenario: a parameter's help or default changed in the code and not on the page (or the
    # reverse). The page must hold the generated table verbatim.
    assert markdown_table() in SPEC_PATH.read_text(encoding="utf-8"), (
        "PROTOCOL.md's ColorizeParams table is stale: paste `python -m refcolor_protocol.schema` into it"
    )


@pytest.mark.parametrize("spec", PARAMS, ids=lambda s: s.name)
def test_text_round_trips_and_auto_is_one_word(spec) -> None:
    samples = [spec.default]
    if spec.choices:
        samples += list(spec.kind)
    elif spec.kind is bool:
        samples += [False, True]
    else:
        samples += [spec.low, spec.high]
    for value in samples:
        assert spec.parse(spec.format(value)) == value
    if spec.auto:
        assert spec.parse(AUTO) is None and spec.format(None) == AUTO
    else:
        with pytest.raises(ValueError, match=f"{spec.name} has no 'auto'"):
            spec.parse(AUTO)


def test_parse_refuses_out_of_range_and_wrong_kinds_naming_what_is_accepted() -> None:
    with pytest.raises(ValueError, match=r"steps: 0 is out of range; use an integer from 1 to 1000"):
        BY_NAME["steps"].parse("0")
    with pytest.raises(ValueError, match=r"flatten: 'much' is not a number from 0 to 1 or 'auto'"):
        BY_NAME["flatten"].parse("much")
    with pytest.raises(ValueError, match=r"mode: 'all' is not one of plain, foreground, background, both"):
        BY_NAME["mode"].parse("all")


def test_a_server_limit_caps_the_range_it_names() -> None:
    limits = Limits(max_pixels=1, max_queue=1, max_message_bytes=1, max_steps=50, max_variations=4,
                    preview_every=1, preview_size=1)
    assert BY_NAME["steps"].high_for(limits) == 50
    assert BY_NAME["variations"].high_for(limits) == 4
    assert BY_NAME["steps"].high_for(None) == 1000
    assert BY_NAME["reference_scale"].high_for(limits) == 30.0
    for spec in PARAMS:
        if spec.limit:
            assert spec.limit in {f.name for f in dataclasses.fields(Limits)}


def test_params_from_checks_values_as_the_wire_does() -> None:
    params = params_from({"mode": Mode.PLAIN, "steps": 7, "flatten": None})
    assert (params.mode, params.steps, params.flatten, params.seed) == (Mode.PLAIN, 7, None, None)
    with pytest.raises(ProtocolError, match="steps"):
        params_from({"steps": 0})


def test_unknown_mode_fails_loudly() -> None:
    with pytest.raises(ValueError, match=r"mode: 'sideways' is not one of plain, foreground, background, both"):
        parse_mode("sideways")
    with pytest.raises(ValueError, match="mode: 'Both' is not one of"):
        parse_mode("Both")
    assert parse_mode("both") is Mode.BOTH and parse_mode(Mode.PLAIN) is Mode.PLAIN
