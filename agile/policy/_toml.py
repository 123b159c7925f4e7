"""Write a policy's canonical form as TOML (``agile policy show``).

The standard library reads TOML but does not write it; a policy is a small fixed shape (top
level fields, tables, arrays of tables, inline arrays of scalars, one inline table of
strings), which this writes in the same layout as the built-in policy files.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

_WIDTH = 100


def dumps(document: dict[str, Any], *, header: str = "") -> str:
    """TOML text for ``document`` (JSON-compatible values plus dates; ``None`` is omitted)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    _table(document, (), lines)
    return "\n".join(lines).strip("\n") + "\n"


def _table(table: dict[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    nested: list[tuple[str, Any]] = []
    for key, value in table.items():
        if value is None:
            continue
        table_like = isinstance(value, dict) and not _is_inline(path, key)
        tables = isinstance(value, list | tuple) and bool(value)
        if table_like or (tables and all(isinstance(v, dict) for v in value)):
            nested.append((key, value))
        else:
            line = f"{_key(key)} = {_value(value)}"
            if len(line) > _WIDTH and isinstance(value, list | tuple):
                items = [f"    {_value(v)}," for v in value]
                line = "\n".join([f"{_key(key)} = [", *items, "]"])
            lines.append(line)
    for key, value in nested:
        sub = (*path, key)
        if isinstance(value, list | tuple):
            for item in value:
                lines += ["", f"[[{'.'.join(_key(k) for k in sub)}]]"]
                _table(item, sub, lines)
        else:
            lines += ["", f"[{'.'.join(_key(k) for k in sub)}]"]
            _table(value, sub, lines)


def _is_inline(path: tuple[str, ...], key: str) -> bool:
    # Pinned peer keys are a mapping of algorithm name -> hex string: an inline table.
    return path == ("auth",) and key == "peer_public_keys"


def _key(key: str) -> str:
    if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key):
        return key
    return _string(key)


def _string(value: str) -> str:
    # JSON's escapes are valid TOML basic-string escapes; TOML also wants DEL escaped.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
