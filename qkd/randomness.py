"""Where the randomness of a simulated run comes from.

Theory of operation
-------------------
Two kinds of randomness meet in a simulated link. The *physics* (photon numbers, losses, dark
counts, Eve's choices, Bob's basis) is drawn from a ``numpy.random.Generator``: every random
function takes ``rng`` (a Generator, a seed, or None), like QuTiP and SciPy. The *key*
(Alice's bits and bases, and every hash seed that shapes the final key: the verification
hash and the privacy-amplification Toeplitz matrix) comes from the operating system's
CSPRNG (``os.urandom``), because those bits end up in a usable key. A numpy Generator, even
one seeded from ``os.urandom``, is not a cryptographic generator: its output is predictable
from a few hundred outputs.

A run given an explicit ``seed`` draws its key randomness from a seeded Generator instead;
it is reproducible and therefore insecure, and its report says ``secure_randomness: false``.
"""

from __future__ import annotations

import os

import numpy as np
from numpy.typing import NDArray

__all__ = ["KeyRandomness", "RngLike", "physics_rng"]

RngLike = np.random.Generator | int | None


def physics_rng(rng: RngLike) -> np.random.Generator:
    """A Generator from ``rng`` (a Generator is used as is; a seed or None makes a new one)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


class KeyRandomness:
    """Random bits for key material: the OS CSPRNG, or a seeded (insecure) stream.

    Example::

        KeyRandomness().bits(8)            # from os.urandom
        KeyRandomness(seed=7).bits(8)      # reproducible, insecure
    """

    def __init__(self, seed: int | None = None) -> None:
        # The seeded stream is derived from, but independent of, the physics stream of the
        # same seed (a different spawn key), so that key bits do not mirror physics draws.
        self._seeded = (
            None
            if seed is None
            else np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        )

    @property
    def secure(self) -> bool:
        """True when the bits come from the OS CSPRNG."""
        return self._seeded is None

    def random_bytes(self, count: int) -> bytes:
        """``count`` random bytes."""
        if self._seeded is None:
            return os.urandom(count)
        return self._seeded.bytes(count)

    def bits(self, count: int) -> NDArray[np.uint8]:
        """``count`` random bits as a uint8 array of 0s and 1s."""
        raw = np.frombuffer(self.random_bytes((count + 7) // 8), dtype=np.uint8)
        return np.unpackbits(raw)[:count]
