"""Event files for ``agile net simulate``: links that fail, and Eve, at given times.

Hazmat: the file says when links stop; what that does to keys is the simulator's
(:mod:`qkd.network.simulation`). The shape (TOML; JSON and YAML hold the same tree)::

    [[events]]
    link = "B-C"          # a link id of the network file
    kind = "failure"      # failure: the link is down (fibre cut, device fault)
                          # eve: an eavesdropper; the link's QBER alarm stops it
    start_s = 3600        # seconds from the start of the simulation
    end_s = 7200          # when it is over (after start_s)

Every problem is located as ``FILE:LINE:COL: field.path: message`` and raised as a
:class:`~qkd.network.loader.NetworkFileError`, as for network files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qkd import _documents
from qkd.network.loader import MAX_DOCUMENT_BYTES, NetworkFileError, NetworkProblem
from qkd.network.model import Name, Network

__all__ = ["EVENT_KINDS", "LinkEvent", "load_events", "parse_events"]

EVENT_KINDS = ("failure", "eve")
_ROOT = "<events>"
_SUFFIXES: dict[str, _documents.Format] = {
    ".toml": "toml",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
}
Seconds = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]


@dataclass(frozen=True)
class LinkEvent:
    """Link ``link`` is out from ``start_s`` to ``end_s``: ``kind`` failure or eve."""

    link: str
    start_s: float
    end_s: float
    kind: Literal["failure", "eve"]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    link: Name
    kind: Literal["failure", "eve"]
    start_s: Seconds
    end_s: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> _Event:
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s:g}) must be after start_s ({self.start_s:g})")
        return self


class _EventFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    events: list[_Event] = Field(default_factory=list, max_length=1_000_000)


def load_events(path: str | os.PathLike[str], network: Network) -> tuple[LinkEvent, ...]:
    """Load an event file for ``network``; the format follows the suffix.

    Example::

        >>> load_events("cut.toml", network)  # doctest: +SKIP
        (LinkEvent(link='B-C', start_s=3600.0, end_s=7200.0, kind='failure'),)
    """
    label = str(path)
    file = Path(path)
    fmt = _SUFFIXES.get(file.suffix.lower())
    if fmt is None:
        raise NetworkFileError(
            [
                _problem(
                    label, 1, 1, (), f"unknown format {file.suffix!r}; use .toml, .json or .yaml"
                )
            ]
        )
    try:
        text = _documents.read_text(
            file, what="event", max_bytes=MAX_DOCUMENT_BYTES, limit="at most 64 MiB"
        )
    except _documents.DocumentSyntaxError as exc:
        raise NetworkFileError([_problem(label, exc.line, exc.col, (), exc.message)]) from None
    return parse_events(text, network=network, filename=label, format=fmt)


def parse_events(
    text: str, *, network: Network, filename: str = "<string>", format: _documents.Format = "toml"
) -> tuple[LinkEvent, ...]:
    """Validate an event file given as text, against the links of ``network``."""
    try:
        data, positions = _documents.parse(
            format,
            text.removeprefix("\ufeff"),
            root=_ROOT,
            yaml_missing="YAML event files need PyYAML: pip install 'qkd-agile[yaml]'",
        )
    except _documents.DocumentSyntaxError as exc:
        raise NetworkFileError(
            [
                NetworkProblem(
                    filename, exc.line, exc.col, exc.path, _documents.one_line(exc.message)
                )
            ]
        ) from None
    except RecursionError:
        raise NetworkFileError(
            [_problem(filename, 1, 1, (), "the document is nested too deeply")]
        ) from None
    where = positions.at
    problems = [
        _problem(filename, line, col, path, msg) for path, line, col, msg in positions.problems
    ]
    if problems:
        raise NetworkFileError(problems)
    if not isinstance(data, dict):
        raise NetworkFileError(
            [_problem(filename, 1, 1, (), "expected a table with an [[events]] array")]
        )
    try:
        parsed = _EventFile.model_validate(data)
    except ValidationError as exc:
        problems = [
            _locate(
                where,
                filename,
                tuple(p for p in e["loc"] if p != "[key]"),
                _documents.error_message(e, docs="docs/networks.md", ranges=True),
            )
            for e in exc.errors()
        ]
        raise NetworkFileError(_sorted(problems)) from None
    links = {link.id for link in network.links}
    problems = [
        _locate(
            where,
            filename,
            ("events", i, "link"),
            f"no link {event.link!r} in network {network.network.name!r}; use one of its link ids",
        )
        for i, event in enumerate(parsed.events)
        if event.link not in links
    ]
    if problems:
        raise NetworkFileError(_sorted(problems))
    return tuple(LinkEvent(e.link, e.start_s, e.end_s, e.kind) for e in parsed.events)


def _locate(
    where: dict[_documents.FieldPath, tuple[int, int]],
    file: str,
    path: _documents.FieldPath,
    message: str,
) -> NetworkProblem:
    for end in range(len(path), 0, -1):
        place = where.get(path[:end])
        if place is not None:
            return _problem(file, place[0], place[1], path, message)
    return _problem(file, 1, 1, path, message)


def _sorted(problems: list[NetworkProblem]) -> list[NetworkProblem]:
    return sorted(dict.fromkeys(problems), key=lambda p: (p.line, p.col, p.path))


def _problem(file: str, line: int, col: int, path: Any, message: str) -> NetworkProblem:
    return NetworkProblem(
        file, line, col, _documents.dotted(tuple(path), _ROOT), _documents.one_line(message)
    )
