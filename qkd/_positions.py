"""Where each field of a document is written: ``path -> (line, column)``.

Shared by the two loaders that locate their errors as ``FILE:LINE:COL: field.path: message``:
``qkd.network`` (network files) and ``agile.policy`` (policy files). It lives in ``qkd``, the
lower layer, because ``qkd`` may not import ``agile``; it knows nothing of either schema.

The standard parsers give positions only for syntax errors. To point at the field behind a
validation error, each format gets a small scanner that walks the already-parsed text again
and records the position of every key and array element under its field path, e.g.
``("suites", 1, "components", 0)``. TOML arrays of tables (``[[suites]]``) get their index.

The scanners run only on text the real parser accepted, so they need not diagnose syntax;
they must simply never fail. If one meets something it does not follow it stops, and the
loader falls back to the nearest enclosing field it did record (ultimately 1:1).

Duplicate keys, which JSON and YAML parsers accept silently (the last one wins), are
reported by the JSON and YAML scanners as problems; TOML forbids them in the grammar.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FieldPath = tuple[str | int, ...]


@dataclass
class Positions:
    """Positions of fields, and scan-time problems (path, line, col, message)."""

    at: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)
    problems: list[tuple[FieldPath, int, int, str]] = field(default_factory=list)

    def record(self, path: FieldPath, line: int, col: int) -> None:
        self.at.setdefault(path, (line, col))


class _Text:
    """Offset -> (line, column), both 1-based."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_col(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._starts, offset) - 1
        return line + 1, offset - self._starts[line] + 1


# --------------------------------------------------------------------------------------- TOML

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WS = re.compile(r"[ \t]*")
_SCALAR_END = re.compile(r"[,\]}\n#]")


class _TomlScanner:
    def __init__(self, text: str) -> None:
        self.t = _Text(text)
        self.s = text
        self.i = 0
        self.out = Positions()
        self.aot: dict[FieldPath, int] = {}

    def pos(self, offset: int | None = None) -> tuple[int, int]:
        return self.t.line_col(self.i if offset is None else offset)

    def ws(self) -> None:
        self.i = _WS.match(self.s, self.i).end()  # type: ignore[union-attr]

    def ws_nl(self) -> None:
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r\n":
                self.i += 1
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def key(self) -> list[tuple[str, int]]:
        """A dotted key: its parts with their offsets."""
        parts: list[tuple[str, int]] = []
        while True:
            self.ws()
            start = self.i
            c = self.s[self.i]
            if c in "\"'":
                end = self._string_end(self.i)
                parts.append((tomllib.loads(f"k = {self.s[start:end]}")["k"], start))
                self.i = end
            else:
                m = _BARE_KEY.match(self.s, self.i)
                if m is None:
                    raise ValueError("not a key")
                parts.append((m.group(), start))
                self.i = m.end()
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ".":
                self.i += 1
                continue
            return parts

    def _string_end(self, i: int) -> int:
        s = self.s
        for quote in ('"""', "'''"):
            if s.startswith(quote, i):
                j = i + 3
                while True:
                    j = s.index(quote, j)
                    if quote == '"""' and _escaped(s, j):
                        j += 1
                        continue
                    # A closing delimiter may be followed by up to two more quotes.
                    while s.startswith(quote[0], j + 3):
                        j += 1
                    return j + 3
        quote = s[i]
        j = i + 1
        while True:
            j = s.index(quote, j)
            if quote == '"' and _escaped(s, j):
                j += 1
                continue
            return j + 1

    def value(self, path: FieldPath) -> None:
        s = self.s
        c = s[self.i]
        if c in "\"'":
            self.i = self._string_end(self.i)
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self.ws_nl()
                if s[self.i] == "]":
                    self.i += 1
                    return
                self.out.record((*path, index), *self.pos())
                self.value((*path, index))
                index += 1
                self.ws_nl()
                if s[self.i] == ",":
                    self.i += 1
        elif c == "{":
            self.i += 1
            while True:
                self.ws()
                if s[self.i] == "}":
                    self.i += 1
                    return
                full = self.assignment(path)
                del full
                self.ws()
                if s[self.i] == ",":
                    self.i += 1
        else:
            m = _SCALAR_END.search(s, self.i)
            self.i = len(s) if m is None else m.start()

    def assignment(self, table: FieldPath) -> FieldPath:
        parts = self.key()
        path = table
        for name, offset in parts:
            path = (*path, name)
            self.out.record(path, *self.pos(offset))
        self.ws()
        if self.s[self.i] != "=":
            raise ValueError("expected '='")
        self.i += 1
        self.ws()
        self.value(path)
        return path

    def header(self) -> FieldPath:
        start = self.i
        array = self.s.startswith("[[", self.i)
        self.i += 2 if array else 1
        parts = self.key()
        self.i += 2 if array else 1
        path: FieldPath = ()
        for n, (name, offset) in enumerate(parts):
            path = (*path, name)
            last = n == len(parts) - 1
            # The table a header opens is located at the header itself.
            self.out.record(path, *self.pos(start if last else offset))
            if array and last:
                index = self.aot.get(path, 0)
                self.aot[path] = index + 1
                path = (*path, index)
                self.out.record(path, *self.pos(start))
            elif path in self.aot:
                # An earlier [[path]]: this header refers to its latest element.
                path = (*path, self.aot[path] - 1)
        return path

    def scan(self) -> Positions:
        table: FieldPath = ()
        try:
            while True:
                self.ws_nl()
                if self.i >= len(self.s):
                    break
                before = self.i
                if self.s[self.i] == "[":
                    table = self.header()
                else:
                    self.assignment(table)
                if self.i <= before:  # pragma: no cover - guards against a stuck scan
                    break
        except (ValueError, IndexError, tomllib.TOMLDecodeError, KeyError, RecursionError):
            pass
        return self.out


def _escaped(s: str, j: int) -> bool:
    backslashes = 0
    while j - 1 - backslashes >= 0 and s[j - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def toml_positions(text: str) -> Positions:
    """Positions of the fields of a TOML document that ``tomllib`` accepted."""
    return _TomlScanner(text).scan()


# --------------------------------------------------------------------------------------- JSON

# json.decoder.scanstring is public API (documented in json.decoder's __all__) but untyped.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_JSON_SCALAR = re.compile(r"-?[0-9][0-9.eE+-]*|true|false|null|NaN|-?Infinity")
_JSON_WS = re.compile(r"[ \t\r\n]*")


class _JsonScanner:
    def __init__(self, text: str) -> None:
        self.t = _Text(text)
        self.s = text
        self.i = 0
        self.out = Positions()

    def ws(self) -> None:
        self.i = _JSON_WS.match(self.s, self.i).end()  # type: ignore[union-attr]

    def value(self, path: FieldPath) -> None:
        self.ws()
        c = self.s[self.i]
        if c == "{":
            self.i += 1
            seen: set[str] = set()
            while True:
                self.ws()
                if self.s[self.i] == "}":
                    self.i += 1
                    return
                if self.s[self.i] == ",":
                    self.i += 1
                    continue
                start = self.i
                name, self.i = _scanstring(self.s, self.i + 1)
                line, col = self.t.line_col(start)
                if name in seen:
                    self.out.problems.append(((*path, name), line, col, f"duplicate key {name!r}"))
                seen.add(name)
                self.out.record((*path, name), line, col)
                self.ws()
                self.i += 1  # the ':'
                self.value((*path, name))
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self.ws()
                if self.s[self.i] == "]":
                    self.i += 1
                    return
                if self.s[self.i] == ",":
                    self.i += 1
                    continue
                self.out.record((*path, index), *self.t.line_col(self.i))
                self.value((*path, index))
                index += 1
        elif c == '"':
            _, self.i = _scanstring(self.s, self.i + 1)
        else:
            m = _JSON_SCALAR.match(self.s, self.i)
            if m is None or m.end() == self.i:
                raise ValueError("not a JSON value")
            self.i = m.end()

    def scan(self) -> Positions:
        with contextlib.suppress(ValueError, IndexError, RecursionError):
            self.value(())
        return self.out


def json_positions(text: str) -> Positions:
    """Positions of the fields of a JSON document that ``json`` accepted."""
    return _JsonScanner(text).scan()


# --------------------------------------------------------------------------------------- YAML


def yaml_positions(text: str) -> Positions:
    """Positions of the fields of a YAML document that PyYAML accepted.

    Also reports aliases (``*name``), which neither a policy nor a network file may use: they
    let a few bytes expand into a huge document, and these documents have no need for them.
    """
    import yaml  # optional dependency: the caller checked that it is installed

    out = Positions()
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line, col = _mark(event.start_mark)
            out.problems.append(((), line, col, "YAML aliases are not allowed in a document"))
    if out.problems:
        return out
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        _walk_yaml(root, (), out)
    return out


def _mark(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _walk_yaml(node: Any, path: FieldPath, out: Positions) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            mark = key_node.start_mark
            line, col = mark.line + 1, mark.column + 1
            if not (
                isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str"
            ):
                out.problems.append((path, line, col, "a key must be a string"))
                continue
            name = str(key_node.value)
            if name in seen:
                out.problems.append(((*path, name), line, col, f"duplicate key {name!r}"))
            seen.add(name)
            out.record((*path, name), line, col)
            _walk_yaml(value_node, (*path, name), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            mark = item.start_mark
            out.record((*path, index), mark.line + 1, mark.column + 1)
            _walk_yaml(item, (*path, index), out)
