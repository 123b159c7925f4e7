"""Input checks and error messages shared by every provider.

The checks here are the ones the standards require of callers: sizes, and the FIPS 203
encapsulation-key (modulus) check for ML-KEM. Messages give sizes, never bytes.
"""

from __future__ import annotations

from pqc._errors import InvalidCiphertext, InvalidKey

# FIPS 203 parameter sets: name -> k (module rank). Sizes follow from k (FIPS 203 table 3).
MLKEM_RANK = {"ML-KEM-512": 2, "ML-KEM-768": 3, "ML-KEM-1024": 4}
MLKEM_LEVEL = {"ML-KEM-512": 1, "ML-KEM-768": 3, "ML-KEM-1024": 5}
MLKEM_CIPHERTEXT_SIZE = {"ML-KEM-512": 768, "ML-KEM-768": 1088, "ML-KEM-1024": 1568}
MLKEM_Q = 3329


def mlkem_public_key_size(name: str) -> int:
    return 384 * MLKEM_RANK[name] + 32


def mlkem_expanded_secret_key_size(name: str) -> int:
    return 768 * MLKEM_RANK[name] + 96


def mlkem_encapsulation_key_is_valid(name: str, public_key: bytes) -> bool:
    """FIPS 203 section 7.2 "modulus check": every 12-bit coefficient of ek is below q.

    Equivalently ByteEncode12(ByteDecode12(ek)) == ek. The caller has checked the length.
    """
    import numpy as np

    rank = MLKEM_RANK[name]
    packed = np.frombuffer(public_key, dtype=np.uint8, count=384 * rank).reshape(-1, 3)
    packed = packed.astype(np.uint16)
    low = packed[:, 0] | ((packed[:, 1] & 0x0F) << 8)
    high = (packed[:, 1] >> 4) | (packed[:, 2] << 4)
    return bool((low < MLKEM_Q).all() and (high < MLKEM_Q).all())


def bad_public_key(algorithm: str, provider: str, expected: int, public_key: bytes) -> InvalidKey:
    if len(public_key) != expected:
        return InvalidKey(
            f"{algorithm} ({provider}): public key must be {expected} bytes, got {len(public_key)}"
        )
    return InvalidKey(
        f"{algorithm} ({provider}): public key of {expected} bytes is malformed "
        "(it fails the standard's validity check); obtain the peer's key again"
    )


def bad_secret_key(algorithm: str, provider: str, expected: int, secret_key: bytes) -> InvalidKey:
    if len(secret_key) != expected:
        return InvalidKey(
            f"{algorithm} ({provider}): secret key must be {expected} bytes, got {len(secret_key)}"
        )
    return InvalidKey(f"{algorithm} ({provider}): secret key of {expected} bytes is malformed")


def bad_seed(algorithm: str, provider: str, expected: int, seed: bytes) -> InvalidKey:
    return InvalidKey(f"{algorithm} ({provider}): seed must be {expected} bytes, got {len(seed)}")


def bad_ciphertext(
    algorithm: str, provider: str, expected: int, ciphertext: bytes
) -> InvalidCiphertext:
    if len(ciphertext) != expected:
        return InvalidCiphertext(
            f"{algorithm} ({provider}): ciphertext must be {expected} bytes, got {len(ciphertext)}"
        )
    return InvalidCiphertext(
        f"{algorithm} ({provider}): ciphertext of {expected} bytes is malformed"
    )


def require_bytes(value: object, what: str, algorithm: str) -> bytes:
    """Accept bytes-like input; reject anything else with a pqc error, not a TypeError."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise InvalidKey(f"{algorithm}: {what} must be bytes, got {type(value).__name__}")
