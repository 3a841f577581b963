"""What the plugin tests share (a module of its own: conftest modules must not be imported from)."""

from __future__ import annotations

from refcolor_protocol import Header


class Sent:
    """Stands in for the connection's send: records each message and gives it a header m1, m2, ...
    (``events``: what the controller's callbacks said, for subclasses to fill)."""

    def __init__(self) -> None:
        self.sent: list[tuple[object, list[object]]] = []
        self.events: list[tuple[str, object]] = []

    def send(self, content: object, buffers: list[object]) -> Header:
        self.sent.append((content, buffers))
        return Header(f"m{len(self.sent)}", type(content).msg_type, "s", "d", "1.0")
