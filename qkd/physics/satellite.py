"""Satellite passes over a ground station: geometry, channel loss, and key per pass.

Hazmat: explicit parameters, no policy. A first model: circular orbits only (no TLE yet),
no J2 precession of the orbit plane, a spherical Earth, and asymptotic decoy-state key rates.

Theory of operation
-------------------
Geometry (Vallado, "Fundamentals of Astrodynamics and Applications", 4th ed., ch. 2-3). A
circular orbit of altitude ``h`` and inclination ``i`` has radius ``a = R + h`` and mean motion
``n = sqrt(mu / a^3)``. In the Earth-centred inertial frame, with right ascension of the
ascending node ``Omega`` and argument of latitude ``u = u0 + n t``,

    r_sat = a (cos u cos Omega - sin u cos i sin Omega,
               cos u sin Omega + sin u cos i cos Omega,
               sin u sin i).

A ground station at latitude ``phi`` and longitude ``lambda`` turns with the Earth
(``omega_E`` rad/s): ``r_gs = R (cos phi cos theta, cos phi sin theta, sin phi)`` with
``theta = lambda + omega_E t``. The slant vector is ``d = r_sat - r_gs``; the slant range is
``|d|`` and the elevation ``asin(d . r_gs / (|d| R))``. A pass is a maximal run of time steps
with the elevation at or above the minimum; all steps of a day are computed as one array.

Loss (Bourgoin et al., "A comprehensive design and performance analysis of low Earth orbit
satellite quantum communication", New J. Phys. 15, 023006 (2013), eqs. 1-3):

- geometric: the beam leaves an aperture ``D_T`` with full divergence ``theta``
  (diffraction-limited: ``theta = 2.44 lambda / D_T``, or given) and lands as a spot of
  ``D_T + L theta`` at range ``L``; a receiver of diameter ``D_R`` collects
  ``eta_geo = min(1, (D_R / (D_T + L theta))^2)``;
- atmospheric: a plane-parallel atmosphere of zenith transmittance ``T_z`` transmits
  ``T_z^(1 / sin(elevation))``;
- pointing and the optics of both ends: fixed losses in dB.

Key. Each step's transmittance feeds the asymptotic decoy-state BB84 rate of
:mod:`qkd.physics.rates` (vacuum + weak bounds, Ma et al. PRA 72, 012326) at a fixed signal
intensity, over the whole pass as one array; the key of a pass is the sum over its steps of
rate x pulse rate x step. Finite-key effects over the bits of one pass are not yet applied
(docs/ROADMAP.md).

Micius (Liao et al., Nature 549, 43 (2017)): a 500 km orbit, passes of about 5 minutes with
QKD from about 15 degrees of elevation, slant range 1,200 -> 645 -> 1,200 km, and measured
channel losses of about 29.8 dB at 645 km to 40.3 dB at 1,200 km (downlink at 850 nm, 300 mm
transmitter, 1 m receiver at Xinglong).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qkd.physics.link import LinkConfigError
from qkd.physics.rates import vacuum_weak_rate_etas

__all__ = [
    "EARTH_RADIUS_KM",
    "MU_KM3_S2",
    "CircularOrbit",
    "GroundStation",
    "OpticalLink",
    "Pass",
    "Track",
    "key_per_pass",
    "passes",
    "track",
]

EARTH_RADIUS_KM = 6371.0
MU_KM3_S2 = 398_600.4418
EARTH_ROTATION_RAD_S = 7.292_115_9e-5


@dataclass(frozen=True, kw_only=True)
class CircularOrbit:
    """A circular orbit: altitude (km), inclination, node and starting argument of latitude
    (degrees)."""

    altitude_km: float
    inclination_deg: float
    raan_deg: float = 0.0
    start_deg: float = 0.0

    def __post_init__(self) -> None:
        if not (100.0 <= self.altitude_km <= 100_000.0):
            raise LinkConfigError(f"altitude_km is {self.altitude_km}; give 100 to 100,000 km")
        if not (0.0 <= self.inclination_deg <= 180.0):
            raise LinkConfigError("inclination_deg must lie in [0, 180]")

    @property
    def period_s(self) -> float:
        a = EARTH_RADIUS_KM + self.altitude_km
        return 2.0 * math.pi * math.sqrt(a**3 / MU_KM3_S2)


@dataclass(frozen=True, kw_only=True)
class GroundStation:
    """A ground station: latitude and longitude (degrees)."""

    name: str
    latitude_deg: float
    longitude_deg: float


@dataclass(frozen=True, kw_only=True)
class OpticalLink:
    """A downlink's optics and atmosphere (defaults after Micius's 850 nm decoy downlink)."""

    wavelength_m: float = 850e-9
    transmitter_m: float = 0.30
    receiver_m: float = 1.0
    divergence_rad: float | None = None
    zenith_transmittance: float = 0.8
    pointing_loss_db: float = 3.0
    optics_loss_db: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 < self.zenith_transmittance <= 1.0):
            raise LinkConfigError("zenith_transmittance must lie in (0, 1]")
        if self.transmitter_m <= 0 or self.receiver_m <= 0 or self.wavelength_m <= 0:
            raise LinkConfigError("apertures and wavelength must be > 0")

    @property
    def full_divergence_rad(self) -> float:
        if self.divergence_rad is not None:
            return self.divergence_rad
        return 2.44 * self.wavelength_m / self.transmitter_m

    def loss_db(
        self, range_km: NDArray[np.float64], elevation_deg: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Channel loss in dB at each slant range and elevation (arrays of one shape)."""
        spot = self.transmitter_m + range_km * 1e3 * self.full_divergence_rad
        geometric = np.minimum(1.0, (self.receiver_m / spot) ** 2)
        sin_el = np.sin(np.radians(np.maximum(elevation_deg, 1e-3)))
        atmosphere = self.zenith_transmittance ** (1.0 / sin_el)
        extra = self.pointing_loss_db + self.optics_loss_db
        return np.asarray(-10.0 * np.log10(geometric * atmosphere) + extra, dtype=np.float64)


@dataclass(frozen=True, kw_only=True)
class Track:
    """Elevation and slant range of a satellite over a station at each time step."""

    time_s: NDArray[np.float64]
    elevation_deg: NDArray[np.float64]
    range_km: NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class Pass:
    """One pass above the minimum elevation."""

    start_s: float
    end_s: float
    max_elevation_deg: float
    min_range_km: float
    max_range_km: float
    min_loss_db: float
    max_loss_db: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def track(
    orbit: CircularOrbit, station: GroundStation, *, duration_s: float, step_s: float = 1.0
) -> Track:
    """The satellite's elevation and slant range over ``station``, every ``step_s``."""
    if step_s <= 0 or duration_s <= 0:
        raise LinkConfigError("duration_s and step_s must be > 0")
    t = np.arange(0.0, duration_s + step_s / 2, step_s)
    a = EARTH_RADIUS_KM + orbit.altitude_km
    n = math.sqrt(MU_KM3_S2 / a**3)
    u = math.radians(orbit.start_deg) + n * t
    inc, node = math.radians(orbit.inclination_deg), math.radians(orbit.raan_deg)
    sat = a * np.stack(
        [
            np.cos(u) * math.cos(node) - np.sin(u) * math.cos(inc) * math.sin(node),
            np.cos(u) * math.sin(node) + np.sin(u) * math.cos(inc) * math.cos(node),
            np.sin(u) * math.sin(inc),
        ]
    )
    phi = math.radians(station.latitude_deg)
    theta = math.radians(station.longitude_deg) + EARTH_ROTATION_RAD_S * t
    ground = EARTH_RADIUS_KM * np.stack(
        [
            math.cos(phi) * np.cos(theta),
            math.cos(phi) * np.sin(theta),
            np.full_like(t, math.sin(phi)),
        ]
    )
    slant = sat - ground
    distance = np.linalg.norm(slant, axis=0)
    sin_el = np.einsum("ij,ij->j", slant, ground) / (distance * EARTH_RADIUS_KM)
    elevation = np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0)))
    return Track(time_s=t, elevation_deg=elevation, range_km=distance)


def passes(tr: Track, *, min_elevation_deg: float, link: OpticalLink | None = None) -> list[Pass]:
    """The passes of a track above ``min_elevation_deg`` (a pass cut by the track's ends is
    kept with the part that was seen)."""
    optics = link or OpticalLink()
    above = tr.elevation_deg >= min_elevation_deg
    edges = np.flatnonzero(np.diff(np.concatenate(([0], above.astype(np.int8), [0]))))
    out = []
    for start, stop in zip(edges[0::2], edges[1::2], strict=True):
        el, rng = tr.elevation_deg[start:stop], tr.range_km[start:stop]
        loss = optics.loss_db(rng, el)
        out.append(
            Pass(
                start_s=float(tr.time_s[start]),
                end_s=float(tr.time_s[stop - 1]),
                max_elevation_deg=float(el.max()),
                min_range_km=float(rng.min()),
                max_range_km=float(rng.max()),
                min_loss_db=float(loss.min()),
                max_loss_db=float(loss.max()),
            )
        )
    return out


def key_per_pass(
    tr: Track,
    one: Pass,
    *,
    link: OpticalLink | None = None,
    pulse_rate_hz: float = 100e6,
    detector_efficiency: float = 0.5,
    y0: float = 1e-6,
    e_d: float = 0.01,
    mu: float = 0.8,
    nu: float = 0.1,
    f: float = 1.16,
) -> float:
    """Asymptotic secret bits of one pass: decoy BB84 (vacuum + weak) at each step's loss."""
    optics = link or OpticalLink()
    inside = (tr.time_s >= one.start_s) & (tr.time_s <= one.end_s)
    loss = optics.loss_db(tr.range_km[inside], tr.elevation_deg[inside])
    eta = detector_efficiency * 10.0 ** (-loss / 10.0)
    step = float(tr.time_s[1] - tr.time_s[0]) if tr.time_s.size > 1 else 1.0
    per_pulse = vacuum_weak_rate_etas(eta, y0=y0, e_d=e_d, mu=mu, nu=nu, f=f)
    return float(per_pulse.sum() * pulse_rate_hz * step)
