"""The ``agile`` command.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; the module adds its parser and sets ``handler`` to a function
``(args) -> int``. See ``agile.cli._output`` for the conventions every command follows.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from agile import AgileError, __version__
from agile.cli._output import EXIT_OK, EXIT_REJECTED, CommandFailed, print_error

# Subcommand modules, in the order that `agile --help` lists them.
_COMMANDS: tuple[str, ...] = (
    "agile.cli.demo",
    "agile.cli.policy",
    "agile.cli.pqc",
    "agile.cli.qkd",
    "agile.cli.net",
    "agile.cli.kme",
    "agile.cli.migrate",
    "agile.cli.keys",
    "agile.cli.peer",
    "agile.cli.tls",
    "agile.cli.bench",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="agile",
        description="Hybrid PQC + QKD key establishment with crypto agility.",
    )
    parser.add_argument("--version", action="version", version=f"agile {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in _COMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except CommandFailed as exc:
        print_error(str(exc))
        return exc.exit_code
    except AgileError as exc:
        print_error(str(exc))
        return EXIT_REJECTED
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`agile pqc list | head`): what it wanted it has. Point stdout
        # at /dev/null so that the interpreter's own flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK
    return code if code is not None else EXIT_OK
