"""Toeplitz hashing over GF(2), computed with the FFT: privacy amplification and verification.

Theory of operation
-------------------
A random ``m x n`` Toeplitz matrix ``T`` over GF(2) is fixed by ``m + n - 1`` seed bits
``s``: ``T[i, j] = s[i - j + n - 1]``. The family ``x -> T x`` is two-universal (Carter and
Wegman 1979; Krawczyk, CRYPTO 1994), so by the leftover hash lemma it extracts ``m`` bits that
are ``epsilon``-close to uniform and independent of Eve when ``m`` is below the smooth
min-entropy of the key by ``2 log2(1/epsilon)`` (Renner 2005; Tomamichel et al. 2011); it also
makes ``Pr[T x = T y] = 2^-m`` for ``x != y``, which error verification uses.

``y_i = sum_j s[i - j + n - 1] x_j mod 2`` is a slice of the integer convolution ``s * x``.
The convolution is computed with real FFTs of length ``P >= n + m - 1`` (a circular
convolution of that length does not alias the entries needed), then rounded and reduced mod
2. The integer sums are at most ``min(n, m + n - 1)``, well inside the 53-bit mantissa, and
the FFT's rounding error for 0/1 inputs grows like ``log P`` times machine epsilon times the
sum; the code measures the distance of every output to the nearest integer and, should it ever
exceed 1/4, recomputes in chunks of ``2^16`` columns (sums then below ``2^16``), so a rounding
error can never change a bit silently. Short outputs (verification tags of up to 256 bits)
are computed exactly instead, one row at a time, as the parity of a bit-packed AND.

Privacy amplification uses the *modified* Toeplitz family ``x -> x[:m] xor T' x[m:]`` with
``T'`` an ``m x (n - m)`` Toeplitz matrix (Hayashi and Tsurumaru, IEEE Trans. Inf. Theory 62,
2213 (2016)). It is two-universal as well: for ``x != y`` with difference ``(d1, d2)``, a
collision needs ``T' d2 = d1``, impossible when ``d2 = 0`` and of probability ``2^-m``
otherwise, since ``T' d2`` is uniform for a random Toeplitz ``T'`` and ``d2 != 0``. It needs only
``n - 1`` seed bits and an FFT of length about ``n`` instead of ``n + m``.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np
from numpy.typing import NDArray

from qkd._errors import QKDError

__all__ = [
    "fast_length",
    "modified_toeplitz_hash",
    "modified_toeplitz_hash_many",
    "toeplitz_hash",
    "toeplitz_hash_many",
    "toeplitz_hash_reference",
]

_CHUNK = 1 << 16
# Largest distance of an FFT output from an integer that is trusted without recomputation.
_MAX_ROUNDING = 0.25
# Up to this many output bits (verification tags) a bit-packed product beats the FFT.
_PACKED_ROWS = 256
# From this FFT length up, the seed's transform runs in a thread beside the inputs' (~1 ms).
_THREADED_FFT = 1 << 16


def fast_length(minimum: int) -> int:
    """An FFT-friendly length >= ``minimum``: the smallest ``c 2^a`` with small odd ``c``.

    Mostly-power-of-two lengths are markedly faster in pocketfft than other 5-smooth ones.
    """
    if minimum <= 1:
        return 1
    return min(c << max(0, math.ceil(math.log2(minimum / c))) for c in (1, 3, 5, 9, 15, 25))


def _spectrum(bits: NDArray[np.uint8], size: int) -> NDArray[np.complex128]:
    return np.fft.rfft(bits.astype(np.float64), size)


def _spectra(
    seed: NDArray[np.uint8], xs: list[NDArray[np.uint8]], size: int
) -> list[NDArray[np.complex128]]:
    """The spectra of ``seed`` and of every ``x``, the seed's first.

    The seed's transform does not depend on the inputs' (and numpy's FFT releases the GIL), so
    on a machine with a second core a long one runs in a thread beside the first input's: a
    third less time for one input. A short one is not worth starting a thread.
    """
    if size < _THREADED_FFT or (os.cpu_count() or 1) < 2:
        return [_spectrum(seed, size), *[_spectrum(x, size) for x in xs]]
    box: list[NDArray[np.complex128]] = []
    worker = threading.Thread(target=lambda: box.append(_spectrum(seed, size)), daemon=True)
    worker.start()
    rest = [_spectrum(x, size) for x in xs]
    worker.join()
    if not box:  # the thread failed (out of memory): the same transform, here, says why
        box.append(_spectrum(seed, size))
    return [box[0], *rest]


def _convolve_slices(
    seed: NDArray[np.uint8], xs: list[NDArray[np.uint8]], m: int
) -> tuple[list[NDArray[np.float64]], float]:
    """Entries ``n-1 .. n+m-2`` of ``seed * x`` for each ``x`` (all of length ``n``)."""
    n = xs[0].size
    size = fast_length(n + m - 1)
    seed_spectrum, *x_spectra = _spectra(seed, xs, size)
    out, worst = [], 0.0
    for x_spectrum in x_spectra:
        full = np.fft.irfft(seed_spectrum * x_spectrum, size)
        part = full[n - 1 : n - 1 + m]
        rounded = np.rint(part)
        worst = max(worst, float(np.max(np.abs(part - rounded))))
        out.append(rounded)
    return out, worst


def _parity(values: NDArray[np.float64]) -> NDArray[np.uint8]:
    return (values.astype(np.int64) & 1).astype(np.uint8)


def _toeplitz_packed(
    seed: NDArray[np.uint8], xs: list[NDArray[np.uint8]], m: int
) -> list[NDArray[np.uint8]]:
    """Exact bit-packed product for few rows: ``y_i = parity(s[i : i + n] & reversed(x))``."""
    n = xs[0].size
    words = -(-n // 64)
    padded_bits = words * 64
    rev = []
    for x in xs:
        r = np.zeros(padded_bits, dtype=np.uint8)
        r[:n] = x[::-1]
        rev.append(np.packbits(r).view(np.uint64))
    s_pad = np.zeros(m + padded_bits + 64, dtype=np.uint8)
    s_pad[: seed.size] = seed
    # One packing per bit offset; row i is a byte-aligned slice of packing i % 8.
    packed = [np.packbits(s_pad[b:]) for b in range(8)]
    out = [np.zeros(m, dtype=np.uint8) for _ in xs]
    for i in range(m):
        start = i // 8
        window = packed[i % 8][start : start + 8 * words].copy().view(np.uint64)
        for y, r64 in zip(out, rev, strict=True):
            y[i] = int(np.bitwise_count(window & r64).sum()) & 1
    return out


def toeplitz_hash_many(
    seed: NDArray[np.uint8], xs: list[NDArray[np.uint8]], m: int
) -> list[NDArray[np.uint8]]:
    """:func:`toeplitz_hash` of several inputs of one length under one seed (one seed FFT)."""
    if not xs:
        return []
    n = int(xs[0].size)
    if any(x.size != n for x in xs):
        raise QKDError("toeplitz: every input hashed under one seed must have the same length")
    if m < 0 or seed.size != m + n - 1:
        raise QKDError(f"toeplitz: a {m} x {n} matrix needs {m + n - 1} seed bits, got {seed.size}")
    if m == 0 or n == 0:
        return [np.zeros(m, dtype=np.uint8) for _ in xs]
    if m <= _PACKED_ROWS:
        return _toeplitz_packed(seed, xs, m)
    rounded, worst = _convolve_slices(seed, xs, m)
    if worst < _MAX_ROUNDING:
        return [_parity(r) for r in rounded]
    # Column chunks: T x = sum over chunks of T[:, c] x[c]; each chunk's sums stay below 2^16.
    totals = [np.zeros(m, dtype=np.uint8) for _ in xs]
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        # Columns start..stop-1 use the seed indices i - j + n - 1 for j in that range.
        sub_seed = seed[n - stop : n - start + m - 1]
        parts, part_worst = _convolve_slices(sub_seed, [x[start:stop] for x in xs], m)
        if part_worst >= 0.25:
            raise QKDError("toeplitz: FFT rounding error too large even in chunks")
        for total, part in zip(totals, parts, strict=True):
            total[:] ^= _parity(part)
    return totals


def toeplitz_hash(seed: NDArray[np.uint8], x: NDArray[np.uint8], m: int) -> NDArray[np.uint8]:
    """``T x`` over GF(2) for the ``m x len(x)`` Toeplitz matrix of ``seed`` (``m + n - 1`` bits).

    Example::

        out = toeplitz_hash(seed_bits, key_bits, 1024)
    """
    return toeplitz_hash_many(seed, [x], m)[0]


def toeplitz_hash_reference(
    seed: NDArray[np.uint8], x: NDArray[np.uint8], m: int
) -> NDArray[np.uint8]:
    """The same product by the definition (a dense matrix): for tests on small sizes."""
    n = x.size
    i = np.arange(m)[:, None]
    j = np.arange(n)[None, :]
    matrix = seed[i - j + n - 1].astype(np.int64)
    product: NDArray[np.int64] = matrix @ x.astype(np.int64)
    return (product & 1).astype(np.uint8)


def modified_toeplitz_hash_many(
    seed: NDArray[np.uint8], xs: list[NDArray[np.uint8]], m: int
) -> list[NDArray[np.uint8]]:
    """``x[:m] xor T' x[m:]`` for each ``x`` under one seed of ``n - 1`` bits."""
    if not xs:
        return []
    n = int(xs[0].size)
    if not 0 <= m <= n:
        raise QKDError(f"toeplitz: cannot hash {n} bits to {m}; need 0 <= m <= n")
    if m == n:
        return [x.copy() for x in xs]
    if seed.size != n - 1:
        raise QKDError(f"toeplitz: a modified {m} x {n} matrix needs {n - 1} seed bits")
    tails = toeplitz_hash_many(seed, [x[m:] for x in xs], m)
    return [x[:m] ^ tail for x, tail in zip(xs, tails, strict=True)]


def modified_toeplitz_hash(
    seed: NDArray[np.uint8], x: NDArray[np.uint8], m: int
) -> NDArray[np.uint8]:
    """``x[:m] xor T' x[m:]`` with the ``m x (n - m)`` Toeplitz ``T'`` of ``seed`` (``n - 1`` bits).

    Example::

        final = modified_toeplitz_hash(seed_bits, key_bits, 1024)
    """
    return modified_toeplitz_hash_many(seed, [x], m)[0]
