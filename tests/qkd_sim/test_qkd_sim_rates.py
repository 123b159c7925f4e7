"""Analytic rates: the published maximum distances, PLOB above every rate, optimal mu."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qkd import LinkConfigError, rates


@pytest.mark.parametrize(
    ("preset", "method", "expected_km", "tolerance_km"),
    [
        ("gys", "infinite", 142.0, 1.0),
        ("gys", "vacuum+weak", 139.5, 0.5),
        ("ingaas", "infinite", 190.0, 1.0),
        ("snspd", "infinite", 288.0, 1.0),
    ],
)
def test_max_distance_reproduces_design_table(
    preset: str, method: rates.Method, expected_km: float, tolerance_km: float
) -> None:
    assert abs(rates.max_distance(preset, method=method) - expected_km) <= tolerance_km


def test_vacuum_weak_is_below_infinite_decoys_and_both_below_plob() -> None:
    for preset in ("gys", "ingaas", "snspd"):
        for distance in (0.0, 25.0, 50.0, 100.0, 130.0):
            mu, r_inf = rates.optimal_mu(preset, distance)
            _, r_vw = rates.optimal_mu(preset, distance, method="vacuum+weak")
            bound = float(rates.plob(rates.transmittance(preset, distance)))
            assert 0.0 <= r_vw <= r_inf < bound
            assert 0.0 < mu < 1.5


def test_gllp_rate_by_hand_at_zero_km() -> None:
    # gys at 0 km, mu = 0.5: every term computed by hand from DESIGN.md's formulas.
    eta, y0, e_d, f, mu = 0.045, 1.7e-6, 0.033, 1.22, 0.5
    q_mu = y0 + 1 - math.exp(-eta * mu)
    e_mu = (y0 / 2 + e_d * (1 - math.exp(-eta * mu))) / q_mu
    y1 = y0 + eta - y0 * eta
    e1 = (y0 / 2 + e_d * eta) / y1
    expected = 0.5 * (
        -q_mu * f * rates.binary_entropy(e_mu)
        + y1 * mu * math.exp(-mu) * (1 - rates.binary_entropy(e1))
    )
    assert rates.gllp_rate("gys", 0.0, mu) == pytest.approx(expected, rel=1e-12)


def test_plob_is_minus_log2_one_minus_eta() -> None:
    assert float(rates.plob(0.5)) == pytest.approx(1.0)
    assert float(rates.plob(0.0)) == 0.0


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(LinkConfigError, match="gys, ingaas, snspd"):
        rates.transmittance("nope", 1.0)


def test_vacuum_weak_rate_over_an_array_matches_the_scalar_formula() -> None:
    from qkd.physics.rates import vacuum_weak_rate_eta, vacuum_weak_rate_etas

    etas = np.concatenate(([0.0, 1e-12], np.logspace(-9, 0, 60)))
    params = {"y0": 1.7e-6, "e_d": 0.033, "mu": 0.48, "nu": 0.1, "f": 1.22}
    vector = vacuum_weak_rate_etas(etas, **params)
    scalar = [vacuum_weak_rate_eta(eta=float(e), **params) for e in etas]
    assert vector == pytest.approx(scalar, rel=1e-9, abs=1e-15)
    assert (vector > 0).any()
    assert (vector == 0).any()
