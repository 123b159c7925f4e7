"""Read network files (TOML, JSON, YAML) into a validated :class:`~qkd.network.model.Network`.

Every problem is reported at once and located as ``FILE:LINE:COL: field.path: message``:
syntax errors where the parser found them, validation and cross-reference errors at the field
they concern (or, for a missing field, at the table that should hold it). The positions come
from :mod:`qkd._documents` and :mod:`qkd._positions`, which ``agile``'s policy loader uses too.

Anything wrong with a file raises :class:`NetworkFileError`; nothing else escapes, whatever
the bytes (a fuzz test holds the loader to that).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from qkd import _documents
from qkd._errors import QKDError
from qkd.network.model import LINK_KINDS, PLANNED_LATER, Network, cross_reference_problems

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "NetworkFileError",
    "NetworkProblem",
    "load_network",
    "network_from_dict",
    "parse_network",
]

Format = _documents.Format
FieldPath = _documents.FieldPath

MAX_DOCUMENT_BYTES = 64 << 20
"""A network file of more than 64 MiB is refused before parsing."""

_SUFFIXES: dict[str, Format] = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_ROOT = "<network>"
_YAML_MISSING = "YAML network files need PyYAML: pip install 'qkd-agile[yaml]' (or use TOML)"
_LINK_TAGS = frozenset({*LINK_KINDS, *PLANNED_LATER})


@dataclass(frozen=True)
class NetworkProblem:
    """One problem in a network file, located: ``FILE:LINE:COL: field.path: message``."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"


class NetworkFileError(QKDError, ValueError):
    """A network file is invalid; ``problems`` lists every problem found, located."""

    def __init__(self, problems: Iterable[NetworkProblem]) -> None:
        self.problems: tuple[NetworkProblem, ...] = tuple(problems)
        count = len(self.problems)
        summary = "; ".join(str(p) for p in self.problems)
        super().__init__(f"invalid network ({count} problem{'s' if count != 1 else ''}): {summary}")


def load_network(path: str | os.PathLike[str]) -> Network:
    """Load and validate a network file; the format follows the suffix.

    Raises :class:`NetworkFileError` carrying every problem found.

    Example::

        >>> net = load_network("docs/networks/metro-ring.toml")  # doctest: +SKIP
        >>> net.network.name
        'metro-ring'
    """
    label = str(path)
    file = Path(path)
    fmt = _SUFFIXES.get(file.suffix.lower())
    if fmt is None:
        raise NetworkFileError(
            [
                _problem(
                    label, 1, 1, _ROOT, f"unknown format {file.suffix!r}; use .toml, .json or .yaml"
                )
            ]
        )
    try:
        text = _documents.read_text(
            file, what="network", max_bytes=MAX_DOCUMENT_BYTES, limit="at most 64 MiB"
        )
    except _documents.DocumentSyntaxError as exc:
        raise NetworkFileError([_problem(label, exc.line, exc.col, _ROOT, exc.message)]) from None
    return parse_network(text, filename=label, format=fmt)


def parse_network(text: str, *, filename: str = "<string>", format: Format = "toml") -> Network:
    """Validate a network given as text in ``format``."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise NetworkFileError([_problem(filename, 1, 1, _ROOT, "the document is over 64 MiB")])
    text = text.removeprefix("\ufeff")
    try:
        data, positions = _documents.parse(
            format,
            text,
            root=_ROOT,
            yaml_missing=_YAML_MISSING,
        )
    except _documents.DocumentSyntaxError as exc:
        raise NetworkFileError(
            [_problem(filename, exc.line, exc.col, exc.path, exc.message)]
        ) from None
    except RecursionError:
        raise NetworkFileError(
            [_problem(filename, 1, 1, _ROOT, "the document is nested too deeply")]
        ) from None
    problems = [
        _problem(filename, line, col, _dotted(path), message)
        for path, line, col, message in positions.problems
    ]
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        problems.append(
            _problem(filename, 1, 1, _ROOT, f"the document is {kind}; expected a table of fields")
        )
    if problems:
        raise NetworkFileError(problems)
    return _validate(data, positions.at, filename)


def network_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Network:
    """Validate a network given as a mapping (no positions: problems are located at 1:1)."""
    return _validate(data, {}, source)


def _validate(data: Any, where: dict[FieldPath, tuple[int, int]], file: str) -> Network:
    try:
        network = Network.model_validate(data)
    except ValidationError as exc:
        problems = [_locate(where, file, _error_path(e), _error_message(e)) for e in exc.errors()]
        raise NetworkFileError(_ordered(problems)) from None
    except RecursionError:
        raise NetworkFileError(
            [_problem(file, 1, 1, _ROOT, "the document is nested too deeply")]
        ) from None
    problems = [_locate(where, file, path, msg) for path, msg in cross_reference_problems(network)]
    if problems:
        raise NetworkFileError(_ordered(problems))
    return network


# ----------------------------------------------------------------------------- messages


def _error_path(error: ErrorDetails) -> FieldPath:
    # Pydantic puts the union member's tag into the location of a discriminated union
    # (links.0.fibre.length_km) and "[key]" for a failed dict key: neither is a field.
    loc = [part for part in error["loc"] if part != "[key]"]
    if len(loc) >= 3 and loc[0] == "links" and isinstance(loc[1], int) and loc[2] in _LINK_TAGS:
        del loc[2]
    if loc and loc[-1] == "from_":
        loc[-1] = "from"
    if error["type"] == "union_tag_invalid":
        loc.append("kind")
    return tuple(loc)


def _error_message(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "?")
        return f"unknown link kind {tag!r}; use one of {', '.join(LINK_KINDS)}"
    if kind == "union_tag_not_found":
        return f"a link needs a kind: one of {', '.join(LINK_KINDS)}"
    return _documents.error_message(error, docs="docs/networks.md", ranges=True)


def _locate(
    where: dict[FieldPath, tuple[int, int]], file: str, path: FieldPath, message: str
) -> NetworkProblem:
    for end in range(len(path), 0, -1):
        place = where.get(path[:end])
        if place is not None:
            return _problem(file, place[0], place[1], _dotted(path), message)
    return _problem(file, 1, 1, _dotted(path), message)


def _ordered(problems: list[NetworkProblem]) -> list[NetworkProblem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line, p.col, p.path))


def _dotted(path: FieldPath) -> str:
    return _documents.dotted(path, _ROOT)


def _problem(file: str, line: int, col: int, path: str, message: str) -> NetworkProblem:
    return NetworkProblem(
        file=file, line=line, col=col, path=path, message=_documents.one_line(message)
    )
