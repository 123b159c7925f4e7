"""The quantum stage against the analytic formulas, and the two samplers against each other.

Tolerances: the acceptance bounds of issue #3 (3% relative on Q_mu, 0.2 percentage points on
E_mu) for the model, with pulse counts chosen so that five standard deviations of the
statistics stay well inside them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from qkd import BeamSplitting, InterceptResend, PhotonNumberSplitting, preset, rates
from qkd.physics.eve import Eavesdropper
from qkd.physics.protocols import Detections, Sampler, transmit
from qkd.postprocessing.sifting import sift
from qkd.randomness import KeyRandomness

from .conftest import sigma_binomial

# Sifted signal bits per fidelity point: sigma(E) ~ 0.02 percentage points.
TARGET_SIFTED = 1_000_000


def _stats(det: Detections, k: int) -> tuple[float, float, int]:
    sent = det.sent[k]
    mine = det.intensity == k
    gain = np.count_nonzero(mine) / sent
    sifted = mine & (det.alice_basis == det.bob_basis)
    n = int(np.count_nonzero(sifted))
    qber = np.count_nonzero(det.alice_bit[sifted] != det.bob_bit[sifted]) / n
    return gain, qber, n


@pytest.mark.parametrize("name", ["gys", "ingaas"])
@pytest.mark.parametrize("distance", [0.0, 25.0, 50.0, 100.0])
def test_gain_and_qber_match_analytic(name: str, distance: float) -> None:
    link = preset(name, distance)
    eta = link.transmittances()[0]
    y0, e_d = link.detector.dark_count_probability, link.detector.misalignment
    mu = link.source.mu
    q_an = rates.gain(mu, eta, y0)
    e_an = rates.error_rate(mu, eta, y0, e_d)
    pulses = math.ceil(TARGET_SIFTED / (0.5 * link.source.p_signal * q_an))
    det = transmit(
        link, pulses=pulses, rng=np.random.default_rng(int(distance) + 7), keyrand=KeyRandomness(1)
    )
    gain, qber, n = _stats(det, 0)
    assert abs(gain / q_an - 1) <= 0.03
    assert abs(qber - e_an) <= 0.002
    # The statistics themselves are far tighter than the acceptance bounds.
    assert 5 * sigma_binomial(qber, n) < 0.001


@pytest.mark.parametrize(
    ("eve", "distance", "pulses"),
    [
        (None, 0.0, 3_000_000),
        (InterceptResend(fraction=0.5), 0.0, 3_000_000),
        (BeamSplitting(tap=0.5), 0.0, 3_000_000),
        (PhotonNumberSplitting(), 40.0, 12_000_000),
    ],
)
def test_event_sampler_agrees_with_per_pulse_sampler(
    eve: Eavesdropper | None, distance: float, pulses: int
) -> None:
    link = preset("gys", distance)
    samplers: tuple[tuple[int, Sampler], ...] = ((11, "events"), (12, "pulses"))
    runs = [
        transmit(
            link,
            pulses=pulses,
            eve=eve,
            rng=np.random.default_rng(seed),
            keyrand=KeyRandomness(seed),
            sampler=sampler,
        )
        for seed, sampler in samplers
    ]
    for k in (0, 1):
        (g1, e1, n1), (g2, e2, n2) = (_stats(d, k) for d in runs)
        sent = runs[0].sent[k]
        g_sigma = math.sqrt(g1 * (1 - g1) / sent + g2 * (1 - g2) / runs[1].sent[k])
        assert abs(g1 - g2) <= 5 * g_sigma
        e_sigma = math.hypot(sigma_binomial(e1, n1), sigma_binomial(e2, n2))
        assert abs(e1 - e2) <= 5 * e_sigma + 1e-4
    # Eve's knowledge follows the same rule in both samplers.
    f1, f2 = (float(np.mean(d.eve_knows[d.intensity == 0])) for d in runs)
    n = min(int(np.count_nonzero(d.intensity == 0)) for d in runs)
    assert abs(f1 - f2) <= 5 * math.sqrt(2) * sigma_binomial(max(f1, 1e-3), n) + 1e-4


def test_vacuum_pulses_click_at_the_dark_count_rate() -> None:
    link = preset("gys", 0.0)
    det = transmit(link, pulses=200_000_000, rng=np.random.default_rng(3), keyrand=KeyRandomness(3))
    y0 = np.count_nonzero(det.intensity == 2) / det.sent[2]
    expected = link.detector.dark_count_probability
    assert abs(y0 - expected) <= 5 * math.sqrt(expected / det.sent[2])


def test_sifting_keeps_matching_bases_of_signal_pulses() -> None:
    det = transmit(
        preset("gys", 0.0), pulses=2_000_000, rng=np.random.default_rng(5), keyrand=KeyRandomness(5)
    )
    s = sift(det)
    match = det.alice_basis == det.bob_basis
    assert s.alice.size == np.count_nonzero(match & (det.intensity == 0))
    assert s.sifted_bits == np.count_nonzero(match)
    # With both bases equally likely about half the clicks survive.
    assert abs(s.sifted_bits / len(det) - 0.5) < 5 * sigma_binomial(0.5, len(det))


def test_single_photon_source_has_no_multi_photon_pulses() -> None:
    det = transmit(
        preset("gys", 0.0),
        pulses=1_000_000,
        protocol="bb84-single-photon",
        rng=np.random.default_rng(9),
        keyrand=KeyRandomness(9),
    )
    assert set(np.unique(det.photons)) <= {1}
    gain = len(det) / det.pulses
    expected = 1 - (1 - 1.7e-6) * (1 - 0.045)
    assert abs(gain - expected) <= 5 * sigma_binomial(expected, det.pulses)


def test_bbm92_samplers_agree() -> None:
    link = preset("snspd", 10.0)
    samplers: tuple[tuple[int, Sampler], ...] = ((21, "events"), (22, "pulses"))
    runs = [
        transmit(
            link,
            pulses=3_000_000,
            protocol="bbm92",
            pair_mu=0.1,
            rng=np.random.default_rng(seed),
            keyrand=KeyRandomness(seed),
            sampler=sampler,
        )
        for seed, sampler in samplers
    ]
    rates_ = [len(d) / d.pulses for d in runs]
    sigma = math.hypot(*(sigma_binomial(r, 3_000_000) for r in rates_))
    assert abs(rates_[0] - rates_[1]) <= 5 * sigma
    (_, e1, n1), (_, e2, n2) = (_stats(d, 0) for d in runs)
    assert abs(e1 - e2) <= 5 * math.hypot(sigma_binomial(e1, n1), sigma_binomial(e2, n2))
    for d in runs:
        assert d.chsh is not None
        assert d.chsh.s > 2.4


def test_bbm92_mu_sets_the_pair_rate() -> None:
    import qkd

    report = qkd.simulate(
        protocol="bbm92", preset="snspd", distance_km=10.0, pulses=1_000_000, mu=0.05, seed=1
    ).report
    assert report.mu == 0.05
    assert report.nu is None
