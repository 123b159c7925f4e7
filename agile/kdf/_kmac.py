"""KMAC128 and KMAC256 (NIST SP 800-185), over a Keccak-f[1600] sponge written from FIPS 202.

:mod:`hashlib` offers SHAKE but not cSHAKE, and pyca/cryptography 50 has no KMAC, so the
permutation is implemented here. It is plain Python and slow (about a millisecond per block):
it serves the KMAC variants of TS 103 744, which no built-in policy selects. Tests hold it to
SHAKE128/256 from :mod:`hashlib`, the SP 800-185 KMAC samples and the 24 KMAC vectors of
ETSI TS 103 744.

FIPS 202: the state is 5x5 lanes of 64 bits, lane (x, y) holding bytes 8(x + 5y) ... of the
state, little-endian; 24 rounds of theta, rho, pi, chi, iota; pad10*1 after the domain bits
(SHAKE: 1111, cSHAKE: 00).
SP 800-185: ``cSHAKE(X, L, N, S) = Keccak[c](bytepad(encode_string(N) || encode_string(S),
rate) || X || 00, L)`` and ``KMAC(K, X, L, S) = cSHAKE(bytepad(encode_string(K), rate) || X ||
right_encode(L), L, "KMAC", S)``.
"""

from __future__ import annotations

_ROUND_CONSTANTS = (
    0x0000000000000001,
    0x0000000000008082,
    0x800000000000808A,
    0x8000000080008000,
    0x000000000000808B,
    0x0000000080000001,
    0x8000000080008081,
    0x8000000000008009,
    0x000000000000008A,
    0x0000000000000088,
    0x0000000080008009,
    0x000000008000000A,
    0x000000008000808B,
    0x800000000000008B,
    0x8000000000008089,
    0x8000000000008003,
    0x8000000000008002,
    0x8000000000000080,
    0x000000000000800A,
    0x800000008000000A,
    0x8000000080008081,
    0x8000000000008080,
    0x0000000080000001,
    0x8000000080008008,
)
# Rotation offsets r[x][y] of the rho step.
_ROTATIONS = (
    (0, 36, 3, 41, 18),
    (1, 44, 10, 45, 2),
    (62, 6, 43, 15, 61),
    (28, 55, 25, 21, 56),
    (27, 20, 39, 8, 14),
)
_MASK = (1 << 64) - 1
_RATES = {128: 168, 256: 136}  # bytes: 1600 - 2 * security bits
_SHAKE_SUFFIX = 0x1F
_CSHAKE_SUFFIX = 0x04

State = list[list[int]]


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (64 - shift))) & _MASK if shift else value


def _permute(a: State) -> State:
    for constant in _ROUND_CONSTANTS:
        c = [a[x][0] ^ a[x][1] ^ a[x][2] ^ a[x][3] ^ a[x][4] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rotl(c[(x + 1) % 5], 1) for x in range(5)]
        a = [[a[x][y] ^ d[x] for y in range(5)] for x in range(5)]
        b = [[0] * 5 for _ in range(5)]
        for x in range(5):
            for y in range(5):
                b[y][(2 * x + 3 * y) % 5] = _rotl(a[x][y], _ROTATIONS[x][y])
        a = [
            [b[x][y] ^ (~b[(x + 1) % 5][y] & b[(x + 2) % 5][y]) for y in range(5)] for x in range(5)
        ]
        a[0][0] ^= constant
    return a


def sponge(rate: int, message: bytes, suffix: int, length: int) -> bytes:
    """Keccak[c] with ``rate`` bytes, the domain ``suffix`` byte and pad10*1; ``length`` bytes."""
    padded = bytearray(message) + bytes([suffix])
    padded += bytes(-len(padded) % rate)
    padded[-1] |= 0x80
    state: State = [[0] * 5 for _ in range(5)]
    lanes = rate // 8
    for offset in range(0, len(padded), rate):
        for i in range(lanes):
            start = offset + 8 * i
            state[i % 5][i // 5] ^= int.from_bytes(padded[start : start + 8], "little")
        state = _permute(state)
    out = bytearray()
    while True:
        for i in range(lanes):
            out += state[i % 5][i // 5].to_bytes(8, "little")
        if len(out) >= length:
            return bytes(out[:length])
        state = _permute(state)


def left_encode(value: int) -> bytes:
    n = max(1, (value.bit_length() + 7) // 8)
    return bytes([n]) + value.to_bytes(n, "big")


def right_encode(value: int) -> bytes:
    n = max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(n, "big") + bytes([n])


def encode_string(data: bytes) -> bytes:
    return left_encode(8 * len(data)) + data


def bytepad(data: bytes, width: int) -> bytes:
    padded = left_encode(width) + data
    return padded + bytes(-len(padded) % width)


def cshake(bits: int, message: bytes, length: int, name: bytes = b"", custom: bytes = b"") -> bytes:
    """cSHAKE128/256 (SP 800-185 clause 3); SHAKE when ``name`` and ``custom`` are empty."""
    rate = _RATES[bits]
    if not name and not custom:
        return sponge(rate, message, _SHAKE_SUFFIX, length)
    prefix = bytepad(encode_string(name) + encode_string(custom), rate)
    return sponge(rate, prefix + message, _CSHAKE_SUFFIX, length)


def kmac(bits: int, key: bytes, message: bytes, length: int, custom: bytes = b"") -> bytes:
    """KMAC128 or KMAC256 (SP 800-185 clause 4) with an output of ``length`` bytes."""
    rate = _RATES[bits]
    data = bytepad(encode_string(key), rate) + message + right_encode(8 * length)
    return cshake(bits, data, length, b"KMAC", custom)
