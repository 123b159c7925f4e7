"""The named policies shipped with the package (``policies/``, installed as ``agile.policies``).

Like s2n's security policies, a built-in policy's versioned name (``hybrid-default-20261129``)
means the same policy forever: its file is never edited once released (a test pins each
fingerprint). Changes go into a new file with a new date. ``NAME-latest`` is an alias for the
newest version of a family, so it moves when a new version ships; pin a versioned name where
that matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_PACKAGE = "agile.policies"
_FILE = re.compile(r"^(?P<family>[a-z0-9]+(?:-[a-z0-9]+)*?)-(?P<version>\d{8})\.toml$")
LATEST = "-latest"


@dataclass(frozen=True, kw_only=True)
class BuiltinName:
    """One versioned built-in policy."""

    name: str
    family: str
    version: str


@cache
def _catalogue() -> dict[str, BuiltinName]:
    found: dict[str, BuiltinName] = {}
    for entry in resources.files(_PACKAGE).iterdir():
        match = _FILE.match(entry.name)
        if match and entry.is_file():
            name = entry.name.removesuffix(".toml")
            found[name] = BuiltinName(
                name=name, family=match.group("family"), version=match.group("version")
            )
    return dict(sorted(found.items()))


def versioned_names() -> list[str]:
    """Every immutable versioned name, sorted."""
    return list(_catalogue())


def aliases() -> dict[str, str]:
    """``NAME-latest`` -> the newest versioned name of that family."""
    latest: dict[str, BuiltinName] = {}
    for entry in _catalogue().values():
        current = latest.get(entry.family)
        if current is None or entry.version > current.version:
            latest[entry.family] = entry
    return {family + LATEST: entry.name for family, entry in sorted(latest.items())}


def names() -> list[str]:
    """Every name ``load_policy`` accepts as a built-in: versioned names and aliases."""
    return sorted([*versioned_names(), *aliases()])


def is_builtin_name(name: str) -> bool:
    return name in _catalogue() or name in aliases()


def resolve(name: str) -> str:
    """The versioned name behind ``name`` (itself, or the target of a ``-latest`` alias)."""
    if name in _catalogue():
        return name
    try:
        return aliases()[name]
    except KeyError:
        raise KeyError(f"no built-in policy named {name!r}") from None


def label(name: str) -> str:
    """How errors name the file of a built-in policy."""
    return f"{_PACKAGE}/{resolve(name)}.toml"


def read_text(name: str) -> str:
    """The TOML text of the built-in policy ``name``."""
    return resources.files(_PACKAGE).joinpath(f"{resolve(name)}.toml").read_text("utf-8")
