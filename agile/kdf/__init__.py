"""Hybrid key combiners of ETSI TS 103 744 V1.2.1: CatKDF (clause 8.2) and CasKDF (clause 8.3).

Each takes ``kdf="hkdf"`` (default), ``"hmac"``, ``"kmac128"`` or ``"kmac256"``: the KDF
variants of the standard's clauses 7.4.2-7.4.4.

These functions take and return plain ``bytes``: they are the building blocks that
:mod:`agile.handshake` uses, and are easy to misuse on their own (the order of the secrets and
the binding of both parties' messages are the caller's job).
"""

from __future__ import annotations

from agile.kdf._common import (
    KdfError,
    concat_format,
    digest_size,
    hash_names,
    hashed_format,
    hkdf,
    hmac_kdf,
)
from agile.kdf.caskdf import CascadeRound, caskdf, caskdf_round
from agile.kdf.catkdf import CatKdf, catkdf

__all__ = [
    "CascadeRound",
    "CatKdf",
    "KdfError",
    "caskdf",
    "caskdf_round",
    "catkdf",
    "concat_format",
    "digest_size",
    "hash_names",
    "hashed_format",
    "hkdf",
    "hmac_kdf",
]
