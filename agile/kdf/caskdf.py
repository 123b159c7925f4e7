"""CasKDF: the cascade hybrid key derivation of ETSI TS 103 744 V1.2.1, clause 8.3.

Each secret is absorbed in its own round, chained through a secret that the previous round
produced::

    r_i              = HMAC-H(key = chain_{i-1}, H(f(k_i, MA_i, MB_i)))
    chain_i || key_i = KDF(secret = r_i, salt = label_i, info = info_i, |H| + L)

``chain_0`` is the pre-shared key, or empty (with KMAC, zero bytes of the chain length, as
in the standard's reference implementation). The result is ``key_n`` of the last round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agile.kdf._common import (
    KMAC_CHAIN_LENGTH,
    KMACS,
    KdfError,
    concat_format,
    digest_size,
    hashed_format,
    hmac_prf,
    kdf_function,
    kmac_kdf,
)
from agile.kdf._kmac import kmac


@dataclass(frozen=True, kw_only=True, slots=True)
class CascadeRound:
    """The public inputs of one CasKDF round (the secret ``k_i`` is passed separately)."""

    ma: bytes
    mb: bytes
    label: bytes
    info: bytes


def caskdf_round(
    secret: bytes,
    round_inputs: CascadeRound,
    *,
    chain: bytes,
    length: int,
    hash_name: str = "SHA-256",
    kdf: str = "hkdf",
) -> tuple[bytes, bytes]:
    """One round: return ``(chain_i, key_i)``."""
    if kdf in KMACS:
        bits = KMACS[kdf]
        size = KMAC_CHAIN_LENGTH[bits]
        # Clause 8.3 with KMAC: the PRF is KMAC keyed by the chain, over f(k_i, MA_i, MB_i).
        r = kmac(bits, chain, concat_format(secret, round_inputs.ma, round_inputs.mb), size)
        out = kmac_kdf(
            bits, secret=r, salt=round_inputs.label, info=round_inputs.info, length=size + length
        )
        return out[:size], out[size:]
    derive = kdf_function(kdf)
    size = digest_size(hash_name)
    context = hashed_format(hash_name, secret, round_inputs.ma, round_inputs.mb)
    r = hmac_prf(hash_name, chain, context)
    out = derive(
        hash_name, secret=r, salt=round_inputs.label, info=round_inputs.info, length=size + length
    )
    return out[:size], out[size:]


def caskdf(
    secrets: Sequence[bytes],
    rounds: Sequence[CascadeRound],
    *,
    length: int,
    hash_name: str = "SHA-256",
    psk: bytes = b"",
    kdf: str = "hkdf",
) -> bytes:
    """Derive ``length`` bytes by cascading ``secrets`` (in order), one round each.

    >>> r = CascadeRound(ma=b"A", mb=b"B", label=b"l", info=b"i")
    >>> len(caskdf([b"k1" * 16, b"k2" * 16], [r, r], length=32))
    32
    """
    if not secrets:
        raise KdfError("CasKDF needs at least one secret")
    if len(secrets) != len(rounds):
        raise KdfError(f"CasKDF got {len(secrets)} secrets but {len(rounds)} rounds")
    chain = psk
    if kdf in KMACS and not chain:
        # KMAC takes no empty key (OpenSSL refuses keys under 4 bytes); like the standard's
        # reference implementation, start the chain from zero bytes of the chain length.
        chain = bytes(KMAC_CHAIN_LENGTH[KMACS[kdf]])
    key = b""
    for secret, round_inputs in zip(secrets, rounds, strict=True):
        chain, key = caskdf_round(
            secret, round_inputs, chain=chain, length=length, hash_name=hash_name, kdf=kdf
        )
    return key
