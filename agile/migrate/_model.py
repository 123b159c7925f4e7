"""What the dialect parsers produce and what the rules turn it into.

A parser reads one configuration file and returns a :class:`ParsedConfig`: a tree of
:class:`Scope` objects (an nginx ``server`` block, an Apache ``<VirtualHost>``, a HAProxy
``bind`` line, a stunnel service, an OpenSSL ``system_default`` section), each holding the
:class:`Directive` objects written in it, already normalised to a small set of kinds. The
rules (:mod:`agile.migrate.rules`) know nothing about dialects: they read only these kinds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agile._errors import AgileError

Risk = Literal["quantum-vulnerable", "weak", "ok"]
RISKS: tuple[Risk, ...] = ("quantum-vulnerable", "weak", "ok")
"""Worst first."""

Dialect = Literal["openssl", "nginx", "apache", "haproxy", "stunnel"]
DIALECTS: tuple[Dialect, ...] = ("openssl", "nginx", "apache", "haproxy", "stunnel")

Kind = Literal[
    "protocols",  # data: absolute set of enabled versions
    "protocol_delta",  # data: (versions to enable, versions to disable)
    "min_protocol",  # data: (version,) or () for "no minimum"
    "max_protocol",  # data: (version,) or () for "no maximum"
    "cipher_string",  # value: an OpenSSL cipher string for TLS 1.2 and older
    "ciphersuites",  # data: TLS 1.3 cipher suites
    "groups",  # data: key-exchange groups, most preferred first
    "sigalgs",  # data: signature algorithms
    "psk",  # value: a pre-shared key file or identity
    "certificate",  # value: a certificate file
    "seclevel",  # data: (level,) - OpenSSL security level, filters cipher suites
    "info",  # a TLS setting without quantum risk (reported as ok)
    "include",  # value: a file the configuration includes; reported, not followed
    "unknown",  # a TLS setting name the stack would reject or that this tool does not know
    "unparsed",  # a line that could not be parsed
]

PROTOCOL_ORDER: tuple[str, ...] = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
"""Protocol versions, oldest first, in OpenSSL's spelling."""


class MigrationError(AgileError):
    """A configuration file could not be read, or its dialect could not be told."""


@dataclass(frozen=True, kw_only=True)
class Directive:
    """One setting as written in a file, with its normalised meaning."""

    file: str
    line: int
    setting: str
    """The name as the file spells it, e.g. ``ssl_ciphers`` or ``SSLOpenSSLConfCmd Groups``."""
    value: str
    """The value as written (quotes removed)."""
    kind: Kind
    data: tuple[str, ...] = ()
    """Normalised items: protocol versions, group names, cipher suites ..."""
    removed: tuple[str, ...] = ()
    """For ``protocol_delta``: the versions the directive disables."""
    note: str = ""
    """Parser's remark, e.g. why a line was not understood."""


@dataclass(kw_only=True)
class Scope:
    """A block whose settings apply together, and inherit from ``parent``."""

    name: str
    line: int
    parent: Scope | None = None
    directives: list[Directive] = field(default_factory=list)
    tls: bool = False
    """Whether TLS is terminated or initiated here: only such scopes get default findings."""
    library_groups: bool = False
    """The dialect's own default groups do not apply here (a client side): OpenSSL's do."""

    def chain(self) -> list[Scope]:
        """This scope's ancestors and itself, outermost first."""
        scopes: list[Scope] = []
        scope: Scope | None = self
        while scope is not None:
            scopes.append(scope)
            scope = scope.parent
        return scopes[::-1]

    def effective(self) -> list[Directive]:
        """The directives that apply here: inherited ones first, then this scope's own."""
        return [d for scope in self.chain() for d in scope.directives]


@dataclass(kw_only=True)
class ParsedConfig:
    """One file, parsed."""

    file: str
    dialect: Dialect
    scopes: list[Scope]
    """Every scope, outermost first; the first is the file's top level."""
    loose: list[Directive] = field(default_factory=list)
    """Lines that belong to no scope the rules evaluate (unparsed lines, includes)."""


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One reported setting: the unit of ``agile migrate tls`` output."""

    file: str
    line: int
    setting: str
    value: str
    risk: Risk
    fix: str
    note: str = ""
    scope: str = ""

    def as_dict(self) -> dict[str, str | int]:
        return {
            "file": self.file,
            "line": self.line,
            "setting": self.setting,
            "value": self.value,
            "risk": self.risk,
            "fix": self.fix,
            "note": self.note,
            "scope": self.scope,
        }


def worst(risks: list[Risk]) -> Risk:
    """The most severe of ``risks`` (``ok`` for none)."""
    for risk in RISKS:
        if risk in risks:
            return risk
    return "ok"


def protocol_versions(low: str | None = None, high: str | None = None) -> frozenset[str]:
    """The versions between ``low`` and ``high`` inclusive (open ends mean no bound)."""
    lo = PROTOCOL_ORDER.index(low) if low else 0
    hi = PROTOCOL_ORDER.index(high) if high else len(PROTOCOL_ORDER) - 1
    return frozenset(PROTOCOL_ORDER[lo : hi + 1])


_PROTOCOL_SPELLINGS: dict[str, str] = {
    "sslv2": "SSLv2",
    "sslv3": "SSLv3",
    "tlsv1": "TLSv1",
    "tlsv1.0": "TLSv1",
    "tlsv1_0": "TLSv1",
    "tlsv10": "TLSv1",
    "tls1": "TLSv1",
    "tls1.0": "TLSv1",
    "tlsv1.1": "TLSv1.1",
    "tlsv1_1": "TLSv1.1",
    "tlsv11": "TLSv1.1",
    "tls1.1": "TLSv1.1",
    "tlsv1.2": "TLSv1.2",
    "tlsv1_2": "TLSv1.2",
    "tlsv12": "TLSv1.2",
    "tls1.2": "TLSv1.2",
    "tlsv1.3": "TLSv1.3",
    "tlsv1_3": "TLSv1.3",
    "tlsv13": "TLSv1.3",
    "tls1.3": "TLSv1.3",
}


def protocol_name(word: str) -> str | None:
    """OpenSSL's spelling of a protocol version written in any dialect, or ``None``."""
    return _PROTOCOL_SPELLINGS.get(word.strip().lower())
