"""CatKDF: the concatenate hybrid key derivation of ETSI TS 103 744 V1.2.1, clause 8.2.

All secrets are concatenated, in the order given, into one input keying material, and the
parties' messages are bound through the context::

    secrets = psk || k_1 || ... || k_n
    context = H(f(info, MA, MB))
    key     = KDF(secret = secrets, salt = label, info = context, L)

The order of ``secrets`` is a parameter: TS 103 744's own vectors put the ECDH secret first;
our built-in suites put the ML-KEM secret first, as SP 800-56C r2 clause 2 allows for
Z' = Z || T with Z from the approved scheme, and the QKD key after the others (see
docs/handshake.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from agile.kdf._common import (
    KMACS,
    KdfError,
    concat_format,
    hashed_format,
    kdf_function,
    kmac_kdf,
)


def catkdf(
    secrets: Sequence[bytes],
    *,
    ma: bytes,
    mb: bytes,
    info: bytes,
    label: bytes,
    length: int,
    hash_name: str = "SHA-256",
    psk: bytes = b"",
    kdf: str = "hkdf",
) -> bytes:
    """Derive ``length`` bytes from ``secrets`` (in order), bound to the messages MA and MB.

    ``kdf`` is ``hkdf`` (default), ``hmac``, ``kmac128`` or ``kmac256``; with KMAC,
    ``hash_name`` is not used.

    >>> key = catkdf([b"k1" * 16, b"k2" * 16], ma=b"A", mb=b"B", info=b"i", label=b"l", length=32)
    >>> len(key)
    32
    """
    if not secrets:
        raise KdfError("CatKDF needs at least one secret")
    ikm = psk + b"".join(secrets)
    if kdf in KMACS:
        # Clause 8.2 with KMAC: the context is f(info, MA, MB) itself, not its hash.
        context = concat_format(info, ma, mb)
        return kmac_kdf(KMACS[kdf], secret=ikm, salt=label, info=context, length=length)
    derive = kdf_function(kdf)
    context = hashed_format(hash_name, info, ma, mb)
    return derive(hash_name, secret=ikm, salt=label, info=context, length=length)
