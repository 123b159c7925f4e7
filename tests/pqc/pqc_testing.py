"""Helpers shared by the pqc tests.

- The one helper that loads known-answer vectors from the installed ``cryptography_vectors``
  (``load_rsp``/``load_json``). Vector files are never copied into this repository: they are
  read from the package, which the lock file pins beside a matching ``cryptography``. Where
  the package is absent (``make test-latest`` when the registry has no matching version),
  the tests that need it skip and say why; nothing else depends on it.
- The (provider, algorithm) pairs the contract suite runs over: every available pair, so a
  newly installed provider (liboqs) is covered without editing the tests; and which of
  them are slow. On liboqs (271 mechanisms in 0.16.0) the default suite runs a
  representative subset (``liboqs_default_subset``); ``-m slow`` runs the rest.

(This directory has no ``__init__.py`` on purpose: with one, pytest's default import mode
would import ``tests/pqc`` as a package named ``pqc`` and shadow the library.)
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
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
# SLH-DSA "s" (small) parameter sets take up to 1.4 s per signature, and so do their
# HashSLH-DSA (pre-hash) twins; the 128-bit ones are quick enough to stay.
_SLOW_SIGNATURE = re.compile(r"(Hash)?SLH-DSA-(SHA2|SHAKE)-(192|256)s(-with-[\w-]+)?")

# Standard sets that the default suite runs on liboqs whatever it costs.
STANDARD_SETS = (
    "ML-KEM-512",
    "ML-KEM-768",
    "ML-KEM-1024",
    "ML-DSA-44",
    "ML-DSA-65",
    "ML-DSA-87",
)


# Algorithms that two providers list under one name but compute differently, with why. A
# test over such a pair expects the disagreement (strict xfail), so it notices a fix.
_HQC_DISAGREEMENT = (
    "pqcrypto 1.0.0 (backbone-hqc 0.2.0) and liboqs 0.16.0 (the HQC team's reference, "
    "gitlab.com/pqc-hqc/hqc@161cd4f) give {name} the same sizes but do not interoperate: a "
    "ciphertext of one decapsulates to another secret in the other (HQC-192 agrees); which "
    "one follows the specification needs HQC's own KAT files, which are not here"
)
KNOWN_DISAGREEMENTS: dict[tuple[str, frozenset[str]], str] = {
    (name, frozenset({"pqcrypto", "liboqs"})): _HQC_DISAGREEMENT.format(name=name)
    for name in ("HQC-128", "HQC-256")
}


def disagreement(name: str, a: str, b: str) -> str | None:
    """Why providers ``a`` and ``b`` give different results for ``name``, or None."""
    return KNOWN_DISAGREEMENTS.get((name, frozenset({a, b})))


def kem_pairs() -> list[tuple[str, str]]:
    return [(p, n) for n in pqc.available_kems() for p in pqc.kem_providers(n)]


def signature_pairs() -> list[tuple[str, str]]:
    return [(p, n) for n in pqc.available_signatures() for p in pqc.signature_providers(n)]


def liboqs_available() -> bool:
    return {s.name: s.available for s in pqc.providers()}["liboqs"]


def liboqs_reason() -> str:
    return {s.name: s.reason for s in pqc.providers()}["liboqs"]


@cache
def liboqs_default_subset() -> frozenset[str]:
    """The liboqs algorithms the default suite runs: every standard ML-KEM and ML-DSA set,
    and the cheapest parameter set of every other family (fast rather than small-signature
    sets, then the lowest NIST level, then the smallest keys plus ciphertext or signature).
    The rest run under ``-m slow`` (``make test-liboqs-all``)."""
    if not liboqs_available():
        return frozenset()
    provider = pqc.registry().provider("liboqs")
    chosen = {n for n in STANDARD_SETS if n in (*provider.kem_names(), *provider.signature_names())}
    best: dict[str, tuple[Any, ...]] = {}
    infos: list[pqc.KemInfo | pqc.SignatureInfo] = [
        *(provider.kem(n).info for n in provider.kem_names()),
        *(provider.signature(n).info for n in provider.signature_names()),
    ]
    for info in infos:
        size = info.public_key_size + info.secret_key_size
        size += info.ciphertext_size if isinstance(info, pqc.KemInfo) else info.signature_size
        # "s"/"small"/"short" sets trade signing time for signature size: prefer the fast ones.
        slow = _slow_name(info.name) or bool(_SMALL_SET.search(info.name))
        cost = (slow, info.nist_level or 0, size, info.name)
        if info.family not in best or cost < best[info.family]:
            best[info.family] = cost
    chosen |= {cost[-1] for cost in best.values()}
    return frozenset(chosen)


_SMALL_SET = re.compile(r"\d+s(-with-|$)|small|short")


def _slow_name(name: str) -> bool:
    return name in _SLOW_KEMS or bool(_SLOW_SIGNATURE.fullmatch(name))


def is_slow_kem(name: str, provider: str | None = None) -> bool:
    if provider == "liboqs" and name not in liboqs_default_subset():
        return True
    return name in _SLOW_KEMS


def is_slow_signature(name: str, provider: str | None = None) -> bool:
    if provider == "liboqs" and name not in liboqs_default_subset():
        return True
    return bool(_SLOW_SIGNATURE.fullmatch(name))
