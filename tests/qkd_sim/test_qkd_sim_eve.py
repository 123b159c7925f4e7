"""Eavesdroppers are seen: intercept-resend through the QBER, PNS through the decoy bounds."""

from __future__ import annotations

import math

import pytest

import qkd
from qkd import Detector, FibreChannel, Link

from .conftest import sigma_binomial


def _clean_link(distance_km: float = 0.0) -> Link:
    """A link without misalignment or dark counts: only Eve causes errors."""
    return Link(
        name="clean",
        channel=FibreChannel(length_km=distance_km, alpha_db_per_km=0.2),
        detector=Detector(efficiency=0.5, dark_count_probability=0.0, misalignment=0.0),
    )


def test_full_intercept_resend_gives_25_percent() -> None:
    result = qkd.simulate(link=_clean_link(), pulses=2_000_000, eve="intercept-resend:1", seed=1)
    report = result.report
    assert report.qber_signal is not None
    assert abs(report.qber_signal - 0.25) <= 0.01
    assert report.aborted
    assert "threshold" in (report.abort_reason or "")


def test_full_intercept_resend_aborts_every_run() -> None:
    aborted = 0
    for seed in range(100):
        result = qkd.simulate(
            preset="gys", distance_km=0.0, pulses=300_000, eve="intercept-resend:1", seed=seed
        )
        assert result.alice_key == b""
        assert result.bob_key == b""
        assert result.report.final_key_bits == 0
        aborted += result.report.aborted
    assert aborted == 100


@pytest.mark.parametrize("fraction", [0.04, 0.1, 0.2])
def test_partial_intercept_resend_adds_a_quarter_of_the_fraction(fraction: float) -> None:
    base = qkd.simulate(link=_clean_link(), pulses=3_000_000, seed=2).report
    hit = qkd.simulate(
        link=_clean_link(), pulses=3_000_000, eve=f"intercept-resend:{fraction}", seed=3
    ).report
    assert base.qber_signal is not None
    assert hit.qber_signal is not None
    # Eve attacks non-empty pulses only; on this link nearly all clicks come from them.
    n = hit.sifted_bits
    assert abs(hit.qber_signal - base.qber_signal - fraction / 4) <= 5 * sigma_binomial(0.1, n)


def test_partial_intercept_resend_shrinks_the_key() -> None:
    keys = []
    for fraction in (0.0, 0.05, 0.1):
        report = qkd.simulate(
            preset="ingaas",
            distance_km=10.0,
            pulses=30_000_000,
            eve=f"intercept-resend:{fraction}",
            asymptotic=True,
            seed=4,
        ).report
        assert not report.aborted, report.abort_reason
        keys.append(report.final_key_bits)
    assert keys[0] > keys[1] > keys[2] > 0


def test_pns_is_flagged_by_the_decoy_bounds() -> None:
    honest = qkd.simulate(preset="gys", distance_km=40.0, pulses=300_000_000, seed=5)
    attacked = qkd.simulate(preset="gys", distance_km=40.0, pulses=300_000_000, eve="pns", seed=5)
    h, a = honest.report, attacked.report
    assert not h.aborted
    assert h.final_key_bits > 0
    # Eve hides in the signal gain...
    assert abs(a.gain_signal / h.gain_signal - 1) < 0.05
    # ...but the single-photon yield bound collapses, and no key comes out.
    assert h.y1_lower is not None
    assert a.y1_lower is not None
    assert a.y1_lower < 0.5 * h.y1_lower
    assert a.aborted
    assert a.final_key_bits == 0
    assert attacked.alice_key == b""
    assert any("photon-number-splitting" in w for w in a.warnings)


def test_beam_splitting_adds_no_errors_and_is_reported_as_loss() -> None:
    honest = qkd.simulate(preset="gys", distance_km=0.0, pulses=20_000_000, seed=6).report
    tapped = qkd.simulate(
        preset="gys", distance_km=0.0, pulses=20_000_000, eve="beam-splitting:0.5", seed=6
    ).report
    assert tapped.qber_signal is not None
    assert honest.qber_signal is not None
    assert abs(tapped.qber_signal - honest.qber_signal) < 0.005
    assert tapped.gain_signal == pytest.approx(honest.gain_signal / 2, rel=0.05)
    assert any("loses" in w for w in tapped.warnings)
    assert tapped.eve_known_fraction > 0


def test_bbm92_chsh_detects_intercept_resend() -> None:
    honest = qkd.simulate(
        protocol="bbm92", preset="snspd", distance_km=10.0, pulses=30_000_000, seed=7
    ).report
    attacked = qkd.simulate(
        protocol="bbm92",
        preset="snspd",
        distance_km=10.0,
        pulses=30_000_000,
        eve="intercept-resend:1",
        seed=7,
    ).report
    assert honest.chsh_s is not None
    assert attacked.chsh_s is not None
    expected = 2 * math.sqrt(2) * (1 - 2 * 0.01)
    assert honest.chsh_s > 2.5
    assert abs(honest.chsh_s - expected) < 0.15
    assert attacked.chsh_s < 2.0
    assert attacked.aborted


def test_pns_needs_a_multi_photon_source() -> None:
    with pytest.raises(qkd.ProtocolError, match="multi-photon"):
        qkd.simulate(protocol="bb84-single-photon", pulses=1000, eve="pns")
