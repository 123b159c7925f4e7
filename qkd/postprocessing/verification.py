"""Error verification: do Alice's and Bob's corrected keys agree? (universal hashing).

Theory of operation
-------------------
After error correction Alice picks a random member of a two-universal family, here a ``t x n``
Toeplitz matrix (:mod:`qkd.postprocessing.toeplitz`), and sends its seed and her tag ``T x``;
Bob compares it with ``T y``. If ``x != y`` the tags collide with probability ``2^-t``, so with
``t = ceil(log2(1 / epsilon_cor))`` the keys that pass differ with probability at most
``epsilon_cor`` (the correctness of Lim et al., PRA 89, 022307 (2014), Sec. II, which counts the
``log2(2/epsilon_cor)`` disclosed bits in the key length). The seed is drawn from the key
randomness; the tags are compared in constant time.
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qkd.postprocessing.toeplitz import toeplitz_hash_many
from qkd.randomness import KeyRandomness

__all__ = ["Verification", "tag_bits", "verify"]


def tag_bits(epsilon_cor: float) -> int:
    """Tag length ``t = ceil(log2(1 / epsilon_cor))``."""
    return max(1, math.ceil(-math.log2(epsilon_cor)))


@dataclass(frozen=True, kw_only=True)
class Verification:
    """Whether the tags matched, and the tag length (bits disclosed)."""

    passed: bool
    tag_bits: int
    epsilon_cor: float


def verify(
    alice: NDArray[np.uint8],
    bob: NDArray[np.uint8],
    *,
    epsilon_cor: float,
    keyrand: KeyRandomness,
) -> Verification:
    """Compare Toeplitz tags of the two keys.

    Example::

        verify(a, b_corrected, epsilon_cor=1e-15, keyrand=KeyRandomness()).passed
    """
    t = tag_bits(epsilon_cor)
    if alice.size != bob.size:
        return Verification(passed=False, tag_bits=t, epsilon_cor=epsilon_cor)
    seed = keyrand.bits(alice.size + t - 1)
    tags = toeplitz_hash_many(seed, [alice, bob], t)
    tag_a, tag_b = (np.packbits(tag).tobytes() for tag in tags)
    return Verification(
        passed=hmac.compare_digest(tag_a, tag_b), tag_bits=t, epsilon_cor=epsilon_cor
    )
