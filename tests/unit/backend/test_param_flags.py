"""The command-line flags of `colorize` and `serve` come from the parameter schema."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from refcolor import cli
from refcolor.cli import colorize as colorize_cli
from refcolor.service.config import LIMITED_PARAMS, ServerConfig
from refcolor_protocol import ColorizeParams, Mode, ProtocolError
from refcolor_protocol.schema import PARAMS


def colorize_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    colorize_cli.add_arguments(parser)
    return parser


FILES = ["sketch.png", "ref.png", "-o", "out"]


def test_every_parameter_but_previews_is_a_flag_and_omitted_ones_take_the_schema_default() -> None:
    parser = colorize_parser()
    flags = {opt for action in parser._actions for opt in action.option_strings}
    assert {spec.flag for spec in PARAMS} - flags == {"--previews"}
    assert colorize_cli.params_from_args(parser.parse_args(FILES)) == ColorizeParams()


def test_flags_parse_to_the_parameters_with_their_names_and_auto() -> None:
    args = colorize_parser().parse_args(
        [*FILES, "--mode", "plain", "--fg-strength", "1.5", "--seed", "7", "--flatten", "auto", "--color-match", "0"]
    )
    params = colorize_cli.params_from_args(args)
    assert (params.mode, params.fg_strength, params.seed, params.flatten, params.color_match) == (
        Mode.PLAIN, 1.5, 7, None, 0.0,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "steps: 0 is out of range; use an integer from 1 to 1000"),
        (["--mode", "everything"], "mode: 'everything' is not one of plain, foreground, background, both"),
        (["--seed", "auto", "--steps", "auto"], "steps has no 'auto'"),
    ],
)
def test_a_bad_flag_names_the_parameter_and_what_it_accepts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        colorize_parser().parse_args([*FILES, *argv])
    assert message in capsys.readouterr().err


def test_cross_field_checks_apply_as_on_the_wire() -> None:
    args = colorize_parser().parse_args([*FILES, "--guidance-start", "0.8", "--guidance-end", "0.2"])
    with pytest.raises(ProtocolError, match=r"guidance_start=0\.8 is after guidance_end=0\.2"):
        colorize_cli.params_from_args(args)


def test_serve_has_a_flag_per_limited_parameter_within_its_range(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser(["serve"])
    defaults = ServerConfig()
    assert {spec.limit for spec in LIMITED_PARAMS} == {"max_steps", "max_variations", "max_resolution"}
    for spec in LIMITED_PARAMS:
        assert spec.low <= getattr(defaults, spec.limit) <= spec.high
        assert spec.limit in {f.name for f in dataclasses.fields(ServerConfig)}
    args = parser.parse_args(["serve", "--max-variations", "3"])
    assert (args.max_variations, args.max_steps) == (3, defaults.max_steps)
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--max-variations", "65"])
    assert "65 is out of range; use 1 to 64" in capsys.readouterr().err
