"""TLS migration audit: which settings of a TLS deployment are quantum-vulnerable, and the fix.

Reads OpenSSL, nginx, Apache mod_ssl, HAProxy and stunnel configurations, reports each TLS
setting (and each default that an absent setting implies) with a risk of
``quantum-vulnerable``, ``weak`` or ``ok`` and the fix, and writes the equivalent agile policy.
The risk rules are in :mod:`agile.migrate.rules`; ``docs/migration.md`` explains them.

Example::

    >>> from agile.migrate import audit_text
    >>> [f.risk for f in audit_text("ssl_protocols TLSv1.2;", "x.conf", dialect="nginx")][:1]
    ['quantum-vulnerable']
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agile.migrate import apache, haproxy, nginx, openssl, stunnel
from agile.migrate._model import (
    DIALECTS,
    RISKS,
    Dialect,
    Finding,
    MigrationError,
    ParsedConfig,
    Risk,
)
from agile.migrate.rules import Stack, audit_config

_PARSERS = {
    "openssl": openssl.parse,
    "nginx": nginx.parse,
    "apache": apache.parse,
    "haproxy": haproxy.parse,
    "stunnel": stunnel.parse,
}
_NAME_HINTS: tuple[tuple[str, Dialect], ...] = (
    ("openssl", "openssl"),
    (".cnf", "openssl"),
    ("nginx", "nginx"),
    ("apache", "apache"),
    ("httpd", "apache"),
    ("ssl.conf", "apache"),
    ("vhost", "apache"),
    ("haproxy", "haproxy"),
    ("stunnel", "stunnel"),
)


def detect_dialect(path: str, text: str) -> Dialect:
    """Tell the dialect from the file name, else from the content; raise if neither tells."""
    name = os.path.basename(path).lower()
    for hint, dialect in _NAME_HINTS:
        if hint in name:
            return dialect
    # Content checks, most distinctive first: HAProxy and stunnel keywords, Apache's
    # containers, nginx blocks, then OpenSSL sections.
    candidates: tuple[tuple[Dialect, Any], ...] = (
        ("haproxy", haproxy),
        ("apache", apache),
        ("nginx", nginx),
        ("stunnel", stunnel),
        ("openssl", openssl),
    )
    for dialect, module in candidates:
        if module.looks_like(text):
            return dialect
    raise MigrationError(
        f"{path}: cannot tell which configuration dialect this is; "
        f"pass --format with one of {', '.join(DIALECTS)}"
    )


def parse_text(text: str, file: str, *, dialect: Dialect | None = None) -> ParsedConfig:
    """Parse one configuration held in memory."""
    chosen = dialect or detect_dialect(file, text)
    return _PARSERS[chosen](text, file)


def audit_text(
    text: str, file: str, *, dialect: Dialect | None = None, stack: Stack | None = None
) -> list[Finding]:
    """Audit one configuration held in memory."""
    return audit_config(parse_text(text, file, dialect=dialect), stack or Stack())


def read_config(path: str | Path) -> str:
    """Read a configuration file; a missing or unreadable file raises :class:`MigrationError`."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise MigrationError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MigrationError(f"{path}: is a directory; name the configuration file") from None
    except OSError as exc:
        raise MigrationError(f"{path}: cannot read ({exc.strerror})") from exc


@dataclass(kw_only=True)
class AuditReport:
    """Findings over one or more files, with the parsed files (for the policy writer)."""

    findings: list[Finding] = field(default_factory=list)
    parsed: list[ParsedConfig] = field(default_factory=list)
    stack: Stack = field(default_factory=Stack)

    def summary(self) -> dict[str, object]:
        counts: dict[Risk, int] = dict.fromkeys(RISKS, 0)
        for finding in self.findings:
            counts[finding.risk] += 1
        return {
            "files": [p.file for p in self.parsed],
            "dialects": {p.file: p.dialect for p in self.parsed},
            "assumed_openssl": ".".join(str(n) for n in self.stack.openssl),
            "counts": counts,
            "quantum_vulnerable": counts["quantum-vulnerable"],
            "unparsed_lines": sum(1 for f in self.findings if f.setting == "(unparsed)"),
            "not_followed": sorted({f.value for f in self.findings if "include" in f.note}),
        }

    @property
    def quantum_vulnerable(self) -> bool:
        return any(f.risk == "quantum-vulnerable" for f in self.findings)


def audit_files(
    paths: Iterable[str | Path], *, dialect: Dialect | None = None, stack: Stack | None = None
) -> AuditReport:
    """Audit configuration files; raise :class:`MigrationError` naming the first bad one."""
    report = AuditReport(stack=stack or Stack())
    for path in paths:
        text = read_config(path)
        parsed = parse_text(text, str(path), dialect=dialect)
        report.parsed.append(parsed)
        report.findings.extend(audit_config(parsed, report.stack))
    return report


__all__ = [
    "DIALECTS",
    "AuditReport",
    "Finding",
    "MigrationError",
    "Stack",
    "audit_files",
    "audit_text",
    "detect_dialect",
    "parse_text",
    "read_config",
]
