"""The ``refcolor`` command: serve, ping, and (with later issues) colorize, train, eval, convert."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from refcolor import __version__
from refcolor.model_options import add_model_options, apply_model_options
from refcolor_protocol.cli import add_ping_arguments, run_ping
from refcolor_protocol.connection import default_connection_file, new_key
from refcolor_protocol.schema import ParamSpec


def _limit_type(spec: ParamSpec) -> Callable[[str], int]:
    """argparse type of the server limit on ``spec``: an integer within the parameter's own range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not spec.low <= value <= spec.high:
            raise argparse.ArgumentTypeError(f"{value} is out of range; use {spec.low:g} to {spec.high:g}")
        return value

    return parse


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from refcolor.server import DEFAULT_BIND, LIMITED_PARAMS, ServerConfig

    defaults = ServerConfig()
    serve = commands.add_parser("serve", help="run the backend service")
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
    for spec in LIMITED_PARAMS:  # the server limits that cap a colorization parameter
        serve.add_argument(
            "--" + spec.limit.replace("_", "-"),
            type=_limit_type(spec),
            default=getattr(defaults, spec.limit),
            help=f"most {spec.name} a job may ask for, at most {spec.high:g} (default {getattr(defaults, spec.limit)})",
        )
    serve.add_argument(
        "--no-key", action="store_true", help="do not sign messages (only allowed on 127.0.0.1 or ipc://)"
    )
    add_model_options(serve)
    serve.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    import zmq

    from refcolor.models import UnknownModelError
    from refcolor.server import LIMITED_PARAMS, Server, ServerConfig

    config = ServerConfig(
        bind=args.bind,
        key=b"" if args.no_key else new_key(),
        connection_file=args.connection_file or default_connection_file(),
        model=args.model,
        device=args.device,
        max_pixels=args.max_pixels,
        max_queue=args.max_queue,
        **{spec.limit: getattr(args, spec.limit) for spec in LIMITED_PARAMS},
    )
    apply_model_options(args)
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
    print(
        f"refcolor backend listening on {server.address}; connection file {config.connection_file}",
        flush=True,
    )
    server.serve_forever()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refcolor", description="Reference-based sketch colorization.")
    parser.add_argument("--version", action="version", version=f"refcolor {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    ping = commands.add_parser("ping", help="print a running backend's hello (exit 0 only if it answers)")
    add_ping_arguments(ping)
    ping.set_defaults(func=run_ping)
    _add_lazy(commands, "colorize", "colorize a sketch from a reference (writes PNG layers)", "refcolor.colorize_cli")
    _add_lazy(commands, "install-plugin", "install the Krita plugin into a Krita profile", "refcolor.install_plugin")
    _add_lazy(commands, "data", "build the training data set from Debian packages", "refcolor.data_cli")
    _add_lazy(commands, "eval", "evaluate models and baselines on held-out triplets", "refcolor.eval_cli")
    _add_lazy(commands, "convert", "convert an official ColorizeDiffusion checkpoint", "refcolor.convert_cli")
    _add_lazy(commands, "oracle", "check a checkpoint against an official oracle file", "refcolor.oracle_cli")
    _add_lazy(commands, "models", "download and list models", "refcolor.models_cli")
    _add_lazy(commands, "train", "train a model config (resumable) and export it", "refcolor.train_cli")
    _add_lazy(commands, "gpu", "pack data for, train on, and unpack results from a borrowed GPU", "refcolor.gpu_cli")
    return parser


def _add_lazy(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str, module: str
) -> None:
    """A subcommand whose module (and its heavy imports) loads only when it is used."""
    import importlib

    cli = importlib.import_module(module)
    parser = commands.add_parser(name, help=help_text, description=help_text)
    cli.add_arguments(parser)
    parser.set_defaults(func=cli.run)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
