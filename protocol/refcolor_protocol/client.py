"""The client: a DEALER socket, usable from an event loop or with blocking calls.

Non-blocking (Krita's Qt loop, no threads): watch every fd in :attr:`Client.fds` with a
``QSocketNotifier`` and call :meth:`Client.poll_events` when one fires; it drains what is
readable and returns decoded messages. Send with :meth:`Client.send`.

Blocking (scripts, tests, ``refcolor ping``): :meth:`hello`, :meth:`ping`, :meth:`status`,
:meth:`cancel`, :meth:`colorize`.

Replies are matched to requests by their parent header. If the connection to the backend
drops (it stopped or restarted), every request still waiting gets a locally made ``error``
message with code ``connection_lost``; the socket reconnects by itself when the backend
is back.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from .connection import TRANSPORT_USERNAME, ConnectionInfo, read_connection_file, transport_password
from .errors import ProtocolError, RemoteError
from .messages import (
    Buffer,
    Cancel,
    CancelReply,
    Capabilities,
    ColorizeRequest,
    Error,
    Header,
    Hello,
    Message,
    Ping,
    Pong,
    Status,
    StatusRequest,
)
from .spec import DEFAULT_HINTS, ErrorCode
from .wire import Session, usable_scheme

logger = logging.getLogger(__name__)

_LOCAL_SESSION = "local"  # the session id of messages the client makes itself
CONNECT_TIMEOUT_S = 5.0  # a blocking call gives up when no connection was made in this time
ANSWER_TIMEOUT_S = 10.0  # ... and a job when the backend did not even accept it in this time
JOB_TIMEOUT_S = 3600.0  # the default bound on a whole job (the server's own default limit is 1800 s)
RECONNECT_GRACE_S = 60.0  # requests survive a lost connection this long if the backend still listens


def _has_transport_auth(version: str) -> bool:
    """Whether a server of protocol ``version`` authenticates connections (1.5 and later)."""
    match = re.fullmatch(r"([0-9]+)\.([0-9]+)", version)
    return match is None or (int(match.group(1)), int(match.group(2))) >= (1, 5)


def is_final(request_type: str, reply_type: str) -> bool:
    """Whether ``reply_type`` is the last message a request of ``request_type`` gets."""
    if request_type == ColorizeRequest.msg_type:
        return reply_type in ("result", "error")
    return True


class Client:
    """A connection to one backend.

    Args:
        address: a ZeroMQ endpoint, e.g. ``tcp://127.0.0.1:5557`` or ``ipc:///run/refcolor.sock``.
        key: the key from the server's connection file; empty if the server runs without one.
        signature_scheme: the scheme the server prefers (its connection file's); signed with if
            this side can, else the best this side has (see ``wire.usable_scheme``).
        transport_auth: pass the keyed server's handshake (ZAP, PLAIN; protocol 1.5). Off only
            for servers of 1.4 and before, which have none (``from_info`` decides from the file).
        client_name: sent in ``hello``, shown in the server's log.
        heartbeat_ms: ZMTP heartbeat interval; a silent backend counts as gone after 3 intervals.
        connect_timeout: a blocking call fails (``timeout``) when no connection could be made in
            this many seconds: nothing listens at the address (a closed port, a missing ipc path,
            a backend that was just killed).
    """

    def __init__(
        self,
        address: str,
        key: bytes = b"",
        *,
        client_name: str = "refcolor-client",
        client_version: str = "",
        heartbeat_ms: int = 1000,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        signature_scheme: str | None = None,
        transport_auth: bool = True,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.address = address
        self.key = key
        self.transport_auth = transport_auth
        self.session = Session(key, scheme=usable_scheme(signature_scheme) if signature_scheme else None)
        self.client_name = client_name
        self.client_version = client_version
        self.heartbeat_ms = heartbeat_ms
        self.connect_timeout = connect_timeout
        self.connected = False
        self._lost_at: float | None = None  # when the connection dropped with requests waiting
        self._key_refused = False  # the last handshake was refused (a wrong key)
        self._routing_id = b"rc-" + secrets.token_hex(16).encode("ascii")
        self._context = context or zmq.Context.instance()
        self._pending: dict[str, Header] = {}  # msg_id -> header of requests still waiting
        self._backlog: deque[Message] = deque()  # events read by a blocking call for someone else
        self._socket: zmq.Socket[Any] | None = None
        self._monitor: zmq.Socket[Any] | None = None
        self._open()

    @classmethod
    def from_connection_file(cls, path: str, **kwargs: Any) -> Client:
        info = read_connection_file(path)
        return cls.from_info(info, **kwargs)

    @classmethod
    def from_info(cls, info: ConnectionInfo, **kwargs: Any) -> Client:
        """A client for the backend a connection file describes, speaking what its version speaks."""
        kwargs.setdefault("transport_auth", _has_transport_auth(info.protocol_version))
        return cls(info.address, info.key, signature_scheme=info.signature_scheme, **kwargs)

    # --- socket lifecycle --------------------------------------------------------------------

    def _open(self) -> None:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.HEARTBEAT_IVL, self.heartbeat_ms)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * self.heartbeat_ms)
        sock.setsockopt(zmq.HEARTBEAT_TTL, 3 * self.heartbeat_ms)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        # One routing id for the client's life, across reconnects: a backend that was paused
        # (a suspended laptop, a debugger) and resumes sends the job's answers to the new
        # connection (the server hands the id over), so the job is not lost.
        sock.setsockopt(zmq.ROUTING_ID, self._routing_id)
        if self.key and self.transport_auth:  # a keyed server admits only connections that know it (ZAP)
            sock.setsockopt(zmq.PLAIN_USERNAME, TRANSPORT_USERNAME)
            sock.setsockopt(zmq.PLAIN_PASSWORD, transport_password(self.key))
        self._monitor = sock.get_monitor_socket(
            zmq.EVENT_CONNECTED
            | zmq.EVENT_DISCONNECTED
            | zmq.EVENT_CLOSED
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        sock.connect(self.address)
        self._socket = sock

    def close(self) -> None:
        """Close the socket; waiting requests are forgotten (no events are made for them)."""
        if self._socket is not None:
            self._socket.disable_monitor()
            if self._monitor is not None:
                self._monitor.close(linger=0)
            self._socket.close(linger=0)
        self._socket = self._monitor = None
        self._pending.clear()
        self.connected = False

    def reconnect(self, key: bytes | None = None) -> list[Message]:
        """Start over with a fresh socket, with a new ``key`` if given (a restarted backend's).
        Returns ``connection_lost`` errors for waiting requests."""
        lost = self._lose_pending("the client reconnected before the backend answered")
        self.close()
        if key is not None:
            self.key = self.session.key = key
        self._open()
        return lost

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def fds(self) -> tuple[int, int]:
        """File descriptors to watch for readability (the socket's and its monitor's).

        Edge-triggered like every ZeroMQ fd: after a notification, call :meth:`poll_events`,
        which drains until nothing is left.
        """
        sock, monitor = self._sockets()
        return int(sock.getsockopt(zmq.FD)), int(monitor.getsockopt(zmq.FD))

    @property
    def waiting(self) -> list[Header]:
        """Headers of requests that have not had their final answer yet."""
        return list(self._pending.values())

    def _sockets(self) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
        if self._socket is None or self._monitor is None:
            raise RuntimeError("the client is closed")
        return self._socket, self._monitor

    # --- non-blocking interface --------------------------------------------------------------

    def send(self, content: Any, buffers: Sequence[Buffer] = ()) -> Header:
        """Send a request without waiting; returns its header (replies carry it as parent).

        Never blocks: when the socket cannot take the message (its handshake was refused, so it
        has no connection to queue on), the next :meth:`poll_events` has an ``error`` for it.
        """
        sock, _ = self._sockets()
        msg = self.session.msg(content, buffers=buffers)
        try:
            sock.send_multipart(self.session.serialize(msg), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            if not self._key_refused:
                # The handshake may have been refused before this first send: only the monitor,
                # not read yet, knows. What it says (and anything else readable) is kept in order.
                self._backlog.extend(self.poll_events())
            if self._key_refused:
                code, why = ErrorCode.BAD_SIGNATURE, f"the backend at {self.address} refused this client's key"
            else:
                code, why = ErrorCode.CONNECTION_LOST, f"no connection to the backend at {self.address} to send on"
            self._backlog.append(self._local_error(code, f"{why}; {msg.msg_type} was not sent", msg.header))
            return msg.header
        self._pending[msg.header.msg_id] = msg.header
        return msg.header

    def poll_events(self) -> list[Message]:
        """Everything readable now, decoded, in arrival order; never blocks."""
        events = list(self._backlog)
        self._backlog.clear()
        sock, monitor = self._sockets()
        # Messages first: whatever the backend said before it went away is still worth having.
        while int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            frames = [frame.buffer for frame in sock.recv_multipart(copy=False)]  # no copy
            try:
                msg = self.session.deserialize(frames)
            except ProtocolError as exc:
                # The reply cannot be trusted, or matched to its request: most often the key is
                # wrong. Every waiting request fails with that reason rather than timing out.
                logger.warning("dropped a bad message from the backend: %s", exc)
                why = f"the backend at {self.address} sent a message that failed checks ({exc.message})"
                waiting: list[Header | None] = [*self._pending.values()] or [None]
                events += [self._local_error(exc.code, why, header) for header in waiting]
                self._pending.clear()
                continue
            if msg.parent_id in self._pending:
                self._lost_at = None  # the backend still knows our requests
            self._settle(msg)
            events.append(msg)
        while int(monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            event = recv_monitor_message(monitor, zmq.NOBLOCK)
            if event["event"] == zmq.EVENT_CONNECTED:
                self.connected = True
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._key_refused = False
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self.connected = False
                if self._pending:  # wait: a backend that was only paused answers on the new connection
                    self._lost_at = self._lost_at or time.monotonic()
                else:  # one unaddressed event still tells an event loop it happened
                    why = f"lost the connection to the backend at {self.address}"
                    events.append(self._local_error(ErrorCode.CONNECTION_LOST, why, None))
            elif event["event"] == zmq.EVENT_CLOSED and self._lost_at is not None and not self.connected:
                # A reconnect was refused: nothing listens there any more (the backend ended).
                events += self._lose_pending(f"lost the connection to the backend at {self.address}")
            elif event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                # The server's ZAP check refused us: our key is not its key.
                self.connected = False
                self._key_refused = True
                why = f"the backend at {self.address} refused this client's key"
                events += self._lose_pending(why, ErrorCode.BAD_SIGNATURE) or [
                    self._local_error(ErrorCode.BAD_SIGNATURE, why, None)
                ]
        if self._lost_at is not None and time.monotonic() - self._lost_at > RECONNECT_GRACE_S:
            events += self._lose_pending(
                f"lost the connection to the backend at {self.address} and it did not come back "
                f"within {RECONNECT_GRACE_S:g} s"
            )
        return events

    def _settle(self, msg: Message) -> None:
        request = self._pending.get(msg.parent_id)
        if request is not None and is_final(request.msg_type, msg.msg_type):
            del self._pending[request.msg_id]

    def _local_error(self, code: ErrorCode, message: str, parent: Header | None) -> Message:
        """An ``error`` message made by the client itself (session "local"), as if the server sent it."""
        content = Error(code=code.value, message=message, hint=DEFAULT_HINTS[code])
        return Message(Header.new(Error.msg_type, _LOCAL_SESSION), content, parent)

    def _lose_pending(self, why: str, code: ErrorCode = ErrorCode.CONNECTION_LOST) -> list[Message]:
        self._lost_at = None
        lost = [
            self._local_error(code, f"{why} while waiting for {h.msg_type} {h.msg_id}", h)
            for h in self._pending.values()
        ]
        self._pending.clear()
        return lost

    # --- blocking interface ------------------------------------------------------------------

    def wait(
        self,
        request: Header,
        timeout: float | None,
        on_event: Callable[[Message], None] | None = None,
        answer_timeout: float | None = None,
    ) -> Message:
        """Block until the final answer to ``request`` (a result, an error, or a plain reply).

        Other replies to it go to ``on_event``; events for other requests are kept for the
        next :meth:`poll_events`. Gives up (``timeout``) after ``timeout`` seconds in all; after
        ``connect_timeout`` if no connection was made; after ``answer_timeout`` (if given) when
        connected but nothing at all about the request came back.

        Raises:
            RemoteError: the answer was an ``error`` (``timeout`` if none came in time).
        """
        started = time.monotonic()
        limits = [(timeout, f"no answer to {request.msg_type} from {self.address} within {timeout or 0:g} s")]
        limits.append((self.connect_timeout, f"nothing accepts connections at {self.address}"))
        if answer_timeout is not None:
            limits.append(
                (answer_timeout, f"the backend at {self.address} did not answer {request.msg_type} at all")
            )
        sock, monitor = self._sockets()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        heard = False  # anything about this request came back
        while True:
            events = self.poll_events()
            for index, msg in enumerate(events):
                if msg.parent_id != request.msg_id:
                    self._backlog.append(msg)
                    continue
                heard = True
                if not is_final(request.msg_type, msg.msg_type):
                    if on_event is not None:
                        on_event(msg)
                else:
                    self._backlog.extend(m for m in events[index + 1 :] if m.parent_id != request.msg_id)
                    if isinstance(msg.content, Error):
                        content = msg.content
                        raise RemoteError(content.code, content.message, content.hint, content.job_id)
                    return msg
            # Which limits still apply: the total always; the connect one until connected; the
            # answer one until anything about the request came back.
            live = [limits[0]]
            if not heard:
                live += [limits[2]] if len(limits) > 2 else []
                live += [] if self.connected else [limits[1]]
            elapsed = time.monotonic() - started
            remaining = [(limit - elapsed, why) for limit, why in live if limit is not None]
            expired = [why for left, why in remaining if left <= 0]
            if expired:
                self._pending.pop(request.msg_id, None)
                raise RemoteError(
                    ErrorCode.TIMEOUT.value, f"{expired[0]} (waited {elapsed:.1f} s)", DEFAULT_HINTS[ErrorCode.TIMEOUT]
                )
            if self._lost_at is not None:  # wake up to end the reconnect grace
                remaining.append((self._lost_at + RECONNECT_GRACE_S - time.monotonic() + 0.01, ""))
            wake = min((left for left, _ in remaining), default=None)
            poller.poll(None if wake is None else max(1, int(wake * 1000)))

    def request(self, content: Any, buffers: Sequence[Buffer] = (), timeout: float | None = 10.0) -> Message:
        return self.wait(self.send(content, buffers), timeout)

    def hello(self, timeout: float | None = 5.0) -> Capabilities:
        reply = self.request(Hello(self.client_name, self.client_version), timeout=timeout)
        return reply.content

    def ping(self, timeout: float | None = 5.0) -> Pong:
        return self.request(Ping(nonce=self.session.session), timeout=timeout).content

    def status(self, timeout: float | None = 5.0) -> Status:
        return self.request(StatusRequest(), timeout=timeout).content

    def cancel(self, job_id: str, timeout: float | None = 5.0) -> CancelReply:
        return self.request(Cancel(job_id), timeout=timeout).content

    def colorize(
        self,
        request: ColorizeRequest,
        buffers: Sequence[Buffer],
        on_event: Callable[[Message], None] | None = None,
        timeout: float | None = JOB_TIMEOUT_S,
        answer_timeout: float | None = ANSWER_TIMEOUT_S,
    ) -> Message:
        """Run a job and wait for its ``result`` message (whose buffers hold the layers).

        ``on_event`` sees ``job_accepted``, ``progress`` and ``status`` messages as they come.
        Gives up after ``timeout`` seconds in all (None: never), or when the backend did not
        even accept the job within ``answer_timeout`` seconds, or when nothing accepts the
        connection within the client's ``connect_timeout``; a backend that goes away
        mid-job is noticed by its missing heartbeats within a few seconds (``connection_lost``).

        Raises:
            RemoteError: the job failed, was refused, was cancelled, or the backend went away.
        """
        return self.wait(self.send(request, buffers), timeout, on_event, answer_timeout)


def backend_answers(info: ConnectionInfo, timeout: float = 2.0) -> bool:
    """Whether the backend a connection file names answers a ping within ``timeout`` seconds."""
    with Client.from_info(info, client_name="refcolor-probe") as client:
        try:
            client.ping(timeout=timeout)
        except RemoteError:
            return False
        return True
