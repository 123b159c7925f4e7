"""Parse configuration documents (TOML, JSON, YAML) and word their problems, located.

Shared by the two loaders whose errors read ``FILE:LINE:COL: field.path: message``:
``qkd.network.loader`` (network files) and ``agile.policy.loader`` (policy files). It lives in
``qkd``, the lower layer, because ``qkd`` may not import ``agile``; it knows neither schema.
Positions of fields come from :mod:`qkd._positions`.

:func:`parse` returns the parsed data and the positions of its fields, or raises
:class:`DocumentSyntaxError` carrying one located problem. The other helpers turn pydantic's
errors into one-line messages.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic_core import ErrorDetails

from qkd import _positions

__all__ = [
    "DocumentSyntaxError",
    "FieldPath",
    "Format",
    "describe",
    "dotted",
    "error_message",
    "one_line",
    "parse",
]

Format = Literal["toml", "json", "yaml"]
FieldPath = tuple[str | int, ...]

_RANGE_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)


class DocumentSyntaxError(Exception):
    """The text does not parse; ``line``, ``col``, ``path`` and ``message`` say where and why."""

    def __init__(self, line: int, col: int, path: str, message: str) -> None:
        super().__init__(f"{line}:{col}: {path}: {message}")
        self.line, self.col, self.path, self.message = line, col, path, message


def read_text(path: Path, *, what: str, max_bytes: int, limit: str) -> str:
    """The UTF-8 text of the file at ``path``, for the ``what`` loader (``"policy"``, ...).

    A file over ``max_bytes`` ("file is N bytes; " + ``limit``), one that cannot be read, or
    one that is not UTF-8 raises :class:`DocumentSyntaxError` at its line and column, with an
    empty path for the caller to name its document's root.
    """
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentSyntaxError(1, 1, "", f"file is {size} bytes; {limit}")
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DocumentSyntaxError(1, 1, "", f"cannot read the {what} file: {reason}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DocumentSyntaxError(line, col, "", "the file is not UTF-8 text") from None


def parse(
    fmt: Format, text: str, *, root: str, yaml_missing: str
) -> tuple[Any, _positions.Positions]:
    """Parse ``text``; syntax problems raise :class:`DocumentSyntaxError`.

    ``root`` names the whole document in a problem's path (``<policy>``); ``yaml_missing`` is
    the message when PyYAML is not installed.
    """
    if fmt == "toml":
        return _parse_toml(text)
    if fmt == "json":
        return _parse_json(text)
    return _parse_yaml(text, root=root, yaml_missing=yaml_missing)


def _parse_toml(text: str) -> tuple[Any, _positions.Positions]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, col, message = _split_toml_error(str(exc), text)
        raise DocumentSyntaxError(line, col, "(syntax)", message) from None
    return data, _positions.toml_positions(text)


def _split_toml_error(message: str, text: str) -> tuple[int, int, str]:
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        return int(match.group(1)), int(match.group(2)), message[: match.start()]
    match = re.search(r"\s*\(at end of document\)$", message)
    if match:
        lines = text.split("\n")
        return (
            len(lines),
            len(lines[-1]) + 1,
            message[: match.start()] + " at the end of the document",
        )
    return 1, 1, message


def _parse_json(text: str) -> tuple[Any, _positions.Positions]:
    def constant(name: str) -> None:
        raise ValueError(f"{name} is not a valid JSON number")

    try:
        data = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise DocumentSyntaxError(exc.lineno, exc.colno, "(syntax)", exc.msg) from None
    except ValueError as exc:
        raise DocumentSyntaxError(1, 1, "(syntax)", str(exc)) from None
    return data, _positions.json_positions(text)


def _parse_yaml(text: str, *, root: str, yaml_missing: str) -> tuple[Any, _positions.Positions]:
    try:
        import yaml  # optional dependency, imported only when a YAML document is read
    except ImportError:
        raise DocumentSyntaxError(1, 1, root, yaml_missing) from None
    try:
        positions = _positions.yaml_positions(text)
        if positions.problems:
            return {}, positions
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise DocumentSyntaxError(line, col, "(syntax)", message or "invalid YAML") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = f"character {exc.character!r} is not allowed in YAML ({exc.reason})"
        raise DocumentSyntaxError(line, col, "(syntax)", message) from None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        # Non-marked errors: e.g. a tag that names an unsupported Python object.
        raise DocumentSyntaxError(1, 1, "(syntax)", f"invalid YAML: {exc}") from None
    return data, positions


def error_message(error: ErrorDetails, *, docs: str, ranges: bool = False) -> str:
    """One pydantic error as a message: unknown fields point at ``docs``; a wrong type or
    literal (and, with ``ranges``, a number out of range) says what it got."""
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        return f"unknown field {loc[-1]!r}; check its spelling against {docs}"
    if kind == "missing":
        return "required field is missing"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    shown = kind.endswith("_type") or kind in {"literal_error", "enum"}
    if shown or (ranges and kind in _RANGE_ERRORS):
        message = f"{message} (got {describe(error.get('input'))})"
    return message


def describe(value: object) -> str:
    """A short description of an input value for a message (never a long dump)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    return {dict: "a table", list: "an array", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def dotted(path: FieldPath, root: str) -> str:
    """``("links", 0, "a")`` as ``links.0.a``; the empty path as ``root``."""
    return ".".join(str(part) for part in path) or root


def one_line(message: str) -> str:
    """A parser's message, which sometimes spans several lines, as one line."""
    return re.sub(r"\s*[\r\n]+\s*", " ", message).strip()
