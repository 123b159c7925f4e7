"""Output conventions shared by every ``agile`` subcommand.

- ``--json`` prints one JSON document on stdout, nothing else.
- Exit 0 on success, 1 on a rejected input or failed check, 2 on a usage error.
- Errors go to stderr as one line that names the file or field at fault and the fix;
  never a traceback, never key material.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


class CommandFailed(Exception):
    """Raised by a subcommand to end with a one-line message and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_REJECTED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def emit_json(document: Any) -> None:
    """Print ``document`` as JSON on stdout (sorted keys keep diffs of outputs readable)."""
    json.dump(document, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def fail(message: str, exit_code: int = EXIT_REJECTED) -> NoReturn:
    """End the command with a one-line error on stderr."""
    raise CommandFailed(message, exit_code)


def print_error(message: str) -> None:
    """Write one line, prefixed with the program name, to stderr."""
    line = " ".join(message.split("\n"))
    sys.stderr.write(f"agile: error: {line}\n")
