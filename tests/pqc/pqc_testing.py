"""Helpers shared by the pqc tests.

- The one helper that loads known-answer vectors from the installed ``cryptography_vectors``
  (``load_rsp``/``load_json``). Vector files are never copied into this repository: they are
  read from the package, which the lock file pins beside a matching ``cryptography``. Where
  the package is absent (``make test-latest`` when the registry has no matching version),
  the tests that need it skip and say why; nothing else depends on it.
- The (provider, algorithm) pairs the contract suite runs over: every available pair, so a
  newly installed provider (liboqs) is covered without editing the tests.

(This directory has no ``__init__.py`` on purpose: with one, pytest's default import mode
would import ``tests/pqc`` as a package named ``pqc`` and shadow the library.)
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from functools import cache
from types import ModuleType
from typing import Any

import pytest

import pqc

VECTORS_MISSING = (
    "cryptography-vectors is not installed (no release matches this cryptography); "
    "`make test` installs the locked pair"
)


def vectors_installed() -> bool:
    return importlib.util.find_spec("cryptography_vectors") is not None


def _vectors_package() -> ModuleType:
    if not vectors_installed():
        pytest.skip(VECTORS_MISSING)
    return importlib.import_module("cryptography_vectors")


@cache
def load_rsp(path: str) -> tuple[dict[str, str], ...]:
    """Parse a NIST-style ``.rsp`` file into records; each record starts at ``count = N``."""
    records: list[dict[str, str]] = []
    with _vectors_package().open_vector_file(path, "r") as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith("#") or " = " not in line:
                continue
            key, value = line.split(" = ", 1)
            if key == "count":
                records.append({})
            records[-1][key] = value
    return tuple(records)


@cache
def load_json(path: str) -> Any:
    with _vectors_package().open_vector_file(path, "r") as handle:
        return json.load(handle)


def hexbytes(record: dict[str, Any], key: str) -> bytes:
    return bytes.fromhex(record[key])


# Classic McEliece keys are 0.25-1.3 MB and take up to a second to generate: the contract
# suite runs the smallest parameter set by default and the rest under `-m slow`.
_SLOW_KEMS = {
    f"Classic-McEliece-{v}"
    for v in (
        "460896",
        "460896f",
        "6688128",
        "6688128f",
        "6960119",
        "6960119f",
        "8192128",
        "8192128f",
    )
}
# SLH-DSA "s" (small) variants take up to 1.4 s per signature.
_SLOW_SIGNATURES = {f"SLH-DSA-{h}-{b}s" for h in ("SHA2", "SHAKE") for b in (192, 256)}


def kem_pairs() -> list[tuple[str, str]]:
    return [(p, n) for n in pqc.available_kems() for p in pqc.kem_providers(n)]


def signature_pairs() -> list[tuple[str, str]]:
    return [(p, n) for n in pqc.available_signatures() for p in pqc.signature_providers(n)]


def is_slow_kem(name: str) -> bool:
    return name in _SLOW_KEMS


def is_slow_signature(name: str) -> bool:
    return name in _SLOW_SIGNATURES
