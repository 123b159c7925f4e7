"""ML-KEM key expansion: the 64-byte seed d || z to (ek, dk), as FIPS 203 specifies it.

This is low-level ("hazmat") code, easy to misuse: it returns the expanded decapsulation key
as plain bytes, and it is not hardened against timing side channels (numpy does not promise
constant-time arithmetic). It exists so that a provider whose library only takes the
expanded key (pqcrypto) can still use the standard 64-byte seed as its secret key format.

Theory of operation (FIPS 203, August 2024; section and algorithm numbers from there):

* ML-KEM.KeyGen_internal(d, z) (section 6.1, Algorithm 16):
  ``(ek_PKE, dk_PKE) = K-PKE.KeyGen(d)``; ``ek = ek_PKE``;
  ``dk = dk_PKE || ek || H(ek) || z`` with ``H = SHA3-256`` (section 4.1, eq. 4.4).
* K-PKE.KeyGen(d) (section 5.1, Algorithm 13), for module rank k:
  ``(rho, sigma) = G(d || k)`` with ``G = SHA3-512`` and k appended as one byte (eq. 4.5);
  ``A_hat[i, j] = SampleNTT(rho || j || i)`` for i, j < k;
  ``s[i] = SamplePolyCBD_eta1(PRF_eta1(sigma, N))`` and then
  ``e[i] = SamplePolyCBD_eta1(PRF_eta1(sigma, N))`` with N counting 0, 1, ..., 2k - 1 and
  ``PRF_eta(s, b) = SHAKE256(s || b, 8 * 64 * eta bits)`` (eq. 4.3);
  ``t_hat = A_hat o NTT(s) + NTT(e)`` (o: MultiplyNTTs, summed over j);
  ``ek_PKE = ByteEncode_12(t_hat) || rho``; ``dk_PKE = ByteEncode_12(NTT(s))``.
* SampleNTT (section 4.2.2, Algorithm 7): SHAKE128 of the 34-byte input read three bytes
  at a time, ``d1 = C0 + 256 (C1 mod 16)``, ``d2 = floor(C1 / 16) + 16 C2``; each of d1,
  d2 (in that order) below q = 3329 is the next coefficient, until there are 256.
* SamplePolyCBD_eta (Algorithm 8): with the bits b of the 64 eta input bytes (least
  significant bit of each byte first, Algorithm 4 BytesToBits), coefficient i is
  ``sum(b[2 i eta + j]) - sum(b[2 i eta + eta + j])`` over j < eta, mod q.
* NTT (section 4.3, Algorithm 9): seven layers of Cooley-Tukey butterflies with lengths
  128, 64, ..., 2; layer with 128/len blocks uses ``zeta_i = 17^BitRev7(i) mod q`` for
  i = 128/len, ..., 256/len - 1, one per block: ``t = zeta f[j + len]``,
  ``f[j + len] = f[j] - t``, ``f[j] = f[j] + t``.
* MultiplyNTTs / BaseCaseMultiply (section 4.3.1, Algorithms 11 and 12): pairs
  ``(a0, a1) x (b0, b1) = (a0 b0 + a1 b1 gamma_i, a0 b1 + a1 b0)`` with
  ``gamma_i = 17^(2 BitRev7(i) + 1) mod q``, i < 128.
* ByteEncode_12 (section 4.2.1, Algorithm 5): 256 12-bit coefficients, least significant
  bit first, into 384 bytes.
* Parameter sets (section 8, Table 2): k = 2, 3, 4 and eta1 = 3, 2, 2 for ML-KEM-512,
  -768 and -1024.

Everything is done on whole arrays: the k x k matrix is sampled, and the 2k noise polynomials
transformed, in one pass each; the NTT is applied as its 256 x 256 matrix (Algorithm 9 run on
the unit vectors), which gives the same result exactly. The hashing is hashlib's SHA3 and
SHAKE.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

__all__ = ["MLKEM_PARAMETERS", "SEED_SIZE", "expand_seed"]

Q = 3329
N = 256
SEED_SIZE = 64  # d || z, 32 bytes each (FIPS 203 Algorithm 19 inputs)

# name -> (k, eta1): FIPS 203 section 8, Table 2.
MLKEM_PARAMETERS: dict[str, tuple[int, int]] = {
    "ML-KEM-512": (2, 3),
    "ML-KEM-768": (3, 2),
    "ML-KEM-1024": (4, 2),
}

_Array = npt.NDArray[np.int64]


def _bit_reverse_7(value: int) -> int:
    return int(f"{value:07b}"[::-1], 2)


# Algorithm 9's zeta_i = 17^BitRev7(i) mod q, and Algorithm 11's gamma_i = 17^(2 BitRev7(i)+1).
_ZETAS: _Array = np.array([pow(17, _bit_reverse_7(i), Q) for i in range(128)], dtype=np.int64)
_GAMMAS: _Array = np.array(
    [pow(17, 2 * _bit_reverse_7(i) + 1, Q) for i in range(128)], dtype=np.int64
)

# Three SHAKE128 blocks (504 bytes, 336 candidates) are one short of 256 accepted
# coefficients about 1% of the time; five blocks (840 bytes) almost never are, and the
# loop below squeezes more whenever a row is still short.
_SAMPLE_NTT_BYTES = 5 * 168


def _sample_ntt(rho: bytes, k: int) -> _Array:
    """Algorithm 7 for every matrix entry: A_hat[i, j] from SHAKE128(rho || j || i)."""
    inputs = [rho + bytes([j, i]) for i in range(k) for j in range(k)]
    length = _SAMPLE_NTT_BYTES
    while True:
        # SHAKE output is a prefix of any longer output, so asking for more bytes extends
        # the same stream that Algorithm 7 reads.
        stream = np.frombuffer(
            b"".join(hashlib.shake_128(data).digest(length) for data in inputs), dtype=np.uint8
        ).reshape(k * k, length // 3, 3)
        c = stream.astype(np.int64)
        d1 = c[..., 0] + 256 * (c[..., 1] & 0x0F)
        d2 = (c[..., 1] >> 4) + 16 * c[..., 2]
        candidates = np.stack((d1, d2), axis=-1).reshape(k * k, -1)  # d1 before d2
        accepted = candidates < Q
        if int(accepted.sum(axis=1).min()) >= N:
            break
        length += 3 * 168
    # A stable sort of "not accepted" puts the accepted candidates first, in stream order.
    order = np.argsort(~accepted, axis=1, kind="stable")[:, :N]
    return np.take_along_axis(candidates, order, axis=1).reshape(k, k, N)


def _sample_cbd(sigma: bytes, eta: int, first: int, count: int) -> _Array:
    """Algorithm 8 over PRF_eta(sigma, N) for N = first, ..., first + count - 1."""
    blocks = b"".join(
        hashlib.shake_256(sigma + bytes([n])).digest(64 * eta) for n in range(first, first + count)
    )
    bits = np.unpackbits(np.frombuffer(blocks, dtype=np.uint8), bitorder="little")
    sums: _Array = bits.reshape(count, N, 2, eta).sum(axis=-1, dtype=np.int64)
    return (sums[..., 0] - sums[..., 1]) % Q


def _ntt(polys: _Array) -> _Array:
    """Algorithm 9 on the last axis (length 256), every layer as one array operation."""
    f = polys.copy()
    shape = f.shape
    length = 128
    while length >= 2:
        blocks = N // (2 * length)
        view = f.reshape(*shape[:-1], blocks, 2, length)
        zetas = _ZETAS[blocks : 2 * blocks].reshape(blocks, 1)
        t = (zetas * view[..., 1, :]) % Q
        low = view[..., 0, :]
        view[..., 1, :] = (low - t) % Q
        view[..., 0, :] = (low + t) % Q
        length //= 2
    return f


# The NTT is linear over Z_q, so Algorithm 9 applied to the 256 unit vectors gives its
# matrix: NTT(f) = f @ _NTT_MATRIX mod q. Entries and coefficients are below q, so each dot
# product is below 256 q^2 < 2^32 and float64 (BLAS) computes it exactly; one matrix product
# replaces seven layers of small array operations.
_NTT_MATRIX: npt.NDArray[np.float64] = _ntt(np.eye(N, dtype=np.int64)).astype(np.float64)


def _ntt_fast(polys: _Array) -> _Array:
    """Algorithm 9 as one exact matrix product (see ``_NTT_MATRIX``)."""
    product = polys.astype(np.float64) @ _NTT_MATRIX
    return product.astype(np.int64) % Q


def _multiply_ntts(f: _Array, g: _Array) -> _Array:
    """Algorithms 11 and 12 on the last axis, broadcasting over the others."""
    a = f.reshape(*f.shape[:-1], 128, 2)
    b = g.reshape(*g.shape[:-1], 128, 2)
    a0, a1, b0, b1 = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    c0 = (a0 * b0 + (a1 * b1 % Q) * _GAMMAS) % Q
    c1 = (a0 * b1 + a1 * b0) % Q
    return np.stack((c0, c1), axis=-1).reshape(np.broadcast_shapes(f.shape, g.shape))


def _byte_encode_12(polys: _Array) -> bytes:
    """Algorithm 5 with d = 12: pairs of coefficients into three bytes, low bits first."""
    pairs = polys.reshape(-1, 2)
    a, b = pairs[:, 0], pairs[:, 1]
    packed = np.stack((a & 0xFF, (a >> 8) | ((b & 0x0F) << 4), b >> 4), axis=-1)
    return packed.astype(np.uint8).tobytes()


def expand_seed(name: str, seed: bytes) -> tuple[bytes, bytes]:
    """ML-KEM.KeyGen_internal(d, z) for parameter set ``name``: return ``(ek, dk)``.

    ``seed`` is the 64-byte ``d || z``; ``dk`` is the expanded decapsulation key
    ``dk_PKE || ek || H(ek) || z`` (FIPS 203 Algorithm 16).

    Example::

        ek, dk = expand_seed("ML-KEM-768", bytes(64))
        assert (len(ek), len(dk)) == (1184, 2400)
    """
    k, eta1 = MLKEM_PARAMETERS[name]
    if len(seed) != SEED_SIZE:
        raise ValueError(f"{name}: the seed d || z must be {SEED_SIZE} bytes, got {len(seed)}")
    d, z = seed[:32], seed[32:]
    g = hashlib.sha3_512(d + bytes([k])).digest()
    rho, sigma = g[:32], g[32:]
    a_hat = _sample_ntt(rho, k)
    # s and e in one batch: N = 0..k-1 give s, N = k..2k-1 give e (Algorithm 13 order).
    noise_hat = _ntt_fast(_sample_cbd(sigma, eta1, 0, 2 * k))
    s_hat, e_hat = noise_hat[:k], noise_hat[k:]
    # t_hat[i] = sum_j A_hat[i, j] o s_hat[j] + e_hat[i]; each product is below q, so the
    # sum of at most four stays far inside int64.
    t_hat = (_multiply_ntts(a_hat, s_hat[np.newaxis, :, :]).sum(axis=1) + e_hat) % Q
    ek = _byte_encode_12(t_hat) + rho
    dk = _byte_encode_12(s_hat) + ek + hashlib.sha3_256(ek).digest() + z
    return ek, dk
