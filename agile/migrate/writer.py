"""The agile policy equivalent to an audited TLS configuration, upgraded to hybrids.

Each key-exchange group the configuration allows (explicitly or by default) becomes the hybrid
suite that keeps its classical half and adds ML-KEM, in the order the configuration prefers:
X25519 -> ML-KEM-768 + X25519, P-256 -> ML-KEM-768 + P-256, P-384/P-521 -> ML-KEM-1024 + P-384,
X448 -> ML-KEM-1024 + X448; finite-field groups map to the X25519 hybrid. Hybrid TLS groups
map to the same suites, pure ML-KEM groups to ML-KEM alone. ML-KEM comes first in every suite
(SP 800-56C r2: the approved secret first). Each classical component gets a sunset on
2035-01-01, the date NIST IR 8547 (initial public draft) gives for disallowing quantum-vulnerable
key establishment. A configuration that authenticates with a pre-shared key only (stunnel PSK)
gets ``auth.method = "psk"``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from agile.migrate._model import ParsedConfig
from agile.migrate.rules import Stack, context_of

_X25519 = ("mlkem768-x25519", ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"))
_P256 = ("mlkem768-p256", ("ML-KEM-768", "DHKEM(P-256, HKDF-SHA256)"))
_P384 = ("mlkem1024-p384", ("ML-KEM-1024", "DHKEM(P-384, HKDF-SHA384)"))
_X448 = ("mlkem1024-x448", ("ML-KEM-1024", "DHKEM(X448, HKDF-SHA512)"))
_MLKEM768 = ("mlkem768", ("ML-KEM-768",))
_MLKEM1024 = ("mlkem1024", ("ML-KEM-1024",))

SUITE_FOR_GROUP: dict[str, tuple[str, tuple[str, ...]]] = {
    "X25519": _X25519,
    "X25519MLKEM768": _X25519,
    "X25519Kyber768Draft00": _X25519,
    "P-256": _P256,
    "SecP256r1MLKEM768": _P256,
    "P256Kyber768Draft00": _P256,
    "brainpoolP256r1": _P256,
    "P-384": _P384,
    "P-521": _P384,
    "brainpoolP384r1": _P384,
    "brainpoolP512r1": _P384,
    "SecP384r1MLKEM1024": _P384,
    "X448": _X448,
    "MLKEM512": _MLKEM768,
    "MLKEM768": _MLKEM768,
    "MLKEM1024": _MLKEM1024,
    **{f"ffdhe{n}": _X25519 for n in (2048, 3072, 4096, 6144, 8192)},
}
SUNSET_DATE = dt.date(2035, 1, 1)


def equivalent_policy(
    parsed: Iterable[ParsedConfig],
    *,
    stack: Stack | None = None,
    name: str,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """The policy document (a dict in the schema of ``agile.policy``) for ``parsed``."""
    stack = stack or Stack()
    suites: list[tuple[str, tuple[str, ...]]] = []
    sources: list[str] = []
    psk_only = True
    any_tls = False
    chacha_first = False
    for config in parsed:
        sources.append(config.file)
        for scope in config.scopes:
            if not scope.tls:
                continue
            any_tls = True
            ctx = context_of(scope, config.dialect, stack)
            psk_only = psk_only and ctx.psk_only
            for group in ctx.groups:
                suite = SUITE_FOR_GROUP.get(group)
                if suite is not None and suite not in suites:
                    suites.append(suite)
            for d in scope.effective():
                if d.kind == "ciphersuites" and d.data:
                    chacha_first = d.data[0].startswith("TLS_CHACHA20")
    if not suites:
        suites.append(_X25519)
    if not any_tls:
        psk_only = False
    classical = [c for _, comps in suites for c in comps if c.startswith("DHKEM")]
    min_level = 5 if all("ML-KEM-1024" in comps for _, comps in suites) else 3
    document: dict[str, Any] = {
        "schema_version": 1,
        "name": name,
        "version": (today or dt.date.today()).isoformat(),
        "description": _description(sources),
        "suites": [{"name": n, "components": list(c)} for n, c in suites[:16]],
        "qkd": {"source": "none", "required": False},
        "kdf": {
            "combiner": "catkdf",
            "hash": "SHA-384" if min_level == 5 else "SHA-256",
            "label": "qkd-agile v1",
        },
        "auth": {"method": "psk"}
        if psk_only
        else {
            "method": "signature",
            "signature_algorithms": ["ML-DSA-87" if min_level == 5 else "ML-DSA-65", "Ed25519"],
        },
        "session": {"aead": "ChaCha20-Poly1305" if chacha_first else "AES-256-GCM"},
        "rules": {
            "min_nist_level": min_level,
            "sunset": [
                {"algorithm": c, "date": SUNSET_DATE, "warn_days": 365}
                for c in dict.fromkeys(classical)
            ],
        },
    }
    return document


def _description(sources: list[str]) -> str:
    text = "Migrated by `agile migrate tls` from " + ", ".join(sources)
    text += "; every allowed group upgraded to its ML-KEM hybrid"
    return text if len(text) <= 500 else text[:497] + "..."


def policy_name(stem: str) -> str:
    """A valid policy name derived from a file name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "config"
    return ("migrated-" + cleaned)[:80]


# -- a TOML writer for the few shapes a policy has ------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        escaped = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\t", "\\t")
        )
        escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def to_toml(document: dict[str, Any]) -> str:
    """Serialise a policy document: scalars first, then tables, then arrays of tables."""
    lines: list[str] = []
    _table(document, [], lines)
    return "\n".join(lines).strip() + "\n"


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    for key, value in table.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            lines.append("")
            lines.append(f"[{'.'.join([*path, key])}]")
            _table(value, [*path, key], lines)
    for key, value in table.items():
        if _is_table_array(value):
            for item in value:
                lines.append("")
                lines.append(f"[[{'.'.join([*path, key])}]]")
                _table(item, [*path, key], lines)
