"""Satellite passes over a ground station: orbits, geometry, channel loss, and key per pass.

Hazmat: explicit parameters, no policy. Easy to misuse: the loss model has two calibrated
parameters (the receiver's field stop and its optics loss), and a key per pass is only as good
as the loss it is given.

Theory of operation
-------------------
Orbits. Two kinds, both giving the satellite's position in an Earth-centred inertial frame
(the true-equator, mean-equinox frame of SGP4, "TEME"):

- :class:`TleOrbit`: a two-line element set propagated with SGP4 (Vallado, Crawford, Hujsak
  and Kelso, "Revisiting Spacetrack Report #3", AIAA 2006-6753) through the ``sgp4`` package
  (the ``satellite`` extra). SGP4 carries J2-J4, drag and deep-space terms.
- :class:`CircularOrbit`: altitude ``h``, inclination ``i``, node ``Omega_0`` and argument of
  latitude ``u_0`` at an epoch. ``a = R + h`` and ``n = sqrt(mu / a^3)``. The Earth's
  oblateness (J2) turns the orbit plane and shifts the along-track motion; for a circular
  orbit the secular rates are (Vallado, 4th ed., eq. 9-41)

      dOmega/dt = -(3/2) n J2 (R_e / a)^2 cos i,
      du/dt     =  n [1 + (3/4) J2 (R_e / a)^2 (8 cos^2 i - 2)]   (d omega/dt + dM/dt),

  so that ``Omega = Omega_0 + dOmega/dt t`` and ``u = u_0 + du/dt t``. A sun-synchronous
  orbit is one whose node turns with the mean Sun, 360 degrees per tropical year
  (:func:`sun_synchronous_inclination`): without the drift a year of passes would slide
  through every local time, with it they stay at the same hour. ``j2=False`` gives the
  Kepler orbit.

  ``r_sat = a (cos u cos Omega - sin u cos i sin Omega,
               cos u sin Omega + sin u cos i cos Omega, sin u sin i)``.

Ground. A spherical Earth of radius ``R`` turning with the Greenwich mean sidereal angle
(IAU 1982, as SGP4 uses it to leave TEME): a station at latitude ``phi``, longitude
``lambda`` sits at ``R (cos phi cos theta, cos phi sin theta, sin phi)`` with
``theta = GMST(t) + lambda``. The slant vector is ``d = r_sat - r_gs``; the slant range is
``|d|`` and the elevation ``asin(d . r_gs / (|d| R))``. The spherical Earth puts the elevation
within about 0.2 degrees of the WGS-84 one.

Passes. A pass is a maximal run of time steps with the elevation at or above the minimum.
Long spans are computed in chunks (a day of steps at a time, by default): memory stays at one
chunk's arrays plus the passes found, whatever the span. A pass still open at a chunk's end
starts the next chunk, so no pass is split. Optionally, only passes in the dark count
(the Sun below ``max_sun_elevation_deg`` at the station; the Sun's direction from the
low-precision formulas of the Astronomical Almanac, section C, good to 0.01 degrees).

Loss. Four factors, all against slant range ``L`` and elevation ``el``:

- geometric (Bourgoin et al., New J. Phys. 15, 023006 (2013), eq. 1): the beam leaves an
  aperture ``D_T`` with full divergence ``theta`` (diffraction-limited:
  ``theta = 2.44 lambda / D_T``, or given) and lands as a spot of ``D_T + L theta``; a
  receiver of diameter ``D_R`` collects ``eta_geo = min(1, (D_R / (D_T + L theta))^2)``;
- extinction: ``T_z^X`` with ``T_z`` the zenith transmittance and ``X`` the relative air mass,
  Kasten and Young (Appl. Opt. 28, 4735 (1989)): ``X = 1 / (sin el + 0.50572 (el + 6.07995)
  ^-1.6364)`` (el in degrees). It is ``1/sin el`` high up and stays finite at the horizon;
- turbulence at the receiver: the seeing disc (FWHM ``s``) grows with air mass as
  ``s = s_z X^(3/5)`` (the Fried parameter scales as ``X^(-3/5)``; Fried, JOSA 56, 1372
  (1966); Andrews and Phillips, "Laser Beam Propagation through Random Media", ch. 12). A
  field stop of full angle ``FOV`` in the focal plane (needed against background light) passes
  ``1 - exp(-4 ln 2 (FOV / 2)^2 / s^2)`` of a Gaussian image of FWHM ``s``. When the stop is
  small against the seeing this is ``~ X^(-6/5)``: about 4 dB more loss at 20 degrees than at
  50 degrees, which is what the geometric and extinction terms miss at low elevation;
- pointing and optics: fixed losses in dB. A pointing jitter ``sigma`` (an angle) moves the
  spot by ``sigma L`` while the spot grows as ``theta L``: in the far field its loss does
  not depend on range, so it is one number.

Key per pass (:func:`key_per_pass`). The decoy-state BB84 of :mod:`qkd.physics.rates`
(signal ``mu``, weak decoy ``nu``, vacuum; Ma, Qi, Zhao and Lo, PRA 72, 012326 (2005)) gives
each step's gain ``Q_k = Y0 + 1 - exp(-eta k)`` and error ``E_nu Q_nu = Y0/2 +
e_d (1 - exp(-eta nu))``. The expected counts of the whole pass (pulses per step x probability
of each intensity x gain, summed over the steps) are what Alice and Bob would announce; the
finite-key length over those bits is :func:`qkd.postprocessing.finite_key.decoy_key_length`
(Lim, Curty, Walenta, Xu and Zbinden, PRA 89, 022307 (2014)) with Chernoff bounds on the decoy
counts (:mod:`qkd.physics.decoy`). The decoy bounds are linear in the gains, so pooling the
steps of a pass, each of its own loss, keeps them valid. Error correction leaks
``f H2(E_mu)`` per raw bit.

Micius (Liao et al., Nature 549, 43 (2017)): a 500 km sun-synchronous orbit, night passes over
Xinglong of about 5 minutes with QKD from about 15 degrees of elevation, slant range
1,200 -> 645 -> 1,200 km, measured channel losses of about 29.8 dB at 645 km to 40.3 dB at
1,200 km (downlink at 850 nm, 300 mm transmitter, 1 m receiver at Xinglong), a 100 MHz decoy
source with ``mu = 0.8``, ``nu = 0.1`` and the vacuum. docs/qkd-simulation.md compares.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from qkd.physics.link import LinkConfigError

__all__ = [
    "DEFAULT_EPOCH",
    "EARTH_RADIUS_KM",
    "J2",
    "MICIUS_TLE",
    "MU_KM3_S2",
    "CircularOrbit",
    "DecoyPulses",
    "GroundStation",
    "OpticalLink",
    "Orbit",
    "Pass",
    "PassKey",
    "TleOrbit",
    "Track",
    "air_mass",
    "find_passes",
    "gmst_rad",
    "julian_date",
    "key_per_pass",
    "passes",
    "sun_elevation_deg",
    "sun_synchronous_inclination",
    "tle_checksum_problem",
    "track",
]

EARTH_RADIUS_KM = 6371.0
# The equatorial radius and J2 of WGS-84 (EGM-96 J2), for the nodal drift.
EARTH_EQUATORIAL_RADIUS_KM = 6378.137
J2 = 1.082_626_68e-3
MU_KM3_S2 = 398_600.4418
TROPICAL_YEAR_S = 365.242_19 * 86_400.0
DEFAULT_EPOCH = datetime(2017, 1, 1, tzinfo=UTC)
_J2000_JD = 2_451_545.0
_UNIX_EPOCH_JD = 2_440_587.5

# Micius (QUESS, NORAD 41731, COSPAR 2016-051A): the element set of 18 December 2016,
# 21:38 UTC, as distributed by the US Space Force through Space-Track and CelesTrak, the
# week of the QKD passes of Liao et al. (Nature 549, 43 (2017)). Data, not code.
MICIUS_TLE = (
    "1 41731U 16051A   16353.90152003  .00000364  00000-0  17957-4 0  9993",
    "2 41731  97.3699 267.4500 0013200 178.5836 246.0824 15.23915303 19063",
)


def julian_date(moment: datetime) -> float:
    """The Julian date (UTC) of an aware ``datetime``."""
    if moment.tzinfo is None:
        raise LinkConfigError(f"{moment.isoformat()} has no time zone; give UTC times")
    return moment.timestamp() / 86_400.0 + _UNIX_EPOCH_JD


def gmst_rad(jd: NDArray[np.float64]) -> NDArray[np.float64]:
    """Greenwich mean sidereal angle (IAU 1982, as in SGP4) at Julian dates ``jd``."""
    t = (np.asarray(jd, dtype=np.float64) - _J2000_JD) / 36_525.0
    seconds = (
        -6.2e-6 * t**3 + 0.093_104 * t**2 + (876_600.0 * 3600.0 + 8_640_184.812_866) * t
    ) + 67_310.548_41
    return np.asarray(np.radians(seconds / 240.0) % (2.0 * math.pi), dtype=np.float64)


def sun_elevation_deg(
    jd: NDArray[np.float64], latitude_deg: float, longitude_deg: float
) -> NDArray[np.float64]:
    """The Sun's elevation at a place (Astronomical Almanac low-precision formulas)."""
    n = np.asarray(jd, dtype=np.float64) - _J2000_JD
    mean_long = np.radians((280.460 + 0.985_647_4 * n) % 360.0)
    anomaly = np.radians((357.528 + 0.985_600_3 * n) % 360.0)
    ecl_long = mean_long + np.radians(1.915 * np.sin(anomaly) + 0.020 * np.sin(2 * anomaly))
    obliquity = np.radians(23.439 - 4.0e-7 * n)
    sun = np.stack(
        [
            np.cos(ecl_long),
            np.cos(obliquity) * np.sin(ecl_long),
            np.sin(obliquity) * np.sin(ecl_long),
        ]
    )
    phi = math.radians(latitude_deg)
    theta = gmst_rad(n + _J2000_JD) + math.radians(longitude_deg)
    up = np.stack([math.cos(phi) * np.cos(theta), math.cos(phi) * np.sin(theta)])
    sin_el = up[0] * sun[0] + up[1] * sun[1] + math.sin(phi) * sun[2]
    return np.asarray(np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0))), dtype=np.float64)


def sun_synchronous_inclination(altitude_km: float) -> float:
    """The inclination (degrees) whose J2 nodal drift follows the mean Sun, for a circular orbit.

    >>> round(sun_synchronous_inclination(500.0), 2)  # Micius's TLE: 97.37
    97.37
    """
    a = EARTH_RADIUS_KM + altitude_km
    n = math.sqrt(MU_KM3_S2 / a**3)
    rate = 2.0 * math.pi / TROPICAL_YEAR_S
    cos_i = -rate / (1.5 * n * J2 * (EARTH_EQUATORIAL_RADIUS_KM / a) ** 2)
    if not -1.0 <= cos_i <= 1.0:
        raise LinkConfigError(f"no sun-synchronous orbit at {altitude_km} km")
    return math.degrees(math.acos(cos_i))


def tle_checksum_problem(line: str, number: int) -> str | None:
    """Why ``line`` is not line ``number`` (1 or 2) of a TLE, or None (shape and checksum)."""
    if len(line) != 69:
        return f"TLE line {number} has {len(line)} characters; a TLE line has 69"
    if not line.startswith(f"{number} "):
        return f"TLE line {number} must start with {number!r} and a space"
    total = sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68])
    if not line[68].isdigit() or total % 10 != int(line[68]):
        return f"TLE line {number}'s checksum is {line[68]!r}; its digits give {total % 10}"
    return None


class Orbit(Protocol):
    """What :func:`track` needs of an orbit: an epoch and inertial (TEME) positions."""

    @property
    def epoch(self) -> datetime: ...

    def positions_km(self, seconds: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(3, n)`` positions at ``seconds`` after the epoch."""
        ...


@dataclass(frozen=True, kw_only=True)
class CircularOrbit:
    """A circular orbit: altitude (km), inclination, node and starting argument of latitude
    (degrees) at ``epoch``, with the J2 drift unless ``j2=False``.

    >>> orbit = CircularOrbit(altitude_km=500, inclination_deg=97.37)
    >>> round(orbit.node_drift_deg_per_day, 2)  # the mean Sun's 0.986
    0.99
    """

    altitude_km: float
    inclination_deg: float
    raan_deg: float = 0.0
    start_deg: float = 0.0
    epoch: datetime = DEFAULT_EPOCH
    j2: bool = True

    def __post_init__(self) -> None:
        if not (100.0 <= self.altitude_km <= 100_000.0):
            raise LinkConfigError(f"altitude_km is {self.altitude_km}; give 100 to 100,000 km")
        if not (0.0 <= self.inclination_deg <= 180.0):
            raise LinkConfigError("inclination_deg must lie in [0, 180]")
        julian_date(self.epoch)

    @classmethod
    def from_tle(cls, line1: str, line2: str, *, j2: bool = True) -> CircularOrbit:
        """The circular orbit with a TLE's epoch, inclination, node, argument of latitude
        (perigee + mean anomaly) and mean motion; the eccentricity is dropped."""
        for number, line in ((1, line1), (2, line2)):
            problem = tle_checksum_problem(line, number)
            if problem:
                raise LinkConfigError(problem)
        year = int(line1[18:20])
        day = float(line1[20:32])
        start = datetime(2000 + year if year < 57 else 1900 + year, 1, 1, tzinfo=UTC)
        epoch = datetime.fromtimestamp(start.timestamp() + (day - 1.0) * 86_400.0, tz=UTC)
        revs_per_day = float(line2[52:63])
        n = revs_per_day * 2.0 * math.pi / 86_400.0
        a = (MU_KM3_S2 / n**2) ** (1.0 / 3.0)
        return cls(
            altitude_km=a - EARTH_RADIUS_KM,
            inclination_deg=float(line2[8:16]),
            raan_deg=float(line2[17:25]),
            start_deg=(float(line2[34:42]) + float(line2[43:51])) % 360.0,
            epoch=epoch,
            j2=j2,
        )

    @property
    def radius_km(self) -> float:
        return EARTH_RADIUS_KM + self.altitude_km

    @property
    def period_s(self) -> float:
        """The Keplerian period ``2 pi sqrt(a^3 / mu)``."""
        return 2.0 * math.pi * math.sqrt(self.radius_km**3 / MU_KM3_S2)

    def _rates(self) -> tuple[float, float]:
        a = self.radius_km
        n = math.sqrt(MU_KM3_S2 / a**3)
        if not self.j2:
            return 0.0, n
        k = J2 * (EARTH_EQUATORIAL_RADIUS_KM / a) ** 2
        cos_i = math.cos(math.radians(self.inclination_deg))
        return -1.5 * n * k * cos_i, n * (1.0 + 0.75 * k * (8.0 * cos_i**2 - 2.0))

    @property
    def node_drift_deg_per_day(self) -> float:
        """The J2 precession of the node (0 with ``j2=False``)."""
        return math.degrees(self._rates()[0]) * 86_400.0

    def positions_km(self, seconds: NDArray[np.float64]) -> NDArray[np.float64]:
        node_rate, u_rate = self._rates()
        u = math.radians(self.start_deg) + u_rate * seconds
        node = math.radians(self.raan_deg) + node_rate * seconds
        inc = math.radians(self.inclination_deg)
        cos_u, sin_u, cos_n, sin_n = np.cos(u), np.sin(u), np.cos(node), np.sin(node)
        return self.radius_km * np.stack(
            [
                cos_u * cos_n - sin_u * math.cos(inc) * sin_n,
                cos_u * sin_n + sin_u * math.cos(inc) * cos_n,
                sin_u * math.sin(inc),
            ]
        )


@dataclass(frozen=True)
class TleOrbit:
    """An orbit from a two-line element set, propagated by SGP4 (``satellite`` extra).

    Example::

        orbit = TleOrbit(*MICIUS_TLE)
    """

    line1: str
    line2: str
    _satrec: object = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for number, line in ((1, self.line1), (2, self.line2)):
            problem = tle_checksum_problem(line, number)
            if problem:
                raise LinkConfigError(problem)
        try:
            from sgp4.api import Satrec
        except ImportError as exc:
            raise LinkConfigError(
                "TLE orbits need the sgp4 package: pip install 'qkd-agile[satellite]'"
            ) from exc
        object.__setattr__(self, "_satrec", Satrec.twoline2rv(self.line1, self.line2))

    @property
    def epoch(self) -> datetime:
        sat = self._satrec
        jd = float(sat.jdsatepoch) + float(sat.jdsatepochF)  # type: ignore[attr-defined]
        return datetime.fromtimestamp((jd - _UNIX_EPOCH_JD) * 86_400.0, tz=UTC)

    def positions_km(self, seconds: NDArray[np.float64]) -> NDArray[np.float64]:
        sat = self._satrec
        jd0 = float(sat.jdsatepoch)  # type: ignore[attr-defined]
        fr = float(sat.jdsatepochF) + np.asarray(seconds, dtype=np.float64) / 86_400.0  # type: ignore[attr-defined]
        whole = np.floor(fr)
        errors, position, _ = sat.sgp4_array(jd0 + whole, fr - whole)  # type: ignore[attr-defined]
        bad = np.flatnonzero(errors)
        if bad.size:
            raise LinkConfigError(
                f"SGP4 cannot propagate this TLE {float(seconds[bad[0]]) / 86_400.0:.1f} days "
                f"from its epoch (SGP4 error {int(errors[bad[0]])}); use a TLE nearer the time"
            )
        return np.asarray(position, dtype=np.float64).T


@dataclass(frozen=True, kw_only=True)
class GroundStation:
    """A ground station: latitude and longitude (degrees)."""

    name: str
    latitude_deg: float
    longitude_deg: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.latitude_deg <= 90.0) or not math.isfinite(self.longitude_deg):
            raise LinkConfigError(f"station {self.name!r}: latitude lies in [-90, 90] degrees")


def air_mass(elevation_deg: NDArray[np.float64]) -> NDArray[np.float64]:
    """Relative air mass at an elevation, Kasten and Young (1989); 1 at the zenith.

    >>> round(float(air_mass(np.array([30.0]))[0]), 3)
    1.994
    """
    el = np.maximum(np.asarray(elevation_deg, dtype=np.float64), 0.0)
    return np.asarray(
        1.0 / (np.sin(np.radians(el)) + 0.50572 * (el + 6.07995) ** -1.6364), dtype=np.float64
    )


@dataclass(frozen=True, kw_only=True)
class OpticalLink:
    """A downlink's optics, atmosphere and turbulence; the defaults are Micius-like.

    850 nm, a 300 mm transmitter with 10 µrad divergence and Xinglong's 1 m receiver;
    ``zenith_transmittance`` 0.8; 2 arcsec seeing at the zenith; 3 dB of pointing; an 8 µrad
    field stop and 3.5 dB of ``optics_loss_db`` calibrated to the 29.8 dB at 645 km and the
    40.3 dB at 1,200 km of Liao et al. (docs/qkd-simulation.md). ``seeing_arcsec=None``
    drops the turbulence term.
    """

    wavelength_m: float = 850e-9
    transmitter_m: float = 0.30
    receiver_m: float = 1.0
    divergence_rad: float | None = 10e-6
    zenith_transmittance: float = 0.8
    seeing_arcsec: float | None = 2.0
    field_of_view_rad: float = 8e-6
    pointing_loss_db: float = 3.0
    optics_loss_db: float = 3.5

    def __post_init__(self) -> None:
        if not (0.0 < self.zenith_transmittance <= 1.0):
            raise LinkConfigError("zenith_transmittance must lie in (0, 1]")
        if self.transmitter_m <= 0 or self.receiver_m <= 0 or self.wavelength_m <= 0:
            raise LinkConfigError("apertures and wavelength must be > 0")
        if self.seeing_arcsec is not None and not self.seeing_arcsec > 0:
            raise LinkConfigError("seeing_arcsec must be > 0 (or None: no turbulence term)")
        if not self.field_of_view_rad > 0:
            raise LinkConfigError("field_of_view_rad must be > 0")
        if self.pointing_loss_db < 0 or self.optics_loss_db < 0:
            raise LinkConfigError("pointing_loss_db and optics_loss_db must be >= 0")

    @property
    def full_divergence_rad(self) -> float:
        if self.divergence_rad is not None:
            return self.divergence_rad
        return 2.44 * self.wavelength_m / self.transmitter_m

    def terms_db(
        self, range_km: NDArray[np.float64], elevation_deg: NDArray[np.float64]
    ) -> dict[str, NDArray[np.float64]]:
        """Each loss term in dB: ``geometric``, ``extinction``, ``turbulence``, ``fixed``."""
        spot = self.transmitter_m + np.asarray(range_km) * 1e3 * self.full_divergence_rad
        geometric = -20.0 * np.log10(np.minimum(1.0, self.receiver_m / spot))
        x = air_mass(elevation_deg)
        extinction = -10.0 * x * math.log10(self.zenith_transmittance)
        if self.seeing_arcsec is None:
            turbulence = np.zeros_like(x)
        else:
            seeing = math.radians(self.seeing_arcsec / 3600.0) * x**0.6
            ratio = 4.0 * math.log(2.0) * (self.field_of_view_rad / 2.0) ** 2 / seeing**2
            turbulence = -10.0 * np.log10(-np.expm1(-ratio))
        fixed = np.full_like(x, self.pointing_loss_db + self.optics_loss_db)
        return {
            "geometric": np.asarray(geometric, dtype=np.float64),
            "extinction": np.asarray(extinction, dtype=np.float64),
            "turbulence": np.asarray(turbulence, dtype=np.float64),
            "fixed": fixed,
        }

    def loss_db(
        self, range_km: NDArray[np.float64], elevation_deg: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Channel loss in dB at each slant range and elevation (arrays of one shape)."""
        terms = self.terms_db(range_km, elevation_deg)
        return np.asarray(sum(terms.values()), dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class Track:
    """Elevation and slant range of a satellite over a station at each time step (seconds
    after the orbit's epoch)."""

    time_s: NDArray[np.float64]
    elevation_deg: NDArray[np.float64]
    range_km: NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class Pass:
    """One pass above the minimum elevation, with its own steps and their losses."""

    start_s: float
    end_s: float
    max_elevation_deg: float
    min_range_km: float
    max_range_km: float
    min_loss_db: float
    max_loss_db: float
    step_s: float = 1.0
    steps: Track | None = field(default=None, compare=False, repr=False)
    loss_db: NDArray[np.float64] | None = field(default=None, compare=False, repr=False)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def within(self, max_range_km: float) -> Pass | None:
        """The part of this pass with the slant range at most ``max_range_km`` (the range of a
        pass falls then rises, so that part is one run of steps), or None if there is none.

        Liao et al. kept the 1,200 -> 645 -> 1,200 km part of their passes for key.
        """
        if self.steps is None or self.loss_db is None:
            raise LinkConfigError("this pass has no steps; get passes from find_passes()")
        inside = np.flatnonzero(self.steps.range_km <= max_range_km)
        if inside.size == 0:
            return None
        a, b = int(inside[0]), int(inside[-1]) + 1
        el, rng = self.steps.elevation_deg[a:b], self.steps.range_km[a:b]
        loss = self.loss_db[a:b]
        return replace(
            self,
            start_s=float(self.steps.time_s[a]),
            end_s=float(self.steps.time_s[b - 1]),
            max_elevation_deg=float(el.max()),
            min_range_km=float(rng.min()),
            max_range_km=float(rng.max()),
            min_loss_db=float(loss.min()),
            max_loss_db=float(loss.max()),
            steps=Track(time_s=self.steps.time_s[a:b], elevation_deg=el, range_km=rng),
            loss_db=loss,
        )


def _station_vectors(
    station: GroundStation, epoch_jd: float, seconds: NDArray[np.float64]
) -> NDArray[np.float64]:
    phi = math.radians(station.latitude_deg)
    theta = gmst_rad(epoch_jd + seconds / 86_400.0) + math.radians(station.longitude_deg)
    return EARTH_RADIUS_KM * np.stack(
        [
            math.cos(phi) * np.cos(theta),
            math.cos(phi) * np.sin(theta),
            np.full_like(seconds, math.sin(phi)),
        ]
    )


def _geometry(
    orbit: Orbit, station: GroundStation, seconds: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    ground = _station_vectors(station, julian_date(orbit.epoch), seconds)
    slant = orbit.positions_km(seconds) - ground
    distance = np.sqrt(np.einsum("ij,ij->j", slant, slant))
    sin_el = np.einsum("ij,ij->j", slant, ground) / (distance * EARTH_RADIUS_KM)
    return np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0))), distance


def track(
    orbit: Orbit,
    station: GroundStation,
    *,
    duration_s: float,
    step_s: float = 1.0,
    start_s: float = 0.0,
) -> Track:
    """The satellite's elevation and slant range over ``station``, every ``step_s``, from
    ``start_s`` after the orbit's epoch. One array of the whole span: for long spans use
    :func:`find_passes`, which works in chunks."""
    if not (step_s > 0 and duration_s > 0 and math.isfinite(duration_s)):
        raise LinkConfigError("duration_s and step_s must be > 0")
    t = start_s + np.arange(0.0, duration_s + step_s / 2, step_s)
    elevation, distance = _geometry(orbit, station, t)
    return Track(time_s=t, elevation_deg=elevation, range_km=distance)


def _runs(mask: NDArray[np.bool_]) -> Iterator[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    yield from zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True)


def _make_pass(tr: Track, start: int, stop: int, optics: OpticalLink, step_s: float) -> Pass:
    el, rng = tr.elevation_deg[start:stop], tr.range_km[start:stop]
    loss = optics.loss_db(rng, el)
    return Pass(
        start_s=float(tr.time_s[start]),
        end_s=float(tr.time_s[stop - 1]),
        max_elevation_deg=float(el.max()),
        min_range_km=float(rng.min()),
        max_range_km=float(rng.max()),
        min_loss_db=float(loss.min()),
        max_loss_db=float(loss.max()),
        step_s=step_s,
        steps=Track(
            time_s=tr.time_s[start:stop].copy(), elevation_deg=el.copy(), range_km=rng.copy()
        ),
        loss_db=loss,
    )


def passes(tr: Track, *, min_elevation_deg: float, link: OpticalLink | None = None) -> list[Pass]:
    """The passes of a track above ``min_elevation_deg`` (a pass cut by the track's ends is
    kept with the part that was seen)."""
    optics = link or OpticalLink()
    step = float(tr.time_s[1] - tr.time_s[0]) if tr.time_s.size > 1 else 1.0
    above = tr.elevation_deg >= min_elevation_deg
    return [_make_pass(tr, a, b, optics, step) for a, b in _runs(above)]


def find_passes(
    orbit: Orbit,
    station: GroundStation,
    *,
    duration_s: float,
    min_elevation_deg: float,
    step_s: float = 1.0,
    start_s: float = 0.0,
    link: OpticalLink | None = None,
    max_sun_elevation_deg: float | None = None,
    chunk_s: float = 86_400.0,
) -> list[Pass]:
    """Every pass over ``station`` in ``[start_s, start_s + duration_s]``, in chunks of
    ``chunk_s`` so that memory does not grow with the span (a year takes one day's arrays).

    With ``max_sun_elevation_deg`` (e.g. -12, nautical dusk) only the steps with the Sun below
    it count: a pass in daylight is dropped, one at dusk is cut to its dark part.

    >>> orbit = CircularOrbit(altitude_km=500, inclination_deg=97.4)
    >>> here = GroundStation(name="Xinglong", latitude_deg=40.396, longitude_deg=117.577)
    >>> len(find_passes(orbit, here, duration_s=86_400, min_elevation_deg=15)) > 0
    True
    """
    if not (step_s > 0 and duration_s > 0 and chunk_s >= 3600.0 and math.isfinite(duration_s)):
        raise LinkConfigError("duration_s and step_s must be > 0, and chunk_s at least 3,600 s")
    optics = link or OpticalLink()
    epoch_jd = julian_date(orbit.epoch)
    # Steps are counted in integers so that a step's time is the same whatever the chunking.
    total = math.floor(duration_s / step_s + 1e-9) + 1
    per_chunk = max(2, int(chunk_s / step_s))
    found: list[Pass] = []
    k0 = 0
    while k0 < total:
        count = min(per_chunk, total - k0)
        t = start_s + step_s * np.arange(k0, k0 + count, dtype=np.float64)
        elevation, distance = _geometry(orbit, station, t)
        above = elevation >= min_elevation_deg
        if max_sun_elevation_deg is not None and above.any():
            sun = sun_elevation_deg(
                epoch_jd + t[above] / 86_400.0, station.latitude_deg, station.longitude_deg
            )
            above[np.flatnonzero(above)[sun > max_sun_elevation_deg]] = False
        tr = Track(time_s=t, elevation_deg=elevation, range_km=distance)
        runs = list(_runs(above))
        if runs and runs[-1][1] == count and k0 + count < total and runs[-1][0] > 0:
            # A pass still open at the chunk's end: the next chunk starts with it.
            next_k0 = k0 + runs[-1][0]
            runs = runs[:-1]
        else:
            next_k0 = k0 + count
        found += [_make_pass(tr, a, b, optics, step_s) for a, b in runs]
        k0 = next_k0
    return found


@dataclass(frozen=True, kw_only=True)
class DecoyPulses:
    """The decoy-state BB84 transmitter and receiver of a downlink (defaults Micius-like:
    Liao et al. 2017, 100 MHz, ``mu`` 0.8, ``nu`` 0.1, vacuum, sent 50:25:25)."""

    pulse_rate_hz: float = 100e6
    mu: float = 0.8
    nu: float = 0.1
    p_signal: float = 0.5
    p_decoy: float = 0.25
    detector_efficiency: float = 0.5
    y0: float = 1e-6
    e_d: float = 0.01
    f: float = 1.16

    def __post_init__(self) -> None:
        if not (0.0 < self.nu < self.mu <= 20.0):
            raise LinkConfigError("need 0 < nu < mu <= 20")
        if not (self.p_signal > 0 and self.p_decoy > 0 and self.p_signal + self.p_decoy < 1):
            raise LinkConfigError("p_signal and p_decoy must be > 0 and leave room for vacuum")
        for name in ("detector_efficiency", "y0"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise LinkConfigError(f"{name} is {value}; give a probability")
        if not (0.0 <= self.e_d <= 0.5 and self.f >= 1.0 and self.pulse_rate_hz > 0):
            raise LinkConfigError("need e_d in [0, 0.5], f >= 1 and pulse_rate_hz > 0")


@dataclass(frozen=True, kw_only=True)
class PassKey:
    """The key of one pass: detections of all intensities, sifted signal bits (the raw key),
    their QBER, and the secret bits (finite and asymptotic)."""

    detections: int
    sifted_bits: int
    qber: float
    secret_bits: int
    asymptotic_bits: int


def key_per_pass(
    one: Pass,
    *,
    pulses: DecoyPulses | None = None,
    epsilon_sec: float = 1e-10,
    epsilon_cor: float = 1e-15,
) -> PassKey:
    """The secret key of one pass, finite-key over its bits (see the module docstring).

    Example::

        key = key_per_pass(found[0])
        key.secret_bits, key.asymptotic_bits
    """
    from qkd.physics.decoy import DecoyCounts, bound_single_photon
    from qkd.postprocessing.finite_key import decoy_key_length

    if one.steps is None or one.loss_db is None:
        raise LinkConfigError("this pass has no steps; get passes from passes() or find_passes()")
    tx = pulses or DecoyPulses()
    eta = tx.detector_efficiency * 10.0 ** (-one.loss_db / 10.0)
    per_step = tx.pulse_rate_hz * one.step_s
    p_vacuum = 1.0 - tx.p_signal - tx.p_decoy
    steps = eta.size
    sent = [round(per_step * steps * p) for p in (tx.p_signal, tx.p_decoy, p_vacuum)]

    def gain(intensity: float) -> float:
        return float(np.sum(tx.y0 + 1.0 - np.exp(-eta * intensity)))

    def errors(intensity: float) -> float:
        return float(np.sum(tx.y0 / 2.0 + tx.e_d * -np.expm1(-eta * intensity)))

    scale = per_step
    det = [
        round(scale * tx.p_signal * gain(tx.mu)),
        round(scale * tx.p_decoy * gain(tx.nu)),
        round(scale * p_vacuum * steps * tx.y0),
    ]
    decoy_sifted = det[1] // 2
    decoy_errors = round(scale * tx.p_decoy * errors(tx.nu) / 2.0)
    raw = det[0] // 2
    qber = errors(tx.mu) / gain(tx.mu) if gain(tx.mu) > 0 else 0.5
    leaked = math.ceil(tx.f * raw * _h2(qber))
    counts = DecoyCounts(
        mu=tx.mu,
        nu=tx.nu,
        sent=(sent[0], sent[1], sent[2]),
        detections=(det[0], det[1], det[2]),
        decoy_sifted=max(decoy_sifted, 1),
        decoy_errors=decoy_errors,
    )
    lengths = []
    for epsilon in (epsilon_sec, None):
        bounds = bound_single_photon(counts, epsilon)
        lengths.append(
            decoy_key_length(
                raw_bits=raw,
                mu=tx.mu,
                nu=tx.nu,
                bounds=bounds,
                decoy_sifted=counts.decoy_sifted,
                leaked_bits=leaked,
                epsilon_sec=epsilon_sec,
                epsilon_cor=epsilon_cor,
                asymptotic=epsilon is None,
            ).length
        )
    return PassKey(
        detections=sum(det),
        sifted_bits=raw,
        qber=qber,
        secret_bits=max(0, lengths[0]),
        asymptotic_bits=max(0, lengths[1]),
    )


def _h2(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)
