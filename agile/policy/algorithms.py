"""The algorithm names a policy may use, with the facts that policy rules need.

Policies name algorithms in their standard spelling (DESIGN.md, the same names ``pqc`` takes).
This table is fixed: it says whether a *name* is valid and what kind of algorithm it is. Whether
a provider on this machine implements it is a different question, answered when a policy is
resolved by the engine, not when it is parsed.

NIST levels are the categories of the NIST PQC call (1 = AES-128 key search ... 5 = AES-256).
Classical algorithms get level 0: a quantum computer running Shor's algorithm breaks them, so
they contribute no post-quantum strength. A hybrid has the level of its post-quantum half.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

Kind = Literal["kem", "signature", "aead", "hash", "qkd"]

QKD_COMPONENT = "QKD"
"""The pseudo-component that stands for the QKD key in a suite."""


@dataclass(frozen=True, kw_only=True)
class AlgorithmInfo:
    """What a policy needs to know about one algorithm name."""

    name: str
    kind: Kind
    nist_level: int
    post_quantum: bool
    family: str


def _kem(name: str, level: int, family: str, *, pq: bool = True) -> AlgorithmInfo:
    return AlgorithmInfo(name=name, kind="kem", nist_level=level, post_quantum=pq, family=family)


def _sig(name: str, level: int, family: str, *, pq: bool = True) -> AlgorithmInfo:
    return AlgorithmInfo(
        name=name, kind="signature", nist_level=level, post_quantum=pq, family=family
    )


_KEMS: tuple[AlgorithmInfo, ...] = (
    _kem("ML-KEM-512", 1, "ML-KEM"),
    _kem("ML-KEM-768", 3, "ML-KEM"),
    _kem("ML-KEM-1024", 5, "ML-KEM"),
    _kem("DHKEM(X25519, HKDF-SHA256)", 0, "DHKEM", pq=False),
    _kem("DHKEM(X448, HKDF-SHA512)", 0, "DHKEM", pq=False),
    _kem("DHKEM(P-256, HKDF-SHA256)", 0, "DHKEM", pq=False),
    _kem("DHKEM(P-384, HKDF-SHA384)", 0, "DHKEM", pq=False),
    _kem("DHKEM(P-521, HKDF-SHA512)", 0, "DHKEM", pq=False),
    _kem("MLKEM768-X25519", 3, "hybrid"),
    _kem("MLKEM768-P256", 3, "hybrid"),
    _kem("MLKEM1024-P384", 5, "hybrid"),
    _kem("X25519MLKEM768", 3, "hybrid"),
    _kem("SecP256r1MLKEM768", 3, "hybrid"),
    _kem("SecP384r1MLKEM1024", 5, "hybrid"),
    _kem("HQC-128", 1, "HQC"),
    _kem("HQC-192", 3, "HQC"),
    _kem("HQC-256", 5, "HQC"),
    _kem("sntrup761", 2, "NTRU Prime"),
    _kem("FrodoKEM-640-AES", 1, "FrodoKEM"),
    _kem("FrodoKEM-640-SHAKE", 1, "FrodoKEM"),
    _kem("FrodoKEM-976-AES", 3, "FrodoKEM"),
    _kem("FrodoKEM-976-SHAKE", 3, "FrodoKEM"),
    _kem("FrodoKEM-1344-AES", 5, "FrodoKEM"),
    _kem("FrodoKEM-1344-SHAKE", 5, "FrodoKEM"),
    _kem("BIKE-L1", 1, "BIKE"),
    _kem("BIKE-L3", 3, "BIKE"),
    _kem("BIKE-L5", 5, "BIKE"),
    *(
        _kem(f"Classic-McEliece-{params}{variant}", level, "Classic McEliece")
        for params, level in (
            ("348864", 1),
            ("460896", 3),
            ("6688128", 5),
            ("6960119", 5),
            ("8192128", 5),
        )
        for variant in ("", "f")
    ),
)

_SIGNATURES: tuple[AlgorithmInfo, ...] = (
    _sig("ML-DSA-44", 2, "ML-DSA"),
    _sig("ML-DSA-65", 3, "ML-DSA"),
    _sig("ML-DSA-87", 5, "ML-DSA"),
    *(
        _sig(f"SLH-DSA-{hash_name}-{bits}{speed}", level, "SLH-DSA")
        for hash_name in ("SHA2", "SHAKE")
        for bits, level in (("128", 1), ("192", 3), ("256", 5))
        for speed in ("s", "f")
    ),
    _sig("Falcon-512", 1, "Falcon"),
    _sig("Falcon-1024", 5, "Falcon"),
    _sig("Ed25519", 0, "EdDSA", pq=False),
    _sig("Ed448", 0, "EdDSA", pq=False),
    _sig("ECDSA-P256-SHA256", 0, "ECDSA", pq=False),
    _sig("ECDSA-P384-SHA384", 0, "ECDSA", pq=False),
)

# Symmetric primitives are listed so that rules can forbid or sunset them like any other
# algorithm; their level is the NIST category their key or output size matches.
_SYMMETRIC: tuple[AlgorithmInfo, ...] = (
    AlgorithmInfo(name="AES-256-GCM", kind="aead", nist_level=5, post_quantum=True, family="AES"),
    AlgorithmInfo(
        name="ChaCha20-Poly1305", kind="aead", nist_level=5, post_quantum=True, family="ChaCha20"
    ),
    *(
        AlgorithmInfo(name=name, kind="hash", nist_level=level, post_quantum=True, family=family)
        for name, level, family in (
            ("SHA-256", 1, "SHA-2"),
            ("SHA-384", 3, "SHA-2"),
            ("SHA-512", 5, "SHA-2"),
            ("SHA3-256", 1, "SHA-3"),
            ("SHA3-384", 3, "SHA-3"),
            ("SHA3-512", 5, "SHA-3"),
        )
    ),
)

# QKD keys are information-theoretically secure when the link is, but that security rests on
# the link and its authentication, not on a computational assumption, so QKD carries no NIST
# level of its own: a suite's level comes from its KEMs.
_QKD = AlgorithmInfo(name=QKD_COMPONENT, kind="qkd", nist_level=0, post_quantum=True, family="QKD")

ALGORITHMS: dict[str, AlgorithmInfo] = {
    info.name: info for info in (*_KEMS, *_SIGNATURES, *_SYMMETRIC, _QKD)
}
"""Every algorithm name a policy may use, keyed by its canonical spelling."""

ALIASES: dict[str, str] = {"X-Wing": "MLKEM768-X25519"}
"""Other accepted spellings, mapped to the canonical name that policies are stored under."""

KEM_NAMES: frozenset[str] = frozenset(info.name for info in _KEMS)
SIGNATURE_NAMES: frozenset[str] = frozenset(info.name for info in _SIGNATURES)
HASH_NAMES: tuple[str, ...] = tuple(i.name for i in _SYMMETRIC if i.kind == "hash")
AEAD_NAMES: tuple[str, ...] = tuple(i.name for i in _SYMMETRIC if i.kind == "aead")

PROVIDER_NAMES: tuple[str, ...] = ("cryptography", "pqcrypto", "liboqs")
"""The ``pqc`` providers a policy may list, in the order the package documents them."""


def canonical_name(name: str) -> str:
    """Return the canonical spelling of ``name`` (resolving aliases), or ``name`` unchanged."""
    return ALIASES.get(name, name)


def info(name: str) -> AlgorithmInfo:
    """Return the facts about ``name``; raises ``KeyError`` for an unknown name."""
    return ALGORITHMS[canonical_name(name)]


def unknown_name_message(name: str, kind: str, allowed: frozenset[str] | tuple[str, ...]) -> str:
    """Say that ``name`` is not a known ``kind`` name, suggesting the closest known ones."""
    close = difflib.get_close_matches(name, sorted(allowed), n=3, cutoff=0.6)
    hint = (
        f"did you mean {' or '.join(repr(c) for c in close)}?"
        if close
        else ("see `agile pqc list` or docs/policy.md for the names policies accept")
    )
    return f"unknown {kind} {name!r}; {hint}"
