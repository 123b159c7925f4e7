"""Satellite passes (qkd.physics.satellite): geometry, passes, loss and key vs closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qkd.physics.link import LinkConfigError
from qkd.physics.satellite import (
    EARTH_RADIUS_KM,
    MU_KM3_S2,
    CircularOrbit,
    GroundStation,
    OpticalLink,
    Track,
    key_per_pass,
    passes,
    track,
)

XINGLONG = GroundStation(name="Xinglong", latitude_deg=40.396, longitude_deg=117.577)
MICIUS_LIKE = CircularOrbit(altitude_km=500, inclination_deg=97.4, raan_deg=30)


@pytest.fixture(scope="module")
def day() -> Track:
    return track(MICIUS_LIKE, XINGLONG, duration_s=86_400, step_s=1.0)


def test_period_is_keplers(day: Track) -> None:
    a = EARTH_RADIUS_KM + 500
    assert MICIUS_LIKE.period_s == pytest.approx(2 * math.pi * math.sqrt(a**3 / MU_KM3_S2))


def test_slant_range_obeys_the_spherical_identity(day: Track) -> None:
    # For a satellite at radius a seen at elevation el: L = sqrt(a^2 - R^2 cos^2 el) - R sin el.
    el = np.radians(day.elevation_deg)
    visible = el > 0
    a, r = EARTH_RADIUS_KM + 500, EARTH_RADIUS_KM
    expected = np.sqrt(a**2 - (r * np.cos(el)) ** 2) - r * np.sin(el)
    assert visible.any()
    assert np.allclose(day.range_km[visible], expected[visible], rtol=1e-9)


def test_passes_are_the_runs_above_the_minimum(day: Track) -> None:
    found = passes(day, min_elevation_deg=15)
    assert found
    t, el = day.time_s, day.elevation_deg
    above = el >= 15
    inside = np.zeros_like(above)
    for p in found:
        inside |= (t >= p.start_s) & (t <= p.end_s)
        assert 15 <= p.max_elevation_deg <= 90
        assert p.duration_s > 0
        # The range at the pass edges is that of 15 degrees, within one step of motion.
        a, r = EARTH_RADIUS_KM + 500, EARTH_RADIUS_KM
        edge = math.sqrt(a**2 - (r * math.cos(math.radians(15))) ** 2) - r * math.sin(
            math.radians(15)
        )
        assert p.max_range_km <= edge + 1e-6
        assert p.max_range_km > edge - 8.0  # 7.6 km/s, 1 s steps
    assert np.array_equal(inside, above)


def test_geometric_and_atmospheric_loss_follow_their_formulas() -> None:
    optics = OpticalLink(zenith_transmittance=1.0, pointing_loss_db=0.0, divergence_rad=10e-6)
    near, far = optics.loss_db(np.array([600.0, 1200.0]), np.array([90.0, 90.0]))
    spot = lambda km: 0.3 + km * 1e3 * 10e-6  # noqa: E731
    assert far - near == pytest.approx(20 * math.log10(spot(1200) / spot(600)), rel=1e-12)
    hazy = OpticalLink(zenith_transmittance=0.7, pointing_loss_db=0.0, divergence_rad=10e-6)
    zenith, low = hazy.loss_db(np.array([600.0, 600.0]), np.array([90.0, 20.0]))
    expected = -10 * math.log10(0.7) * (1 / math.sin(math.radians(20)) - 1)
    assert low - zenith == pytest.approx(expected, rel=1e-9)
    assert OpticalLink().full_divergence_rad == pytest.approx(2.44 * 850e-9 / 0.3)


def test_key_per_pass_grows_as_loss_falls(day: Track) -> None:
    first = passes(day, min_elevation_deg=15)[0]
    clear = key_per_pass(day, first, link=OpticalLink(optics_loss_db=6.0))
    lossy = key_per_pass(day, first, link=OpticalLink(optics_loss_db=12.0))
    assert clear > lossy > 0


def test_bad_parameters() -> None:
    with pytest.raises(LinkConfigError):
        CircularOrbit(altitude_km=10, inclination_deg=50)
    with pytest.raises(LinkConfigError):
        OpticalLink(zenith_transmittance=0.0)
