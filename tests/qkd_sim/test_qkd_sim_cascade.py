"""Cascade variants: block schedules, parity accounting, efficiency (qkd.cascade)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qkd import rates
from qkd.postprocessing.cascade import VARIANTS, block_sizes, reconcile


def test_block_schedules_of_the_variants() -> None:
    # n = 10^5 bits, Q = 2%: 1/Q = 50, 0.73/Q = 36.5.
    half = [50_000]
    assert block_sizes("original", 100_000, 0.02) == [37, 74, 148, 296]
    assert block_sizes("option3", 100_000, 0.02) == [50, 100] + half * 14
    assert block_sizes("option7", 100_000, 0.02) == [64, 256] + half * 12
    assert block_sizes("improved", 100_000, 0.02) == [37, 148] + half * 12
    # Option 7 rounds 1/Q up to a power of two, including a power of two itself.
    assert block_sizes("option7", 100_000, 1 / 64)[:2] == [64, 256]
    assert block_sizes("option7", 100_000, 0.03)[:2] == [64, 256]
    # An odd key: the late passes cut it in two blocks, the first one larger.
    assert block_sizes("option7", 100_001, 0.02)[2:] == [50_001] * 12


def _search_depth(lo: int, hi: int, x: int) -> int:
    depth = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if x < mid else (mid, hi)
        depth += 1
    return depth


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_error_costs_the_block_parities_and_one_binary_search(variant: str) -> None:
    n, qber, x = 4096, 1 / 64, 100
    alice = np.zeros(n, dtype=np.uint8)
    bob = alice.copy()
    bob[x] = 1
    rec = reconcile(alice, bob, qber, variant=variant, rng=3)  # type: ignore[arg-type]
    sizes = block_sizes(variant, n, qber)  # type: ignore[arg-type]
    k1 = sizes[0]
    depth = _search_depth(x // k1 * k1, min(x // k1 * k1 + k1, n), x)
    assert np.array_equal(rec.corrected, alice)
    assert rec.errors_found == 1
    assert rec.passes == len(sizes)
    assert rec.leaked_bits == sum(-(-n // k) for k in sizes) + depth
    assert rec.channel_uses == len(sizes) + depth


@pytest.mark.parametrize("variant", VARIANTS)
def test_nothing_to_correct_leaks_only_the_block_parities(variant: str) -> None:
    alice = np.random.default_rng(4).integers(0, 2, size=10_000, dtype=np.uint8)
    rec = reconcile(alice, alice.copy(), 0.02, variant=variant, rng=4)  # type: ignore[arg-type]
    sizes = block_sizes(variant, alice.size, 0.02)  # type: ignore[arg-type]
    assert rec.leaked_bits == sum(-(-alice.size // k) for k in sizes)
    assert rec.errors_found == 0


@pytest.mark.parametrize("qber", [0.01, 0.02, 0.03, 0.04, 0.05])
def test_option7_and_improved_efficiency(qber: float) -> None:
    # Measured (docs/qkd-simulation.md): option 7 about 1.03-1.05, improved 1.04-1.06 at
    # 10^5-10^6 bits; the bounds leave room for the scatter of one 2 x 10^5-bit key.
    rng = np.random.default_rng(int(qber * 1000) + 7)
    n = 200_000
    alice = rng.integers(0, 2, size=n, dtype=np.uint8)
    errors = (rng.random(n) < qber).astype(np.uint8)
    bob = alice ^ errors
    h = n * rates.binary_entropy(float(errors.mean()))
    for variant, bound in (("option7", 1.07), ("improved", 1.08)):
        rec = reconcile(alice, bob, qber, variant=variant, rng=rng)  # type: ignore[arg-type]
        assert np.array_equal(rec.corrected, alice)
        assert rec.leaked_bits / h <= bound, (variant, rec.leaked_bits / h)


def test_original_is_least_efficient_and_option7_most() -> None:
    rng = np.random.default_rng(11)
    n, qber = 200_000, 0.03
    alice = rng.integers(0, 2, size=n, dtype=np.uint8)
    errors = (rng.random(n) < qber).astype(np.uint8)
    bob = alice ^ errors
    f = {
        v: reconcile(alice, bob, qber, variant=v, rng=5).efficiency(float(errors.mean()))
        for v in VARIANTS
    }
    assert f["original"] == max(f.values())
    assert f["option7"] == min(f.values())
    assert math.isfinite(f["improved"])
