"""The physical QKD link: weak-coherent source with decoy states, channel, detectors, presets.

Theory of operation
-------------------
Source. Alice sends weak coherent pulses whose photon number is Poisson distributed,
``P(n | mu) = exp(-mu) mu^n / n!``, at one of three intensities chosen at random per pulse:
the signal ``mu``, the weak decoy ``nu`` and the vacuum (Hwang, PRL 91, 057901 (2003); Lo, Ma
and Chen, PRL 94, 230504 (2005)).

Channel. A fibre of attenuation ``alpha`` dB/km and length ``L`` km, plus a fixed insertion
loss, has transmittance ``eta_ch = 10^(-(alpha L + loss_dB)/10)``. A free-space or satellite
link is a fixed loss in dB, or a sequence of losses, one per time step of a pass; the pulses
are spread evenly over the steps.

Detectors. Bob's apparatus has efficiency ``eta_Bob`` and two threshold detectors, each with
dark-count probability ``p_d`` per gate; the total dark-count yield is
``Y0 = 1 - (1 - p_d)^2``. Every photon that reaches a detector lands in the wrong one with
probability ``e_d`` (misalignment). A gate where both detectors click is assigned a random
bit (the squashing model of Lütkenhaus and Beaudry). The overall transmittance is
``eta = eta_Bob * eta_ch``, so that for a Poisson source

    Q_mu = 1 - (1 - Y0) exp(-eta mu)            (~ Y0 + 1 - exp(-eta mu))
    E_mu Q_mu ~ Y0 / 2 + e_d (1 - exp(-eta mu))

(Ma, Qi, Zhao and Lo, PRA 72, 012326 (2005), eqs. 2-4).

Presets are those of Ma et al. 2005, Table I: ``gys`` (Gobby, Yuan and Shields 2004), an InGaAs
APD link and a superconducting-nanowire link.

This is the hazmat layer: nothing here checks that a configuration is physically sensible
beyond the ranges of its parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from qkd._errors import QKDError

__all__ = [
    "PRESETS",
    "DecoySource",
    "Detector",
    "FibreChannel",
    "FreeSpaceChannel",
    "Link",
    "LinkConfigError",
    "detector_preset",
    "preset",
]


class LinkConfigError(QKDError, ValueError):
    """A link, source, channel or detector parameter is out of range."""


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise LinkConfigError(f"{name} = {value!r} is not a probability; give a value in [0, 1]")


@dataclass(frozen=True, kw_only=True)
class DecoySource:
    """A weak-coherent-pulse source with a signal, a weak decoy and a vacuum intensity.

    Example::

        DecoySource(mu=0.5, nu=0.1, p_signal=0.7, p_decoy=0.2, p_vacuum=0.1)
    """

    mu: float = 0.5
    nu: float = 0.1
    p_signal: float = 0.7
    p_decoy: float = 0.2
    p_vacuum: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.nu < self.mu:
            raise LinkConfigError(
                f"source: need 0 < nu < mu (got mu={self.mu}, nu={self.nu}); "
                "the weak decoy must be dimmer than the signal"
            )
        if self.mu > 20:
            raise LinkConfigError(f"source: mu = {self.mu} is not a weak pulse; use mu <= 20")
        for name in ("p_signal", "p_decoy", "p_vacuum"):
            _check_probability(f"source.{name}", getattr(self, name))
        total = self.p_signal + self.p_decoy + self.p_vacuum
        if abs(total - 1.0) > 1e-9 or self.p_signal == 0:
            raise LinkConfigError(
                f"source: p_signal + p_decoy + p_vacuum = {total}; they must sum to 1 "
                "with p_signal > 0"
            )

    @property
    def intensities(self) -> tuple[float, float, float]:
        """Mean photon numbers, in the order signal, decoy, vacuum."""
        return (self.mu, self.nu, 0.0)

    @property
    def probabilities(self) -> tuple[float, float, float]:
        """Probabilities of choosing each intensity, in the order of ``intensities``."""
        return (self.p_signal, self.p_decoy, self.p_vacuum)


@dataclass(frozen=True, kw_only=True)
class FibreChannel:
    """Optical fibre: ``alpha_db_per_km`` times ``length_km`` plus ``extra_loss_db``."""

    length_km: float
    alpha_db_per_km: float = 0.21
    extra_loss_db: float = 0.0

    def __post_init__(self) -> None:
        if not (self.length_km >= 0 and math.isfinite(self.length_km)):
            raise LinkConfigError(f"fibre: length_km = {self.length_km!r}; give a length >= 0")
        if not self.alpha_db_per_km >= 0 or not self.extra_loss_db >= 0:
            raise LinkConfigError("fibre: alpha_db_per_km and extra_loss_db must be >= 0")

    def losses_db(self) -> tuple[float, ...]:
        """Loss of each time step in dB (one step: a fibre does not change)."""
        return (self.alpha_db_per_km * self.length_km + self.extra_loss_db,)


@dataclass(frozen=True, kw_only=True)
class FreeSpaceChannel:
    """A free-space or satellite link: a fixed loss, or one loss per time step of a pass.

    Example (a pass sampled every 10 s)::

        FreeSpaceChannel(loss_db=(45.0, 38.0, 33.0, 38.0, 45.0))
    """

    loss_db: float | tuple[float, ...]

    def __post_init__(self) -> None:
        steps = self.losses_db()
        if not steps or any(not (s >= 0 and math.isfinite(s)) for s in steps):
            raise LinkConfigError("free-space: every loss_db must be a finite value >= 0 dB")

    def losses_db(self) -> tuple[float, ...]:
        """Loss of each time step in dB."""
        if isinstance(self.loss_db, Sequence):
            return tuple(float(s) for s in self.loss_db)
        return (float(self.loss_db),)

    @classmethod
    def horizontal(
        cls,
        *,
        length_km: float,
        transmitter_m: float,
        receiver_m: float,
        divergence_rad: float,
        attenuation_db_per_km: float = 0.0,
        extra_loss_db: float = 0.0,
    ) -> FreeSpaceChannel:
        """A horizontal free-space path of ``length_km``, its loss from the optics.

        The beam leaves an aperture ``D_T`` with full divergence ``theta`` and lands as a spot
        of ``D_T + L theta``; a receiver of diameter ``D_R`` collects
        ``min(1, (D_R / (D_T + L theta))^2)`` (Bourgoin et al., New J. Phys. 15, 023006 (2013),
        eq. 1). The air adds ``attenuation_db_per_km`` per km and the rest (pointing,
        turbulence, optics) is ``extra_loss_db``.

        >>> # A 0.2 m spot on a 0.1 m receiver: a quarter of the light, 6 dB.
        >>> round(FreeSpaceChannel.horizontal(length_km=1.0, transmitter_m=0.1,
        ...     receiver_m=0.1, divergence_rad=100e-6).losses_db()[0], 2)
        6.02
        """
        for name, value in (
            ("length_km", length_km),
            ("attenuation_db_per_km", attenuation_db_per_km),
            ("extra_loss_db", extra_loss_db),
        ):
            if not (value >= 0 and math.isfinite(value)):
                raise LinkConfigError(f"free-space: {name} = {value!r}; give a value >= 0")
        for name, value in (
            ("transmitter_m", transmitter_m),
            ("receiver_m", receiver_m),
            ("divergence_rad", divergence_rad),
        ):
            if not (value > 0 and math.isfinite(value)):
                raise LinkConfigError(f"free-space: {name} = {value!r}; give a value > 0")
        spot = transmitter_m + length_km * 1e3 * divergence_rad
        geometric = -20.0 * math.log10(min(1.0, receiver_m / spot))
        return cls(loss_db=geometric + attenuation_db_per_km * length_km + extra_loss_db)


@dataclass(frozen=True, kw_only=True)
class Detector:
    """Bob's detection apparatus.

    ``dark_count_probability`` is the total yield of both detectors per gate (``Y0``),
    ``misalignment`` the probability ``e_d`` that a photon hits the wrong detector.
    """

    efficiency: float
    dark_count_probability: float
    misalignment: float

    def __post_init__(self) -> None:
        _check_probability("detector.efficiency", self.efficiency)
        _check_probability("detector.dark_count_probability", self.dark_count_probability)
        if not 0.0 <= self.misalignment <= 0.5:
            raise LinkConfigError(
                f"detector.misalignment = {self.misalignment}; give e_d in [0, 0.5]"
            )

    @property
    def dark_count_per_detector(self) -> float:
        """``p_d`` of each of the two detectors, from ``Y0 = 1 - (1 - p_d)^2``."""
        return 1.0 - math.sqrt(1.0 - self.dark_count_probability)


@dataclass(frozen=True, kw_only=True)
class Link:
    """Source, channel and detector, plus the analytic error-correction efficiency ``f``."""

    name: str
    source: DecoySource = field(default_factory=DecoySource)
    channel: FibreChannel | FreeSpaceChannel
    detector: Detector
    ec_efficiency: float = 1.16

    def transmittances(self) -> tuple[float, ...]:
        """Overall transmittance ``eta = eta_Bob * eta_channel`` of each time step."""
        return tuple(
            self.detector.efficiency * 10.0 ** (-loss / 10.0) for loss in self.channel.losses_db()
        )

    @property
    def distance_km(self) -> float | None:
        """Fibre length, or None for a free-space link."""
        return self.channel.length_km if isinstance(self.channel, FibreChannel) else None

    def with_source(self, source: DecoySource) -> Link:
        """This link with another source."""
        return replace(self, source=source)


@dataclass(frozen=True, kw_only=True)
class _Preset:
    alpha_db_per_km: float
    efficiency: float
    dark_count_probability: float
    misalignment: float
    ec_efficiency: float


# Ma, Qi, Zhao and Lo, PRA 72, 012326 (2005), Table I (gys); the table is in docs/qkd-simulation.md.
PRESETS: dict[str, _Preset] = {
    "gys": _Preset(
        alpha_db_per_km=0.21,
        efficiency=0.045,
        dark_count_probability=1.7e-6,
        misalignment=0.033,
        ec_efficiency=1.22,
    ),
    "ingaas": _Preset(
        alpha_db_per_km=0.20,
        efficiency=0.10,
        dark_count_probability=1e-6,
        misalignment=0.015,
        ec_efficiency=1.16,
    ),
    "snspd": _Preset(
        alpha_db_per_km=0.20,
        efficiency=0.80,
        dark_count_probability=1e-7,
        misalignment=0.01,
        ec_efficiency=1.16,
    ),
}


def detector_preset(name: str) -> tuple[Detector, float]:
    """The detector and error-correction efficiency of a preset, without its fibre.

    Example::

        detector, f = detector_preset("snspd")
    """
    try:
        p = PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise LinkConfigError(f"preset {name!r} is unknown; choose one of {known}") from None
    detector = Detector(
        efficiency=p.efficiency,
        dark_count_probability=p.dark_count_probability,
        misalignment=p.misalignment,
    )
    return detector, p.ec_efficiency


def preset(
    name: str,
    distance_km: float = 0.0,
    *,
    source: DecoySource | None = None,
    extra_loss_db: float = 0.0,
) -> Link:
    """A fibre link with the named detector preset (``gys``, ``ingaas`` or ``snspd``).

    Example::

        link = preset("gys", 25.0)
    """
    try:
        p = PRESETS[name]
    except KeyError:
        known = ", ".join(PRESETS)
        raise LinkConfigError(f"preset {name!r} is unknown; choose one of {known}") from None
    return Link(
        name=name,
        source=source if source is not None else DecoySource(),
        channel=FibreChannel(
            length_km=distance_km, alpha_db_per_km=p.alpha_db_per_km, extra_loss_db=extra_loss_db
        ),
        detector=Detector(
            efficiency=p.efficiency,
            dark_count_probability=p.dark_count_probability,
            misalignment=p.misalignment,
        ),
        ec_efficiency=p.ec_efficiency,
    )
