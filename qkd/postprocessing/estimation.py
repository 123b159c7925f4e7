"""Parameter estimation: the QBER from a random sample of the raw key, with a confidence bound.

Theory of operation
-------------------
Alice and Bob disclose a random subset of the raw key, chosen independently of everything
Eve saw (each bit with probability ``fraction``, from the key randomness), and count the
disagreements: ``QBER = errors / k``. The disclosed bits leave the key. The error rate of the
``n`` remaining bits exceeds the sample's by more than

    mu = sqrt( (n + k) / (n k) * (k + 1) / k * ln(1 / epsilon) )

with probability at most ``epsilon`` (sampling without replacement, Serfling's bound, in the
form of Tomamichel, Lim, Gisin and Renner, Nat. Commun. 3, 634 (2012)). The same bound
transfers a phase-error rate measured on one set of bits to another random set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qkd.randomness import KeyRandomness

__all__ = ["QberEstimate", "estimate_qber", "sampling_deviation"]


def sampling_deviation(n: float, k: float, epsilon: float) -> float:
    """The Serfling deviation ``mu`` between a sample of ``k`` and the other ``n`` items."""
    if n <= 0 or k <= 0:
        return 0.5
    return math.sqrt((n + k) / (n * k) * (k + 1) / k * math.log(1.0 / epsilon))


@dataclass(frozen=True, kw_only=True)
class QberEstimate:
    """The disclosed sample's size and errors, the point estimate and its upper bound."""

    sample_size: int
    errors: int
    qber: float
    qber_upper: float
    epsilon: float


def estimate_qber(
    alice: NDArray[np.uint8],
    bob: NDArray[np.uint8],
    *,
    fraction: float,
    epsilon: float,
    keyrand: KeyRandomness,
) -> tuple[QberEstimate, NDArray[np.bool_]]:
    """Disclose a random ``fraction`` of the raw key; return the estimate and the kept mask.

    Example::

        est, keep = estimate_qber(a, b, fraction=0.05, epsilon=1e-10, keyrand=KeyRandomness())
    """
    n = alice.size
    threshold = round(fraction * 65536)
    draws = np.frombuffer(keyrand.random_bytes(2 * n), dtype=np.uint16)
    sample = draws < threshold
    k = int(np.count_nonzero(sample))
    errors = int(np.count_nonzero(alice[sample] != bob[sample]))
    qber = errors / k if k else 0.5
    upper = min(0.5, qber + sampling_deviation(n - k, k, epsilon)) if k else 0.5
    return (
        QberEstimate(sample_size=k, errors=errors, qber=qber, qber_upper=upper, epsilon=epsilon),
        ~sample,
    )
