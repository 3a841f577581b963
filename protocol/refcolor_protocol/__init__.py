"""refcolor's wire protocol and client: stdlib + pyzmq only, so it runs inside Krita's Python.

``PROTOCOL.md`` (next to this package) is the specification.
"""

from __future__ import annotations

from .client import Client
from .connection import ConnectionInfo, default_connection_file, read_connection_file, write_connection_file
from .errors import ProtocolError, RemoteError
from .messages import (
    MESSAGE_TYPES,
    Attachments,
    Cancel,
    CancelOutcome,
    CancelReply,
    Capabilities,
    ColorizeParams,
    ColorizeRequest,
    Error,
    Header,
    Hello,
    ImageRef,
    JobAccepted,
    JobPhase,
    JobState,
    LayerName,
    Limits,
    MaskName,
    Message,
    Mode,
    ModelEntry,
    Ping,
    Pong,
    Progress,
    Result,
    ResultLayer,
    ResultMask,
    Scheduler,
    Stage,
    Status,
    StatusRequest,
)
from .spec import DELIMITER, PROTOCOL_VERSION, ErrorCode, Layout
from .wire import Session

__version__ = "0.1.0"

__all__ = [
    "DELIMITER",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "Attachments",
    "Cancel",
    "CancelOutcome",
    "CancelReply",
    "Capabilities",
    "Client",
    "ColorizeParams",
    "ColorizeRequest",
    "ConnectionInfo",
    "Error",
    "ErrorCode",
    "Header",
    "Hello",
    "ImageRef",
    "JobAccepted",
    "JobPhase",
    "JobState",
    "LayerName",
    "Layout",
    "Limits",
    "MaskName",
    "Message",
    "Mode",
    "ModelEntry",
    "Ping",
    "Pong",
    "Progress",
    "ProtocolError",
    "RemoteError",
    "Result",
    "ResultLayer",
    "ResultMask",
    "Scheduler",
    "Session",
    "Stage",
    "Status",
    "StatusRequest",
    "default_connection_file",
    "read_connection_file",
    "write_connection_file",
]
