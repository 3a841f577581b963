"""The backend service: one ROUTER socket, any number of clients, one worker.

The server thread owns the socket: it checks every incoming message, answers the
quick requests itself, queues colorize jobs, and turns the worker's events into
``progress``/``result``/``error`` messages. Nothing from the wire is trusted: each
message is authenticated, then parsed field by field, and every image's buffer is
checked against its descriptor and the pixel limit before a pixel is read.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from refcolor import __version__
from refcolor.models import masks
from refcolor.models.job import resolve_seed
from refcolor.service import replies
from refcolor.service.claim import Claimed, claim_address, claim_connection_file
from refcolor.service.config import ServerConfig
from refcolor.service.logs import Throttle, wire_text
from refcolor.service.model_cache import ModelCache
from refcolor.service.worker import Event, Failed, Finished, JobQueue, QueuedJob, Started, Stepped, Worker
from refcolor_protocol.connection import (
    TRANSPORT_USERNAME,
    ConnectionInfo,
    is_local_address,
    transport_password,
    write_connection_file,
)
from refcolor_protocol.errors import ProtocolError
from refcolor_protocol.messages import (
    MESSAGE_TYPES,
    Buffer,
    Cancel,
    CancelOutcome,
    CancelReply,
    ColorizeRequest,
    Error,
    Header,
    Hello,
    JobAccepted,
    JobPhase,
    JobState,
    Message,
    Ping,
    Pong,
    Progress,
    Status,
    StatusRequest,
)
from refcolor_protocol.spec import DEFAULT_HINTS, PROTOCOL_VERSION, ErrorCode
from refcolor_protocol.wire import Session

logger = logging.getLogger(__name__)

REPLAY_HISTORY = 1 << 16  # signatures of the most recent messages kept, to refuse a replay of one
REPLAY_WINDOW_S = 300.0  # a signed message's header.date must be this close to the server's clock
CLOCK_HINT = "send a new message; if this keeps happening, set the clocks of both machines right"
JOB_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # a colorize_request's msg_id, which names the job
SEND_HWM = 64  # messages ZeroMQ queues for one peer; past that the peer is "not reading"
OUTBOX_SECONDS = 600.0  # how long a job's final answer waits for a peer that is not reading
SCHEME_MEMORY = 4096  # peers whose signature scheme is remembered (the least recent is forgotten first)
CLIENT_GRACE_S = 3.0  # a client away (disconnected) this long has its jobs dropped; one back sooner keeps them
SHUTDOWN_GRACE_S = 5.0  # how long a stop waits for the running job to notice its cancel
SHUTDOWN_LINGER_S = 2.0  # then how long the last answers may take to leave


REQUEST_TYPES = frozenset(t.msg_type for t in (Hello, Ping, StatusRequest, ColorizeRequest, Cancel))
"""The message types a client sends; the rest of MESSAGE_TYPES only a server sends."""


def _server_only(msg_type: str) -> str:
    return f"'{wire_text(msg_type)}' is sent by the server, not to it; send one of {', '.join(sorted(REQUEST_TYPES))}"


class Server:
    """Serve colorize requests until :meth:`stop` is called (or a signal handler calls it).

    Raises (from the constructor):
        ValueError: a non-local bind address without a key.
        zmq.ZMQError: the address cannot be bound (in use, bad endpoint).
        refcolor.models.UnknownModelError: the default model does not exist.
    """

    def __init__(self, config: ServerConfig) -> None:
        if not config.key and not is_local_address(config.bind):
            raise ValueError(
                f"refusing to listen on {config.bind} without a key: anyone who can reach it could use it. "
                "Drop --no-key (a key is then generated and written to the connection file), or bind 127.0.0.1."
            )
        self.config = config
        claim_address(config.bind)
        if config.connection_file is not None:
            claim_connection_file(config.connection_file)
        self.session = Session(config.key)
        self.server_id = uuid.uuid4().hex
        self.started = time.monotonic()
        self._stopping = threading.Event()
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._wake_recv, self._wake_send = socket.socketpair()
        self._wake_recv.setblocking(False)
        self._wake_send.setblocking(False)

        self.models = ModelCache(config.model, config.device, config.extra_models, config.model_options)
        self.default_model = self.models.load(config.model)
        self.auto_masks = masks.available()

        self._context: zmq.Context[Any] = zmq.Context()
        self._authenticator = self._start_authenticator(config.key)
        self.socket = self._context.socket(zmq.ROUTER)
        if config.key:
            # Peers authenticate in the ZMTP handshake (ZAP, PLAIN with a password derived from
            # the key), before they can send a byte of a message: libzmq buffers a whole
            # multipart message before it is readable, so a check after receipt comes too late.
            self.socket.setsockopt(zmq.PLAIN_SERVER, 1)
            self.socket.setsockopt(zmq.ZAP_DOMAIN, b"refcolor")
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a vanished client raises
        # A client keeps its routing id across reconnects; its new connection takes the id over
        # from a stale one (which a paused backend only notices late), so its jobs' answers follow it.
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # A send never blocks: a peer whose queue is full is not reading. Then only the final answer
        # of its job is kept (the outbox) and previews, pongs and the like are dropped.
        self.socket.setsockopt(zmq.SNDTIMEO, 0)
        self.socket.setsockopt(zmq.SNDHWM, SEND_HWM)
        self.socket.setsockopt(zmq.MAXMSGSIZE, config.max_frame_bytes)
        self.socket.setsockopt(zmq.HEARTBEAT_IVL, config.heartbeat_ms)
        self.socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * config.heartbeat_ms)
        self.socket.setsockopt(zmq.HEARTBEAT_TTL, 3 * config.heartbeat_ms)
        bind = config.bind[:-2] + ":*" if config.bind.endswith(":0") else config.bind
        self.socket.bind(bind)
        endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.address = endpoint.replace("://0.0.0.0:", "://127.0.0.1:")
        self._claimed = Claimed(self.address)
        self._claimed.bound()

        self.queue = JobQueue(config.max_queue)
        self.worker = Worker(
            self.queue, self.models.load, self._emit, config.preview_every, config.preview_size, config.max_job_seconds
        )
        self.abandoned_job = False  # set at shutdown: the worker was still inside a job
        self._seen: set[bytes] = set()  # signatures of recent messages: a replay is refused
        self._seen_order: collections.deque[tuple[float, bytes]] = collections.deque()
        # identity -> (give-up time, frames) of job answers waiting for a peer that is not reading
        self._outbox: dict[tuple[bytes, ...], collections.deque[tuple[float, list[Any]]]] = {}
        self._away: dict[tuple[bytes, ...], float] = {}  # identity -> when a send found it disconnected
        # identity -> the signature scheme of its last verified message: answers are signed alike
        # (a 1.4 client verifies only hmac-sha256)
        self._schemes: dict[tuple[bytes, ...], str] = {}
        self._throttle = Throttle(logger)

    def _start_authenticator(self, key: bytes) -> ThreadAuthenticator | None:
        if not key:
            return None
        zap_log = logging.getLogger("refcolor.service.zap")
        zap_log.setLevel(max(logging.INFO, zap_log.getEffectiveLevel()))  # its debug lines carry the password
        authenticator = ThreadAuthenticator(self._context, log=zap_log)
        authenticator.start()
        passwords = {TRANSPORT_USERNAME.decode(): transport_password(key).decode()}
        authenticator.configure_plain(domain="refcolor", passwords=passwords)
        return authenticator

    # --- lifecycle ----------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run until :meth:`stop`; then cancel what is left, close, and remove the connection file.

        Raises:
            OSError: the connection file cannot be written (its folder is not private, the disk is
                full...); everything is closed again first.
        """
        self.worker.start()
        try:
            if self.config.connection_file is not None:
                info = ConnectionInfo(
                    address=self.address, key=self.config.key, signature_scheme=self.session.scheme, pid=os.getpid()
                )
                self._claimed.connection_file = write_connection_file(info, self.config.connection_file)
        except OSError:
            self._shutdown()
            raise
        logger.info(
            "refcolor %s serving %s on %s (model %s on %s)",
            __version__,
            PROTOCOL_VERSION,
            self.address,
            self.default_model.info.name,
            self.default_model.info.device,
        )
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        poller.register(self._wake_recv, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                poller.poll(50 if self._outbox or self._away else 500)
                self._drain_socket()
                self._drain_events()
                self._flush_outbox()
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Ask the server to stop; safe from signal handlers and other threads."""
        self._stopping.set()
        self._wake()

    def _wake(self) -> None:
        # BlockingIOError: a wake-up is already pending; OSError: we are closing.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_send.send(b"\0")

    def _shutdown(self) -> None:
        """Answer every job with ``shutting_down`` at once, give the worker SHUTDOWN_GRACE_S to stop,
        then close. A job stuck in a long model step is abandoned (:attr:`abandoned_job`)."""
        logger.info("shutting down")
        for job in self.queue.close():
            self._send_error(job.identity, job.header, ErrorCode.SHUTTING_DOWN, "the backend is shutting down", job)
        running = self.queue.running
        if running is not None:
            running.cancel.set()
            self._send_error(
                running.identity, running.header, ErrorCode.SHUTTING_DOWN, "the backend is shutting down", running
            )
            running.answered = True  # whatever the worker reports for it now is not sent
        self.worker.join(timeout=SHUTDOWN_GRACE_S)
        self.abandoned_job = self.worker.is_alive()
        if self.abandoned_job:
            logger.warning("the running job did not stop within %.0f s; abandoning it", SHUTDOWN_GRACE_S)
        self._drain_events()
        deadline = time.monotonic() + SHUTDOWN_LINGER_S
        while self._outbox and time.monotonic() < deadline:  # answers to peers that were slow to read
            self._flush_outbox()
            time.sleep(0.02)
        self.socket.close(linger=int(SHUTDOWN_LINGER_S * 1000))  # let the last answers reach their clients
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()
        self._wake_recv.close()
        self._wake_send.close()
        self._claimed.release()  # the ipc socket file and connection file, if they are still ours

    # --- incoming -----------------------------------------------------------------------------

    def _drain_socket(self) -> None:
        while int(self.socket.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            frames = self.socket.recv_multipart(copy=False)
            try:
                self._handle(frames)
            except Exception:  # one bad message must never stop the service
                logger.exception("internal error handling a message")
                identity = self._identity_of(frames)
                self._send_error(identity, None, ErrorCode.INTERNAL_ERROR, "the backend failed to handle a message")

    def _first_time(self, signature: bytes) -> bool:
        """Whether a verified message's ``signature`` (the frame after its delimiter) is new. Kept:
        the signatures of the last REPLAY_WINDOW_S (older messages are refused by their date), at
        most REPLAY_HISTORY."""
        if signature in self._seen:
            return False
        now = time.monotonic()
        self._seen.add(signature)
        self._seen_order.append((now, signature))
        while self._seen_order and (
            len(self._seen_order) > REPLAY_HISTORY or self._seen_order[0][0] < now - 2 * REPLAY_WINDOW_S
        ):
            self._seen.discard(self._seen_order.popleft()[1])
        return True

    @staticmethod
    def _stale(header: Header) -> str | None:
        """Why a keyed message's ``date`` is outside the replay window (None when it is inside)."""
        try:
            sent = datetime.fromisoformat(header.date.replace("Z", "+00:00"))
        except ValueError:
            return f"header.date {wire_text(header.date, 40)} is not an ISO 8601 time"
        if sent.tzinfo is None:
            return f"header.date {wire_text(header.date, 40)} has no time zone; send UTC (…+00:00)"
        skew = (datetime.now(timezone.utc) - sent).total_seconds()
        if abs(skew) <= REPLAY_WINDOW_S:
            return None
        when = "old" if skew > 0 else "in the future"
        return (
            f"header.date is {abs(skew):.0f} s {when}; a signed message is accepted within {REPLAY_WINDOW_S:.0f} s "
            "of the server's clock (a replay, or a clock that is wrong)"
        )

    def _identity_of(self, frames: list[Any]) -> tuple[bytes, ...]:
        try:
            identity, _ = self.session.split_identities(frames)
            return identity
        except ProtocolError:
            return (bytes(frames[0]),)

    def _handle(self, frames: list[Any]) -> None:
        try:
            msg = self.session.deserialize(frames)
        except ProtocolError as exc:
            # Only read the header of a message whose signature checked out.
            trusted = exc.code not in (ErrorCode.BAD_FRAMES, ErrorCode.BAD_SIGNATURE)
            parent = self.session.peek_header(frames) if trusted else None
            if parent is not None and parent.msg_type in MESSAGE_TYPES and parent.msg_type not in REQUEST_TYPES:
                # A type only a server sends: say so, rather than how its content is malformed.
                exc = ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, _server_only(parent.msg_type))
            self._throttle.warn(
                f"refused {exc.code.value}", "refused a message: %s", wire_text(exc.message, 200), level=logging.INFO
            )
            # Signed in the scheme the message claims, so that its sender can read the answer.
            scheme = self.session.claimed_scheme(frames)
            self._send_error(self._identity_of(frames), parent, exc.code, exc.message, hint=exc.hint, scheme=scheme)
            return
        stale = self._stale(msg.header) if self.config.key else None
        if stale is not None:
            self._throttle.warn("stale", "refused a message: %s", stale)
            self._send_error(
                msg.identities, msg.header, ErrorCode.BAD_HEADER, stale, hint=CLOCK_HINT, scheme=msg.scheme or None
            )
            return
        if self.config.key and not self._first_time(bytes(frames[len(msg.identities) + 1])):
            self._throttle.warn("replay", "refused a replayed message (%s)", wire_text(msg.msg_type))
            self._send_error(
                msg.identities, msg.header, ErrorCode.BAD_SIGNATURE,
                "this signed message was received before (a replay); every message must be new",
                scheme=msg.scheme or None,
            )  # fmt: skip
            return
        self._away.pop(msg.identities, None)  # it is back (or never left)
        self._remember_scheme(msg.identities, msg.scheme)
        content = msg.content
        try:
            if isinstance(content, Hello):
                name, version = wire_text(content.client_name or "a client"), wire_text(content.client_version)
                self._throttle.warn(f"hello {name}", "hello from %s %s", name, version, level=logging.INFO)
                caps = replies.capabilities(
                    self.config, self.default_model.info, self.server_id, self.models.names(), self.auto_masks
                )
                self._reply(msg, caps)
            elif isinstance(content, Ping):
                self._reply(msg, Pong(content.nonce, self.server_id, time.monotonic() - self.started))
            elif isinstance(content, StatusRequest):
                self._reply(msg, self._status_for(msg.identities))
            elif isinstance(content, ColorizeRequest):
                self._submit(msg, content)
            elif isinstance(content, Cancel):
                self._cancel(msg, content.job_id)
            else:
                raise ProtocolError(ErrorCode.UNKNOWN_MESSAGE_TYPE, _server_only(msg.msg_type))
        except ProtocolError as exc:
            self._throttle.warn(
                f"refused {exc.code.value}",
                "refused %s %s: %s",
                wire_text(msg.msg_type),
                wire_text(msg.header.msg_id),
                wire_text(exc.message, 200),
                level=logging.INFO,
            )
            self._send_error(msg.identities, msg.header, exc.code, exc.message, hint=exc.hint)

    def _submit(self, msg: Message, request: ColorizeRequest) -> None:
        cfg = self.config
        if self._stopping.is_set():
            raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the backend is shutting down")
        model = replies.admit(request, msg.buffers, cfg, self.models.names(), self.auto_masks)
        if not JOB_ID.fullmatch(msg.header.msg_id):  # it becomes the job's id, in logs and replies
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                "header.msg_id of a colorize_request must be 1 to 128 letters, digits and -_.: "
                f"(got {wire_text(msg.header.msg_id, 40)})",
            )
        if any(job.job_id == msg.header.msg_id for job in [*self.queue.waiting(), self.queue.running] if job):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"header.msg_id {msg.header.msg_id!r} is already a job's id; every message needs a new msg_id",
            )
        params = request.params
        seed = resolve_seed(params)
        job = QueuedJob(request, msg.header, msg.identities, msg.buffers, model, seed)
        position = self.queue.put(job)
        if position is None:
            raise ProtocolError(
                ErrorCode.QUEUE_FULL, f"{self.config.max_queue} jobs are already waiting; the queue is full"
            )
        logger.info("job %s queued at position %d (%s, %d steps)", job.job_id, position, model, params.steps)
        self._reply(msg, JobAccepted(job.job_id, position))

    def _cancel(self, msg: Message, job_id: str) -> None:
        # Only the client that sent a job may cancel it; to any other the job is unknown.
        waiting = self.queue.remove(job_id, msg.identities)
        running = self.queue.running
        if waiting is not None:
            outcome = CancelOutcome.DROPPED
        elif running is not None and running.job_id == job_id and running.identity == msg.identities:
            running.cancel.set()
            outcome = CancelOutcome.STOPPING
        else:
            outcome = CancelOutcome.UNKNOWN
        self._reply(msg, CancelReply(job_id, outcome))
        if waiting is not None:
            logger.info("job %s dropped from the queue", job_id)
            self._send_error(
                waiting.identity, waiting.header, ErrorCode.CANCELLED, f"job {job_id} was cancelled", waiting
            )
            self._send_positions()

    def _status_for(self, identity: tuple[bytes, ...]) -> Status:
        running = self.queue.running
        waiting = self.queue.waiting()
        jobs: list[JobState] = []
        mine_running = None
        if running is not None and running.identity == identity:
            mine_running = JobState(running.job_id, JobPhase.RUNNING, 0, running.step, running.total)
            jobs.append(mine_running)
        ahead = 1 if running is not None else 0
        for index, job in enumerate(waiting):
            if job.identity == identity:
                jobs.append(JobState(job.job_id, JobPhase.QUEUED, index + ahead))
        return Status(self.server_id, len(waiting), mine_running, tuple(jobs), busy=running is not None)

    # --- outgoing -----------------------------------------------------------------------------

    def _reply(self, request: Message, content: Any, buffers: tuple[Buffer, ...] = ()) -> bool:
        return self._send(request.identities, content, request.header, buffers)

    def _send(
        self,
        identity: tuple[bytes, ...],
        content: Any,
        parent: Header | None,
        buffers: tuple[Buffer, ...] = (),
        keep: bool = False,
        scheme: str | None = None,
    ) -> bool:
        """Send without blocking, signed in ``scheme``, else in the scheme the peer last signed with.

        For a peer that is not reading or is away, a message with ``keep`` (a job's final answer)
        waits in the outbox; any other is dropped. Returns whether it went out."""
        msg = self.session.msg(content, parent, buffers, identity)
        frames = self.session.serialize(msg, scheme or self._schemes.get(identity))
        sent = False if identity in self._outbox else self._send_now(identity, frames)
        if sent:
            return True
        if keep:
            self._outbox.setdefault(identity, collections.deque()).append((time.monotonic() + OUTBOX_SECONDS, frames))
        elif sent is False:
            self._throttle.warn("not reading", "dropped a %s message: its client is not reading", msg.msg_type)
        return False

    def _send_now(self, identity: tuple[bytes, ...], frames: list[Any]) -> bool | None:
        """True: sent; False: the peer's queue is full; None: the peer is not connected (away)."""
        try:
            self.socket.send_multipart(frames, copy=False)
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                self._away.setdefault(identity, time.monotonic())
                return None
            if exc.errno == zmq.EAGAIN:
                return False
            raise
        self._away.pop(identity, None)
        return True

    def _flush_outbox(self) -> None:
        """Send what waits for peers that were not reading or away, oldest first, as far as each now
        takes; forget the jobs of peers away longer than CLIENT_GRACE_S."""
        now = time.monotonic()
        for identity in list(self._outbox):
            waiting = self._outbox[identity]
            while waiting and self._send_now(identity, waiting[0][1]):
                waiting.popleft()
            while waiting and waiting[0][0] < now:
                waiting.popleft()
                logger.warning("dropped a job's answer: its client read nothing for %.0f s", OUTBOX_SECONDS)
            if not waiting:
                del self._outbox[identity]
        for identity, since in list(self._away.items()):
            if now - since > CLIENT_GRACE_S:
                del self._away[identity]
                self._client_gone(identity)

    def _send_error(
        self,
        identity: tuple[bytes, ...],
        parent: Header | None,
        code: ErrorCode,
        message: str,
        job: QueuedJob | None = None,
        hint: str | None = None,
        scheme: str | None = None,
    ) -> None:
        content = Error(code.value, message, DEFAULT_HINTS[code] if hint is None else hint, job.job_id if job else "")
        self._send(identity, content, parent, keep=job is not None, scheme=scheme)

    def _remember_scheme(self, identity: tuple[bytes, ...], scheme: str) -> None:
        if not scheme:
            return
        self._schemes.pop(identity, None)
        self._schemes[identity] = scheme  # the most recent last
        if len(self._schemes) > SCHEME_MEMORY:
            del self._schemes[next(iter(self._schemes))]

    def _client_gone(self, identity: tuple[bytes, ...]) -> None:
        """A client disconnected: drop its waiting jobs and answers and stop its running one."""
        self._outbox.pop(identity, None)
        for job in self.queue.waiting():
            if job.identity == identity and self.queue.remove(job.job_id) is not None:
                logger.info("job %s dropped: its client disconnected", job.job_id)
        running = self.queue.running
        if running is not None and running.identity == identity and not running.cancel.is_set():
            logger.info("job %s cancelled: its client disconnected", running.job_id)
            running.cancel.set()

    def _send_positions(self) -> None:
        """Tell every waiting job's client where it now stands (also finds vanished clients)."""
        ahead = 1 if self.queue.running is not None else 0
        waiting = self.queue.waiting()
        for index, job in enumerate(waiting):
            state = JobState(job.job_id, JobPhase.QUEUED, index + ahead)
            self._send(job.identity, Status(self.server_id, len(waiting), None, (state,), True), job.header)

    # --- worker events ------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        """Called on the worker thread: hand the event to the server thread."""
        self._events.put(event)
        self._wake()

    def _drain_events(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_recv.recv(4096):
                pass
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        job = event.job
        if job.answered:
            return
        if isinstance(event, Started):
            total = job.request.params.steps * job.request.params.variations
            self._send(job.identity, Progress(job.job_id, 0, total), job.header)
            self._send_positions()
        elif isinstance(event, Stepped):
            if job.cancel.is_set():
                return
            content, buffers = replies.progress(
                job.job_id, event.step, event.total, event.variation, event.preview, event.stage, event.fraction
            )
            self._send(job.identity, content, job.header, buffers)
        elif isinstance(event, Finished):
            result, result_buffers = replies.result(
                job.job_id, job.model, event.layers, event.elapsed_s, event.masks, event.age
            )
            self._send(job.identity, result, job.header, result_buffers, keep=True)
        elif isinstance(event, Failed):
            code = event.code
            if code is ErrorCode.CANCELLED and self._stopping.is_set():
                code = ErrorCode.SHUTTING_DOWN
            self._send_error(job.identity, job.header, code, event.message, job)
