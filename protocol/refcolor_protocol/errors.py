"""Exceptions shared by both sides of the protocol."""

from __future__ import annotations

from .spec import DEFAULT_HINTS, ErrorCode


class ProtocolError(Exception):
    """A message could not be accepted. ``code`` is stable; ``message`` says what was wrong."""

    def __init__(self, code: ErrorCode, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = DEFAULT_HINTS.get(code, "") if hint is None else hint

    def __str__(self) -> str:
        return f"[{self.code.value}] {self.message}" + (f" ({self.hint})" if self.hint else "")


class RemoteError(Exception):
    """The server (or the client, for connection_lost/timeout) answered a request with an error."""

    def __init__(self, code: str, message: str, hint: str = "", job_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.job_id = job_id

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" + (f" — {self.hint}" if self.hint else "")
