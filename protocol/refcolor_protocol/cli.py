"""``python -m refcolor_protocol ping``: is a backend there, and what does it offer?

Uses nothing but this package, so it is also what the Krita plugin's diagnostics run.
"""

from __future__ import annotations

import argparse
import sys

from .client import Client
from .connection import default_connection_file, read_connection_file
from .errors import RemoteError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--connect", metavar="ADDR", help="endpoint, e.g. tcp://127.0.0.1:5557")
    where.add_argument(
        "--connection-file",
        metavar="F",
        help=f"a backend's connection file (default: {default_connection_file()})",
    )
    parser.add_argument("--key", default="", help="HMAC key for --connect (none if the server runs with --no-key)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer (default 5)")


def run(args: argparse.Namespace) -> int:
    """Print the server's capabilities; exit status 0 only if it answered."""
    if args.connect:
        address, key, source = args.connect, args.key.encode("ascii"), args.connect
    else:
        path = args.connection_file or str(default_connection_file())
        try:
            info = read_connection_file(path)
        except FileNotFoundError:
            print(
                f"refcolor: no connection file at {path}: no backend is running there. "
                "Start one with `refcolor serve`, or give --connect tcp://HOST:PORT.",
                file=sys.stderr,
            )
            return 1
        except (OSError, ValueError) as exc:
            print(f"refcolor: cannot use connection file {path}: {exc}", file=sys.stderr)
            return 1
        address, key, source = info.address, info.key, f"{info.address} (from {path})"
    with Client(address, key, client_name="refcolor-ping") as client:
        try:
            caps = client.hello(timeout=args.timeout)
        except RemoteError as exc:
            print(f"refcolor: backend at {source} did not answer properly: {exc}", file=sys.stderr)
            return 1
    limits = caps.limits
    print(f"backend       {source}")
    print(f"server        refcolor {caps.server_version}, protocol {caps.protocol_version}, id {caps.server_id}")
    print(f"model         {caps.model.name} ({caps.model.kind}) on {caps.model.device}")
    print(f"models        {', '.join(caps.models)}")
    print(f"modes         {', '.join(caps.modes)}")
    print(f"schedulers    {', '.join(caps.schedulers)}")
    print(f"auto masks    {', '.join(caps.auto_masks) or 'none'}")
    print(
        f"limits        max_pixels={limits.max_pixels} max_queue={limits.max_queue} "
        f"max_steps={limits.max_steps} max_variations={limits.max_variations}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refcolor_protocol")
    commands = parser.add_subparsers(dest="command", required=True)
    ping = commands.add_parser("ping", help="print a running backend's hello")
    add_arguments(ping)
    args = parser.parse_args(argv)
    return run(args)
