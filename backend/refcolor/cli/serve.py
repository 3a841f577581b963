"""``refcolor serve``: run the backend service."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from refcolor.models.options import add_model_options, model_options
from refcolor.service.config import DEFAULT_BIND, LIMITED_PARAMS, ServerConfig
from refcolor_protocol.connection import default_connection_file, new_key
from refcolor_protocol.schema import ParamSpec


def _limit_type(spec: ParamSpec) -> Callable[[str], int]:
    """argparse type of the server limit on ``spec``: an integer within the parameter's own range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        low, high = spec.low or 0, spec.high or 0  # a limited parameter always has a range
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; use {spec.low:g} to {spec.high:g}")
        return value

    return parse


def add_arguments(serve: argparse.ArgumentParser) -> None:
    defaults = ServerConfig()
    serve.add_argument("--bind", default=DEFAULT_BIND, help=f"ZeroMQ endpoint (default {DEFAULT_BIND}; port 0 = any)")
    serve.add_argument(
        "--connection-file",
        type=Path,
        default=None,
        help=f"where to write it (default {default_connection_file()})",
    )
    serve.add_argument("--model", default=defaults.model, help=f"default model (default {defaults.model})")
    serve.add_argument("--device", default=defaults.device, help="cpu, cuda, cuda:1, ... (default cpu)")
    serve.add_argument("--max-pixels", type=int, default=defaults.max_pixels, help="largest image accepted")
    serve.add_argument("--max-queue", type=int, default=defaults.max_queue, help="most jobs waiting at once")
    serve.add_argument(
        "--max-job-seconds",
        type=float,
        default=defaults.max_job_seconds,
        help=f"stop a job that runs longer than this many seconds, with job_timed_out "
        f"(default {defaults.max_job_seconds:g}; 0 = never)",
    )
    for spec in LIMITED_PARAMS:  # the server limits that cap a colorization parameter
        serve.add_argument(
            "--" + spec.limit.replace("_", "-"),
            type=_limit_type(spec),
            default=getattr(defaults, spec.limit),
            help=f"most {spec.name} a job may ask for, at most {spec.high:g} (default {getattr(defaults, spec.limit)})",
        )
    serve.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="stop when this process ends, e.g. the paint app that started the backend "
        "(default: $REFCOLOR_PARENT_PID, if set)",
    )
    serve.add_argument(
        "--no-key", action="store_true", help="do not sign messages (only allowed on 127.0.0.1 or ipc://)"
    )
    add_model_options(serve)


def run(args: argparse.Namespace) -> int:
    import zmq

    from refcolor.models import UnknownModelError
    from refcolor.service.parent import is_alive, parent_from_env, watch_parent
    from refcolor.service.server import Server

    config = ServerConfig(
        bind=args.bind,
        key=b"" if args.no_key else new_key(),
        connection_file=args.connection_file or default_connection_file(),
        model=args.model,
        device=args.device,
        max_pixels=args.max_pixels,
        max_queue=args.max_queue,
        max_job_seconds=args.max_job_seconds,
        **{spec.limit: getattr(args, spec.limit) for spec in LIMITED_PARAMS},
        model_options=model_options(args),
    )
    parent = args.parent_pid or parent_from_env()
    if parent is not None and not is_alive(parent):
        print(f"refcolor serve: the process that started it (pid {parent}) has already ended", file=sys.stderr)
        return 2
    try:
        server = Server(config)
    except (ValueError, UnknownModelError, FileNotFoundError) as exc:
        print(f"refcolor serve: {exc}", file=sys.stderr)
        return 2
    except zmq.ZMQError as exc:
        hint = " Is another backend running? (refcolor ping)" if exc.errno == zmq.EADDRINUSE else ""
        print(f"refcolor serve: cannot listen on {args.bind}: {exc}.{hint}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    if parent is not None:
        watch_parent(parent, server.stop)
    print(
        f"refcolor backend listening on {server.address}; connection file {config.connection_file}",
        flush=True,
    )
    try:
        server.serve_forever()
    except OSError as exc:  # the connection file could not be written; the message says why
        print(f"refcolor serve: {exc}", file=sys.stderr)
        return 2
    if server.abandoned_job:
        # The worker thread is still inside a model step (native code that cannot be interrupted).
        # Everything is answered, closed and removed; end now rather than let the interpreter's
        # exit wait for it or tear its threads down under it (that ended in SIGABRT).
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0
