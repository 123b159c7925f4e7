"""Satellite passes (qkd.physics.satellite): orbits, geometry, passes, loss and key per pass."""

from __future__ import annotations

import json
import math
import tracemalloc
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd.physics.link import LinkConfigError
from qkd.physics.satellite import (
    EARTH_RADIUS_KM,
    MICIUS_TLE,
    MU_KM3_S2,
    CircularOrbit,
    DecoyPulses,
    GroundStation,
    OpticalLink,
    TleOrbit,
    Track,
    air_mass,
    find_passes,
    julian_date,
    key_per_pass,
    passes,
    sun_elevation_deg,
    sun_synchronous_inclination,
    tle_checksum_problem,
    track,
)

XINGLONG = GroundStation(name="Xinglong", latitude_deg=40.396, longitude_deg=117.577)
MICIUS_LIKE = CircularOrbit(altitude_km=500, inclination_deg=97.4, raan_deg=30)
# Slant ranges 645 km and 1,200 km from a 500 km orbit (spherical Earth) are seen at these
# elevations (the identity of test_slant_range_obeys_the_spherical_identity, solved).
EL_645, EL_1200 = 49.0247270869584, 19.806219800891085


def _slant(elevation_deg: float, altitude_km: float = 500.0) -> float:
    el, a, r = math.radians(elevation_deg), EARTH_RADIUS_KM + altitude_km, EARTH_RADIUS_KM
    return math.sqrt(a**2 - (r * math.cos(el)) ** 2) - r * math.sin(el)


@pytest.fixture(scope="module")
def day() -> Track:
    return track(MICIUS_LIKE, XINGLONG, duration_s=86_400, step_s=1.0)


def test_period_is_keplers() -> None:
    a = EARTH_RADIUS_KM + 500
    assert MICIUS_LIKE.period_s == pytest.approx(2 * math.pi * math.sqrt(a**3 / MU_KM3_S2))


def test_slant_range_obeys_the_spherical_identity(day: Track) -> None:
    el = day.elevation_deg
    visible = el > 0
    assert visible.any()
    expected = np.array([_slant(e) for e in el[visible]])
    assert np.allclose(day.range_km[visible], expected, rtol=1e-9)
    assert _slant(EL_645) == pytest.approx(645.0)
    assert _slant(EL_1200) == pytest.approx(1200.0)


def test_passes_are_the_runs_above_the_minimum(day: Track) -> None:
    found = passes(day, min_elevation_deg=15)
    assert found
    t, el = day.time_s, day.elevation_deg
    above = el >= 15
    inside = np.zeros_like(above)
    edge = _slant(15.0)
    for p in found:
        inside |= (t >= p.start_s) & (t <= p.end_s)
        assert 15 <= p.max_elevation_deg <= 90
        assert p.duration_s > 0
        # The range at the pass edges is that of 15 degrees, within one step of motion.
        assert edge - 8.0 < p.max_range_km <= edge + 1e-6
    assert np.array_equal(inside, above)


def test_chunked_passes_are_those_of_one_array() -> None:
    # One-hour chunks cut through passes; the chunked search must find the same passes.
    whole = passes(
        track(MICIUS_LIKE, XINGLONG, duration_s=2 * 86_400, step_s=2.0), min_elevation_deg=10
    )
    chunked = find_passes(
        MICIUS_LIKE,
        XINGLONG,
        duration_s=2 * 86_400,
        step_s=2.0,
        min_elevation_deg=10,
        chunk_s=3600,
    )
    assert len(whole) >= 4
    assert chunked == whole
    for a, b in zip(chunked, whole, strict=True):
        assert a.loss_db is not None
        assert b.loss_db is not None
        assert np.array_equal(a.loss_db, b.loss_db)


def test_a_month_of_passes_keeps_to_one_chunk_of_memory() -> None:
    # 30 days of 1-s steps as one array: 2.6 million steps, over 60 MB for each (3, n) array.
    tracemalloc.start()
    try:
        found = find_passes(MICIUS_LIKE, XINGLONG, duration_s=30 * 86_400, min_elevation_deg=15)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found) > 30
    assert peak < 40e6


def test_j2_turns_the_node_with_the_sun() -> None:
    assert sun_synchronous_inclination(500.0) == pytest.approx(97.37, abs=0.01)
    sso = CircularOrbit(altitude_km=500, inclination_deg=sun_synchronous_inclination(500.0))
    assert sso.node_drift_deg_per_day == pytest.approx(360 / 365.24219, rel=1e-9)
    kepler = CircularOrbit(altitude_km=500, inclination_deg=97.4, j2=False)
    assert kepler.node_drift_deg_per_day == 0.0
    polar = CircularOrbit(altitude_km=500, inclination_deg=90.0)
    assert polar.node_drift_deg_per_day == pytest.approx(0.0, abs=1e-12)


def _node_deg(positions: np.ndarray) -> float:
    # The ascending node from the orbit normal r(t) x r(t + 1 s).
    h = np.cross(positions[:, 0], positions[:, 1])
    return math.degrees(math.atan2(h[0], -h[1])) % 360.0


def _angle(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.mark.parametrize("days", [30, 180])
def test_the_circular_node_follows_sgp4(days: int) -> None:
    tle = TleOrbit(*MICIUS_TLE)
    circular = CircularOrbit.from_tle(*MICIUS_TLE)
    kepler = CircularOrbit.from_tle(*MICIUS_TLE, j2=False)
    t = np.array([days * 86_400.0, days * 86_400.0 + 1.0])
    truth = _node_deg(tle.positions_km(t))
    assert _angle(_node_deg(circular.positions_km(t)), truth) < 1.0
    # Without the drift the node would be off by about 0.986 degrees a day.
    assert _angle(_node_deg(kepler.positions_km(t)), truth) > 0.9 * 0.986 * days - 1.0


def test_micius_tle_passes_xinglong_near_00_50_beijing_time() -> None:
    # Liao et al. (2017): Micius passes over Xinglong each night at about 00:50 local time
    # (16:50 UTC); the pass of 19 December 2016 is the one of their key figures.
    orbit = TleOrbit(*MICIUS_TLE)
    found = find_passes(
        orbit, XINGLONG, duration_s=2 * 86_400, min_elevation_deg=15, max_sun_elevation_deg=-12
    )
    starts = [datetime.fromtimestamp(orbit.epoch.timestamp() + p.start_s, UTC) for p in found]
    first = starts[0]
    assert (first.month, first.day) == (12, 19)
    assert 16 * 60 + 30 <= first.hour * 60 + first.minute <= 17 * 60 + 10
    assert all(250 < p.duration_s < 400 for p in found)


def test_night_passes_are_dark() -> None:
    orbit = CircularOrbit.from_tle(*MICIUS_TLE)
    every = find_passes(orbit, XINGLONG, duration_s=3 * 86_400, min_elevation_deg=15)
    dark = find_passes(
        orbit, XINGLONG, duration_s=3 * 86_400, min_elevation_deg=15, max_sun_elevation_deg=-12
    )
    assert 0 < len(dark) < len(every)
    jd0 = julian_date(orbit.epoch)
    for p in dark:
        assert p.steps is not None
        sun = sun_elevation_deg(jd0 + p.steps.time_s / 86_400, 40.396, 117.577)
        assert (sun <= -12).all()


def test_the_sun_at_a_known_time() -> None:
    # 2017-06-21 04:00 UTC is about local noon at Xinglong (117.6 E): the Sun stands near
    # 90 - (40.4 - 23.44) = 73 degrees; twelve hours later it is far below the horizon.
    jd = julian_date(datetime(2017, 6, 21, 4, 10, tzinfo=UTC))
    noon, midnight = sun_elevation_deg(np.array([jd, jd + 0.5]), 40.396, 117.577)
    assert noon == pytest.approx(73.0, abs=0.5)
    assert midnight < -20


def test_loss_terms_follow_their_formulas() -> None:
    optics = OpticalLink(
        zenith_transmittance=1.0,
        pointing_loss_db=0.0,
        optics_loss_db=0.0,
        divergence_rad=10e-6,
        seeing_arcsec=None,
    )
    near, far = optics.loss_db(np.array([600.0, 1200.0]), np.array([90.0, 90.0]))
    spot = lambda km: 0.3 + km * 1e3 * 10e-6  # noqa: E731
    assert far - near == pytest.approx(20 * math.log10(spot(1200) / spot(600)), rel=1e-12)
    hazy = OpticalLink(zenith_transmittance=0.7, seeing_arcsec=None)
    terms = hazy.terms_db(np.array([600.0, 600.0]), np.array([90.0, 20.0]))
    x20 = 1 / (math.sin(math.radians(20)) + 0.50572 * 26.07995**-1.6364)
    assert terms["extinction"][1] == pytest.approx(-10 * math.log10(0.7) * x20, rel=1e-12)
    assert OpticalLink(divergence_rad=None).full_divergence_rad == pytest.approx(
        2.44 * 850e-9 / 0.3
    )


def test_turbulence_with_a_small_field_stop_grows_as_air_mass_to_six_fifths() -> None:
    optics = OpticalLink(field_of_view_rad=1e-8, seeing_arcsec=2.0)
    t = optics.terms_db(np.array([600.0, 600.0]), np.array([60.0, 20.0]))["turbulence"]
    x60, x20 = air_mass(np.array([60.0, 20.0]))
    assert t[1] - t[0] == pytest.approx(12 * math.log10(x20 / x60), rel=1e-6)


def test_default_loss_matches_micius_from_645_to_1200_km() -> None:
    # Liao et al., Nature 549, 43 (2017): about 29.8 dB at 645 km and 40.3 dB at 1,200 km.
    near, far = OpticalLink().loss_db(np.array([645.0, 1200.0]), np.array([EL_645, EL_1200]))
    assert near == pytest.approx(29.8, abs=0.1)
    assert far - near == pytest.approx(10.5, abs=0.3)
    # Without the turbulence term the growth is the 6.8 dB of the earlier model.
    calm = OpticalLink(seeing_arcsec=None, divergence_rad=None)
    near, far = calm.loss_db(np.array([645.0, 1200.0]), np.array([EL_645, EL_1200]))
    assert 6.0 < far - near < 7.2


@given(st.floats(0.0, 89.0), st.floats(0.1, 1.0))
def test_air_mass_falls_with_elevation(el: float, rise: float) -> None:
    low, high = air_mass(np.array([el, el + rise]))
    assert low > high >= 0.99


def test_key_per_pass_finite_is_below_asymptotic_and_grows_with_the_pulses() -> None:
    found = find_passes(MICIUS_LIKE, XINGLONG, duration_s=86_400, min_elevation_deg=15)
    best = max(found, key=lambda p: p.max_elevation_deg)
    slow = key_per_pass(best, pulses=DecoyPulses(pulse_rate_hz=1e7))
    fast = key_per_pass(best, pulses=DecoyPulses(pulse_rate_hz=1e9))
    for key in (slow, fast):
        assert 0 < key.secret_bits < key.asymptotic_bits
        assert 0.005 < key.qber < 0.05
    # Finite-key costs shrink relative to the key as the bits grow (asymptotic is linear).
    assert fast.secret_bits / fast.asymptotic_bits > slow.secret_bits / slow.asymptotic_bits
    assert fast.asymptotic_bits == pytest.approx(100 * slow.asymptotic_bits, rel=0.01)
    lossy = key_per_pass(best, pulses=DecoyPulses(detector_efficiency=1e-4))
    assert lossy.secret_bits == 0


def test_key_per_pass_sifted_bits_are_half_the_signal_detections() -> None:
    found = find_passes(MICIUS_LIKE, XINGLONG, duration_s=86_400, min_elevation_deg=15)
    one = found[0]
    assert one.loss_db is not None
    tx = DecoyPulses()
    eta = tx.detector_efficiency * 10 ** (-one.loss_db / 10)
    detections = tx.pulse_rate_hz * tx.p_signal * np.sum(tx.y0 + 1 - np.exp(-tx.mu * eta))
    assert key_per_pass(one).sifted_bits == pytest.approx(detections / 2, abs=1)


def test_tle_checksums_and_bad_parameters() -> None:
    assert tle_checksum_problem(MICIUS_TLE[0], 1) is None
    assert tle_checksum_problem(MICIUS_TLE[1], 2) is None
    broken = MICIUS_TLE[1][:68] + "0"
    problem = tle_checksum_problem(broken, 2)
    assert problem is not None
    assert "checksum" in problem
    with pytest.raises(LinkConfigError, match="checksum"):
        TleOrbit(MICIUS_TLE[0], broken)
    with pytest.raises(LinkConfigError, match="69"):
        CircularOrbit.from_tle(MICIUS_TLE[0][:60], MICIUS_TLE[1])
    with pytest.raises(LinkConfigError):
        CircularOrbit(altitude_km=10, inclination_deg=50)
    with pytest.raises(LinkConfigError):
        OpticalLink(zenith_transmittance=0.0)
    with pytest.raises(LinkConfigError, match="time zone"):
        CircularOrbit(altitude_km=500, inclination_deg=50, epoch=datetime(2017, 1, 1))
    with pytest.raises(LinkConfigError):
        find_passes(MICIUS_LIKE, XINGLONG, duration_s=-1, min_elevation_deg=15)


def test_cli_passes_json(capsys: pytest.CaptureFixture[str]) -> None:
    from agile.cli import main

    code = main(["qkd", "passes", "--days", "2", "--night", "-12", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["orbit"] == "TLE, SGP4"
    assert data["passes"] == len(data["pass_list"]) >= 2
    first = data["pass_list"][0]
    assert first["start_utc"].startswith("2016-12-19T16:")
    assert 0 < first["secret_bits"] < first["asymptotic_bits"] < first["sifted_bits"]
    low, high = data["loss_db_range"]
    assert 20 < low < high < 50
    code = main(["qkd", "passes", "--days", "1", "--circular", "500", "97.4", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["orbit"].startswith("circular 500 km")


def test_cli_passes_bad_tle_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from agile.cli import main

    try:
        code = main(["qkd", "passes", "--tle", MICIUS_TLE[0], MICIUS_TLE[1][:68] + "0"])
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert "checksum" in err
    assert "Traceback" not in err


@settings(max_examples=8, deadline=None)
@given(st.floats(3600.0, 2 * 86_400.0), st.floats(0.0, 40_000.0))
def test_passes_do_not_depend_on_the_chunks(chunk_s: float, start_s: float) -> None:
    kwargs = {"duration_s": 2 * 86_400.0, "step_s": 5.0, "min_elevation_deg": 10.0}
    reference = find_passes(MICIUS_LIKE, XINGLONG, start_s=start_s, chunk_s=10 * 86_400, **kwargs)
    assert reference
    assert find_passes(MICIUS_LIKE, XINGLONG, start_s=start_s, chunk_s=chunk_s, **kwargs) == (
        reference
    )


def test_a_pass_within_a_range_keeps_the_near_steps() -> None:
    one = find_passes(MICIUS_LIKE, XINGLONG, duration_s=86_400, min_elevation_deg=15)[0]
    near = one.within(1200.0)
    assert near is not None
    assert near.steps is not None
    assert one.steps is not None
    assert near.max_range_km <= 1200.0 < one.max_range_km
    assert one.start_s < near.start_s <= near.end_s < one.end_s
    assert near.steps.time_s.size == int(np.count_nonzero(one.steps.range_km <= 1200.0))
    assert key_per_pass(near).detections < key_per_pass(one).detections
    assert one.within(100.0) is None
