"""Shared helpers for the policy tests: a valid base document and problem matchers."""

from __future__ import annotations

import copy
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from agile import PolicyError

TODAY = dt.date(2026, 11, 29)
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<message>.+)$")

VALID: dict[str, Any] = {
    "schema_version": 1,
    "name": "test-policy",
    "version": "1",
    "providers": ["cryptography", "pqcrypto"],
    "suites": [
        {
            "name": "mlkem768-x25519-qkd",
            "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"],
        },
        {"name": "xwing", "components": ["X-Wing"]},
    ],
    "qkd": {"source": "simulated", "required": False, "simulated": {"preset": "ideal"}},
    "kdf": {"combiner": "catkdf", "hash": "SHA-256", "label": "test"},
    "auth": {"method": "signature", "signature_algorithms": ["ML-DSA-65", "Ed25519"]},
    "session": {
        "key_length": 32,
        "lifetime_s": 3600,
        "rekey_interval_s": 600,
        "aead": "AES-256-GCM",
    },
    "rules": {"min_nist_level": 3, "forbidden": ["ML-KEM-512"]},
}

VALID_TOML = """\
schema_version = 1
name = "test-policy"
version = "1"
providers = ["cryptography", "pqcrypto"]

[[suites]]
name = "mlkem768-x25519-qkd"
components = ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"]

[[suites]]
name = "xwing"
components = ["X-Wing"]

[qkd]
source = "simulated"
required = false

[qkd.simulated]
preset = "ideal"

[kdf]
combiner = "catkdf"
hash = "SHA-256"
label = "test"

[auth]
method = "signature"
signature_algorithms = ["ML-DSA-65", "Ed25519"]

[session]
key_length = 32
lifetime_s = 3600
rekey_interval_s = 600
aead = "AES-256-GCM"

[rules]
min_nist_level = 3
forbidden = ["ML-KEM-512"]
"""


def valid_document() -> dict[str, Any]:
    """A fresh deep copy of a valid policy document, to modify in a test."""
    return copy.deepcopy(VALID)


def problems_of(exc: pytest.ExceptionInfo[PolicyError]) -> dict[str, str]:
    """The problems of a PolicyError as ``{field.path: message}``."""
    return {p.path: p.message for p in exc.value.problems}


@pytest.fixture
def write(tmp_path: Path) -> Any:
    """Write a file under tmp_path and return its path: ``write("a.toml", text)``."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
