"""The ``refcolor`` command. Each subcommand is a module of this package with ``add_arguments``
and ``run``; only the one being run is imported, so ``refcolor --help`` loads no numpy or torch."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from refcolor import __version__

# name -> (help, module)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("run the backend service", "refcolor.cli.serve"),
    "ping": ("print a running backend's hello (exit 0 only if it answers)", "refcolor_protocol.cli"),
    "colorize": ("colorize a sketch from a reference (writes PNG layers)", "refcolor.cli.colorize"),
    "batch": ("colorize every frame of a shot from one reference (resumable)", "refcolor.cli.batch"),
    "install-plugin": ("install the Krita plugin into a Krita profile", "refcolor.cli.install_plugin"),
    "data": ("build the training data set from Debian packages", "refcolor.cli.data"),
    "eval": ("evaluate models and baselines on held-out triplets", "refcolor.cli.eval"),
    "convert": ("convert an official ColorizeDiffusion checkpoint", "refcolor.cli.convert"),
    "oracle": ("check a checkpoint against an official oracle file", "refcolor.cli.oracle"),
    "models": ("download and list models", "refcolor.cli.models"),
    "train": ("train a model config (resumable) and export it", "refcolor.cli.train"),
    "gpu": ("pack data for, train on, and unpack results from a borrowed GPU", "refcolor.cli.gpu"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; the arguments of the subcommand named in ``argv`` (if any) are loaded with it."""
    words = sys.argv[1:] if argv is None else argv
    chosen = next((w for w in words if w in COMMANDS), None)
    parser = argparse.ArgumentParser(prog="refcolor", description="Reference-based sketch colorization.")
    parser.add_argument("--version", action="version", version=f"refcolor {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, module) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            cli = importlib.import_module(module)
            cli.add_arguments(sub)
            sub.set_defaults(func=cli.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
