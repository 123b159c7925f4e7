"""Post-processing stages: Cascade, verification, Toeplitz hashing, decoy bounds, estimation."""

from __future__ import annotations

import math
import os
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qkd.postprocessing.toeplitz as toeplitz
from qkd import rates
from qkd.physics.decoy import DecoyCounts, bound_single_photon, vacuum_weak_bounds
from qkd.postprocessing.cascade import VARIANTS, _FeistelPermutation, block_sizes, reconcile
from qkd.postprocessing.estimation import estimate_qber
from qkd.postprocessing.verification import verify
from qkd.randomness import KeyRandomness


def _noisy_pair(
    n: int, qber: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    alice = rng.integers(0, 2, size=n, dtype=np.uint8)
    errors = (rng.random(n) < qber).astype(np.uint8)
    return alice, alice ^ errors, float(errors.mean())


@pytest.mark.parametrize("variant", VARIANTS)
def test_cascade_corrects_and_counts_leakage(variant: str) -> None:
    rng = np.random.default_rng(1)
    alice, bob, actual = _noisy_pair(50_000, 0.03, rng)
    rec = reconcile(alice, bob, 0.03, variant=variant, rng=rng)  # type: ignore[arg-type]
    assert np.array_equal(rec.corrected, alice)
    assert rec.errors_found == int(np.count_nonzero(alice != bob))
    # At least the Shannon limit leaks, and the first pass alone discloses its block parities.
    assert rec.leaked_bits >= alice.size * rates.binary_entropy(actual)
    first = block_sizes(variant, alice.size, 0.03)[0]  # type: ignore[arg-type]
    assert rec.leaked_bits > math.ceil(alice.size / first)
    assert rec.efficiency(actual) == rec.leaked_bits / (alice.size * rates.binary_entropy(actual))


@pytest.mark.parametrize("qber", [0.01, 0.02, 0.03, 0.04, 0.05])
def test_improved_cascade_efficiency_at_most_1_10(qber: float) -> None:
    rng = np.random.default_rng(int(qber * 1000))
    alice, bob, actual = _noisy_pair(200_000, qber, rng)
    rec = reconcile(alice, bob, qber, variant="improved", rng=rng)
    assert np.array_equal(rec.corrected, alice)
    assert rec.efficiency(actual) <= 1.10


def test_original_cascade_is_less_efficient_than_improved() -> None:
    rng = np.random.default_rng(2)
    alice, bob, actual = _noisy_pair(200_000, 0.02, rng)
    f_orig = reconcile(alice, bob, 0.02, variant="original", rng=rng).efficiency(actual)
    f_impr = reconcile(alice, bob, 0.02, variant="improved", rng=rng).efficiency(actual)
    assert f_impr < f_orig


def test_cascade_can_leave_errors_and_verification_catches_them() -> None:
    # Two errors in one block of every pass (the QBER estimate is far too low): parities
    # never differ, Cascade finds nothing, and only verification can tell.
    alice = np.zeros(1000, dtype=np.uint8)
    bob = alice.copy()
    bob[[10, 20]] = 1
    rec = reconcile(alice, bob, 1e-6, variant="original")
    assert rec.errors_found == 0
    assert not np.array_equal(rec.corrected, alice)
    assert not verify(alice, rec.corrected, epsilon_cor=1e-12, keyrand=KeyRandomness()).passed


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=64, max_value=3000),
    true_qber=st.floats(min_value=0.0, max_value=0.2),
    assumed_qber=st.floats(min_value=1e-4, max_value=0.2),
    variant=st.sampled_from(VARIANTS),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_verification_passes_exactly_when_cascade_succeeded(
    n: int, true_qber: float, assumed_qber: float, variant: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    alice, bob, _ = _noisy_pair(n, true_qber, rng)
    rec = reconcile(alice, bob, assumed_qber, variant=variant, rng=rng)  # type: ignore[arg-type]
    check = verify(alice, rec.corrected, epsilon_cor=1e-15, keyrand=KeyRandomness())
    # A wrong key passes with probability 2^-50: never, in any realistic number of runs.
    assert check.passed == bool(np.array_equal(rec.corrected, alice))


def test_feistel_permutation_is_a_bijection() -> None:
    for n in (1, 2, 7, 1000, 4097):
        perm = _FeistelPermutation(n, np.random.default_rng(n))
        x = np.arange(n, dtype=np.int64)
        y = perm.forward(x)
        assert sorted(y.tolist()) == list(range(n))
        assert np.array_equal(perm.inverse(y), x)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=400),
    m=st.integers(min_value=1, max_value=400),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_toeplitz_fft_and_packed_match_the_definition(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, size=m + n - 1, dtype=np.uint8)
    x = rng.integers(0, 2, size=n, dtype=np.uint8)
    assert np.array_equal(
        toeplitz.toeplitz_hash(s, x, m), toeplitz.toeplitz_hash_reference(s, x, m)
    )


def test_toeplitz_chunked_fallback_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    n, m = 140_000, 300
    s = rng.integers(0, 2, size=m + n - 1, dtype=np.uint8)
    x = rng.integers(0, 2, size=n, dtype=np.uint8)
    expected = toeplitz.toeplitz_hash_reference(s, x, m)
    monkeypatch.setattr(toeplitz, "_MAX_ROUNDING", -1.0)  # distrust every FFT result
    assert np.array_equal(toeplitz.toeplitz_hash(s, x, m), expected)


def test_large_toeplitz_by_fft_matches_packed_rows() -> None:
    # n = 10^6 through the FFT; its first 64 rows computed exactly by the packed path.
    rng = np.random.default_rng(5)
    n, m = 1_000_000, 5000
    s = rng.integers(0, 2, size=m + n - 1, dtype=np.uint8)
    x = rng.integers(0, 2, size=n, dtype=np.uint8)
    full = toeplitz.toeplitz_hash(s, x, m)
    exact = toeplitz.toeplitz_hash(s[: 64 + n - 1], x, 64)
    assert np.array_equal(full[:64], exact)


def test_threaded_seed_spectrum_gives_the_same_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """From an FFT length of 2^16 the seed's transform runs in a thread: the hashes of several
    inputs are those of the single-threaded path, and their first rows are exact."""
    rng = np.random.default_rng(6)
    n, m = 70_000, 20_000  # an FFT of 2^17 points
    s = rng.integers(0, 2, size=m + n - 1, dtype=np.uint8)
    xs = [rng.integers(0, 2, size=n, dtype=np.uint8) for _ in range(3)]
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    threads: list[object] = []
    real_thread = threading.Thread

    def counting_thread(*args: object, **kwargs: object) -> object:
        thread = real_thread(*args, **kwargs)  # type: ignore[arg-type]
        threads.append(thread)
        return thread

    monkeypatch.setattr(threading, "Thread", counting_thread)
    threaded = toeplitz.toeplitz_hash_many(s, xs, m)
    assert len(threads) == 1
    monkeypatch.setattr(toeplitz, "_THREADED_FFT", 1 << 62)
    single = toeplitz.toeplitz_hash_many(s, xs, m)
    assert len(threads) == 1
    for a, b, x in zip(threaded, single, xs, strict=True):
        assert np.array_equal(a, b)
        assert np.array_equal(a[:64], toeplitz.toeplitz_hash(s[: 64 + n - 1], x, 64))


def test_a_failed_seed_thread_falls_back_to_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stillborn:  # a thread that never runs its target, as if it had failed
        def __init__(self, **kwargs: object) -> None:
            pass

        def start(self) -> None:
            pass

        def join(self) -> None:
            pass

    rng = np.random.default_rng(7)
    n, m = 70_000, 64
    s = rng.integers(0, 2, size=m + n - 1, dtype=np.uint8)
    x = rng.integers(0, 2, size=n, dtype=np.uint8)
    expected = toeplitz.toeplitz_hash(s, x, m)  # m <= 256: the exact packed path
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threading, "Thread", Stillborn)
    monkeypatch.setattr(toeplitz, "_PACKED_ROWS", 0)  # take the FFT path
    assert np.array_equal(toeplitz.toeplitz_hash(s, x, m), expected)


def test_modified_toeplitz_is_identity_plus_toeplitz() -> None:
    rng = np.random.default_rng(6)
    n, m = 500, 120
    seed = rng.integers(0, 2, size=n - 1, dtype=np.uint8)
    x = rng.integers(0, 2, size=n, dtype=np.uint8)
    expected = x[:m] ^ toeplitz.toeplitz_hash_reference(seed, x[m:], m)
    assert np.array_equal(toeplitz.modified_toeplitz_hash(seed, x, m), expected)


def test_decoy_bounds_bracket_the_true_single_photon_values() -> None:
    eta, y0, e_d, mu, nu = 0.0134, 1.7e-6, 0.033, 0.5, 0.1
    y1_true = y0 + eta - y0 * eta
    e1_true = (y0 / 2 + e_d * eta) / y1_true
    y1_l, e1_u = vacuum_weak_bounds(
        mu=mu,
        nu=nu,
        q_mu=rates.gain(mu, eta, y0),
        q_nu=rates.gain(nu, eta, y0),
        e_nu=rates.error_rate(nu, eta, y0, e_d),
        y0_for_yield=y0,
    )
    assert 0.9 * y1_true < y1_l <= y1_true
    assert e1_true <= e1_u < 1.2 * e1_true


def test_finite_decoy_bounds_are_looser_than_asymptotic() -> None:
    counts = DecoyCounts(
        mu=0.5,
        nu=0.1,
        sent=(70_000_000, 20_000_000, 10_000_000),
        detections=(468_000, 27_000, 17),
        decoy_sifted=13_500,
        decoy_errors=560,
    )
    point = bound_single_photon(counts, None)
    finite = bound_single_photon(counts, 1e-10)
    assert finite.y1_lower < point.y1_lower
    assert finite.e1_upper > point.e1_upper


def test_qber_sample_bound_holds() -> None:
    rng = np.random.default_rng(7)
    alice, bob, actual = _noisy_pair(100_000, 0.04, rng)
    est, keep = estimate_qber(alice, bob, fraction=0.1, epsilon=1e-10, keyrand=KeyRandomness(7))
    assert est.sample_size == int(np.count_nonzero(~keep))
    assert abs(est.sample_size / alice.size - 0.1) < 0.01
    assert est.qber <= est.qber_upper
    kept_rate = float(np.mean(alice[keep] != bob[keep]))
    assert kept_rate <= est.qber_upper
    assert abs(est.qber - actual) < 0.01
