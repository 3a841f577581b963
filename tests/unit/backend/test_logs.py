"""What reaches the log from the wire: one short printable line, repeated warnings held back."""

from __future__ import annotations

import logging

import pytest

from refcolor.service.logs import Throttle, wire_text


def test_wire_text_escapes_control_characters_so_no_line_can_be_forged() -> None:
    text = wire_text("krita\n2026-12-01 INFO refcolor: job 1 done\r\x1b[2J\x00")
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\x00" not in text
    assert text.startswith("krita\\n2026-12-01 INFO")


def test_wire_text_truncates_and_says_how_much_was_cut() -> None:
    text = wire_text("x" * (1 << 20))
    assert len(text) < 120 and text.endswith(f"…({(1 << 20) - 80} more)")
    assert wire_text("short") == "short"


def test_wire_text_escapes_non_ascii_and_takes_any_value() -> None:
    assert wire_text("na\u00efve \u202eevil") == "na\\xefve \\u202eevil"
    assert wire_text(12345) == "12345"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_lets_one_line_through_per_period_then_counts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttle = Throttle(logging.getLogger("throttle-test"), period=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="throttle-test"):
        assert throttle.warn("bad", "refused %s", "a")
        for _ in range(500):
            assert not throttle.warn("bad", "refused %s", "b")
        assert throttle.warn("other", "another kind")  # kinds are limited apart
        clock.now = 10.5
        assert throttle.warn("bad", "refused %s", "c")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["refused a", "another kind", "refused c (and 500 more like it in the last 10 s)"]
