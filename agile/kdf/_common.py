"""Building blocks shared by CatKDF and CasKDF (ETSI TS 103 744 V1.2.1, clauses 7 and 8).

- ``f(x1, x2, x3)`` is the concatenation formatting function of clause 7.2.2: each argument is
  preceded by its length in bytes as a 4-byte big-endian integer.
- The hash-based variant of clause 7.2.3 is ``H(f(...))``.
- Three KDFs are offered, each keyed by the label as salt: HKDF (RFC 5869, clause 7.4.2),
  and the one-step KDF of SP 800-56C r2 clause 4.1 with HMAC (clause 7.4.3) or with KMAC
  (clause 7.4.4; context not hashed, PRF of CasKDF = KMAC).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Literal

from agile._errors import AgileError
from agile.kdf._kmac import kmac

HashName = Literal["SHA-256", "SHA-384", "SHA-512", "SHA3-256", "SHA3-384", "SHA3-512"]
KdfName = Literal["hkdf", "hmac", "kmac128", "kmac256"]

# Standard spelling -> hashlib name.
_HASHES: dict[str, str] = {
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
    "SHA3-256": "sha3_256",
    "SHA3-384": "sha3_384",
    "SHA3-512": "sha3_512",
}

_MAX_FIELD = 0xFFFFFFFF


class KdfError(AgileError):
    """A combiner was called with parameters it cannot use (unknown hash, bad length)."""


def hash_names() -> tuple[str, ...]:
    """The hash names the combiners accept, in their standard spelling."""
    return tuple(_HASHES)


def hashlib_name(hash_name: str) -> str:
    """The :mod:`hashlib` constructor name for a standard hash name."""
    try:
        return _HASHES[hash_name]
    except KeyError:
        known = ", ".join(_HASHES)
        raise KdfError(f"unknown hash {hash_name!r}; use one of {known}") from None


def digest_size(hash_name: str) -> int:
    """Output length in bytes of ``hash_name``."""
    return hashlib.new(hashlib_name(hash_name)).digest_size


def be32(n: int) -> bytes:
    """4-byte big-endian length prefix."""
    if not 0 <= n <= _MAX_FIELD:
        raise KdfError(f"field of {n} bytes does not fit a 32-bit length prefix")
    return n.to_bytes(4, "big")


def concat_format(*args: bytes) -> bytes:
    """The formatting function f of TS 103 744 clause 7.2.2: ``be32(len x) || x`` for each x."""
    return b"".join(be32(len(a)) + a for a in args)


def hashed_format(hash_name: str, *args: bytes) -> bytes:
    """``H(f(args...))``, clause 7.2.3."""
    h = hashlib.new(hashlib_name(hash_name))
    for a in args:
        h.update(be32(len(a)))
        h.update(a)
    return h.digest()


def hkdf(hash_name: str, *, secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF (RFC 5869) with ``salt`` = the label, as TS 103 744 clause 7.4.2 uses it."""
    name = hashlib_name(hash_name)
    size = hashlib.new(name).digest_size
    if not 1 <= length <= 255 * size:
        raise KdfError(f"HKDF-{hash_name} cannot produce {length} bytes")
    # RFC 5869 written out over the one-shot hmac.digest; the reference test vectors and a
    # property test against pyca's HKDF hold it to the RFC.
    prk = hmac.digest(salt or bytes(size), secret, name)
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), name)
        out += block
        counter += 1
    return out[:length]


def hmac_kdf(hash_name: str, *, secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """One-step KDF of SP 800-56C r2 clause 4.1 with HMAC-H (TS 103 744 clause 7.4.3).

    ``K(i) = HMAC-H(salt, be32(i) || secret || info)``, concatenated until ``length`` bytes.
    An empty salt is replaced by the standard's default: zero bytes of the hash's block length.
    """
    name = hashlib_name(hash_name)
    if length < 1:
        raise KdfError("the HMAC KDF cannot produce an empty key")
    key = salt or bytes(hashlib.new(name).block_size)
    out = bytearray()
    counter = 1
    while len(out) < length:
        out += hmac.digest(key, be32(counter) + secret + info, name)
        counter += 1
    return bytes(out[:length])


def hmac_prf(hash_name: str, key: bytes, message: bytes) -> bytes:
    """HMAC-H(key, message); the PRF of CasKDF (clause 7.3.2). An empty key is allowed."""
    return hmac.digest(key, message, hashlib_name(hash_name))


def kmac_kdf(bits: int, *, secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """One-step KDF of SP 800-56C r2 clause 4.1 with KMAC (TS 103 744 clause 7.4.4).

    ``KMAC#(key = salt, be32(1) || secret || info, L, S = "KDF")``: KMAC produces any length
    in one call, so the counter stays 1.
    """
    if length < 1:
        raise KdfError("the KMAC KDF cannot produce an empty key")
    return kmac(bits, salt, be32(1) + secret + info, length, b"KDF")


KMAC_CHAIN_LENGTH = {128: 32, 256: 48}
"""Bytes of the CasKDF chain secret with KMAC (the reference implementation's sizes)."""

KdfFunction = Callable[..., bytes]

KDFS: dict[str, KdfFunction] = {"hkdf": hkdf, "hmac": hmac_kdf}
KMACS = {"kmac128": 128, "kmac256": 256}


def kdf_function(kdf: str) -> KdfFunction:
    """The KDF named ``kdf`` (``hkdf`` or ``hmac``; the KMAC variants are handled apart)."""
    try:
        return KDFS[kdf]
    except KeyError:
        known = ", ".join((*KDFS, *KMACS))
        raise KdfError(f"unknown KDF {kdf!r}; use one of {known}") from None
