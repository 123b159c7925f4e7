"""Shared helpers for the QKD simulation tests."""

from __future__ import annotations

import math


def sigma_binomial(p: float, n: float) -> float:
    """Standard deviation of a binomial proportion ``p`` estimated from ``n`` trials."""
    return math.sqrt(max(p * (1.0 - p), 1e-300) / n)
