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

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from agile.kdf._common import (
    KMACS,
    KdfError,
    be32,
    concat_format,
    hashed_format,
    hashlib_name,
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


class CatKdf:
    """CatKDF with the inputs that stay the same between two parties bound once.

    ``CatKdf(...).derive(secrets, ma=..., mb=...)`` equals ``catkdf(secrets, ma=..., mb=...,
    **the same keyword arguments)`` (a property test holds it to that). With HKDF, the
    context hash is computed from a copy of a hash state that has already absorbed
    ``f(info)``, and the label (salt) and hash are looked up once; a handshake derives one key
    per connection with the same ``info``, ``label`` and ``psk``.

    The object holds the PSK: its repr shows none of its inputs, and it cannot be pickled.

    >>> kdf = CatKdf(info=b"i", label=b"l", length=32)
    >>> kdf.derive([b"k1" * 16], ma=b"A", mb=b"B") == catkdf(
    ...     [b"k1" * 16], ma=b"A", mb=b"B", info=b"i", label=b"l", length=32)
    True
    """

    __slots__ = (
        "_fast",
        "_hash_name",
        "_info",
        "_kdf",
        "_label",
        "_length",
        "_name",
        "_prefix",
        "_psk",
        "_salt",
    )

    def __init__(
        self,
        *,
        info: bytes,
        label: bytes,
        length: int,
        hash_name: str = "SHA-256",
        psk: bytes = b"",
        kdf: str = "hkdf",
    ) -> None:
        self._info, self._label, self._length = info, label, length
        self._hash_name, self._psk, self._kdf = hash_name, psk, kdf
        self._fast = kdf == "hkdf"
        self._name = ""
        self._prefix: Any = None
        self._salt = b""
        if self._fast:
            name = hashlib_name(hash_name)
            prefix = hashlib.new(name)
            prefix.update(be32(len(info)))
            prefix.update(info)
            size = prefix.digest_size
            if not 1 <= length <= 255 * size:
                raise KdfError(f"HKDF-{hash_name} cannot produce {length} bytes")
            self._name, self._prefix = name, prefix
            self._salt = label or bytes(size)

    def __repr__(self) -> str:
        return f"<CatKdf {self._kdf} {self._hash_name} length={self._length}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("CatKdf holds a pre-shared key: it cannot be pickled or copied")

    def derive(self, secrets: Sequence[bytes], *, ma: bytes, mb: bytes) -> bytes:
        """The key for ``secrets`` (in order) bound to the messages MA and MB."""
        if not self._fast:
            return catkdf(
                secrets,
                ma=ma,
                mb=mb,
                info=self._info,
                label=self._label,
                length=self._length,
                hash_name=self._hash_name,
                psk=self._psk,
                kdf=self._kdf,
            )
        if not secrets:
            raise KdfError("CatKDF needs at least one secret")
        name = self._name
        h = self._prefix.copy()
        h.update(be32(len(ma)))
        h.update(ma)
        h.update(be32(len(mb)))
        h.update(mb)
        context = h.digest()
        # HKDF (RFC 5869): extract with the label as salt, then expand over the context.
        prk = hmac.digest(self._salt, self._psk + b"".join(secrets), name)
        block = hmac.digest(prk, context + b"\x01", name)
        length = self._length
        if length <= len(block):
            return block[:length]
        out = block
        counter = 2
        while len(out) < length:
            block = hmac.digest(prk, block + context + bytes([counter]), name)
            out += block
            counter += 1
        return out[:length]
