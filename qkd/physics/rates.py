"""Analytic key rates of decoy-state BB84 and the repeaterless bound.

Theory of operation
-------------------
For a Poisson source of mean ``mu`` over a link of overall transmittance ``eta``, with
dark-count yield ``Y0`` and misalignment ``e_d`` (Ma, Qi, Zhao and Lo, PRA 72, 012326 (2005),
eqs. 1-10):

    Q_mu = Y0 + 1 - exp(-eta mu),         E_mu Q_mu = Y0 / 2 + e_d (1 - exp(-eta mu))
    Y1 = Y0 + eta - Y0 eta,  Q1 = Y1 mu exp(-mu),  e1 Y1 = Y0 / 2 + e_d eta

The GLLP rate per pulse (Gottesman, Lo, Lütkenhaus and Preskill, QIC 4, 325 (2004)) is

    R >= q { -Q_mu f H2(E_mu) + Q1 [1 - H2(e1)] },     q = 1/2 (symmetric BB84 sifting)

with the true ``Q1`` and ``e1`` for infinitely many decoys, or the vacuum+weak bounds ``Y1_L``
and ``e1_U`` of :mod:`qkd.physics.decoy` for a finite decoy set. The repeaterless PLOB bound
(Pirandola, Laurenza, Ottaviani and Banchi, Nat. Commun. 8, 15043 (2017)) on any point-to-point
protocol is ``-log2(1 - eta)`` bits per pulse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from qkd.physics.decoy import vacuum_weak_bounds
from qkd.physics.link import PRESETS, Link, LinkConfigError

__all__ = [
    "DecoyStatistics",
    "Method",
    "binary_entropy",
    "decoy_statistics",
    "error_rate",
    "gain",
    "gllp_rate",
    "link_rate",
    "max_distance",
    "optimal_mu",
    "plob",
    "rate",
    "transmittance",
    "vacuum_weak_rate",
    "vacuum_weak_rate_etas",
]

Method = Literal["infinite", "vacuum+weak"]


def binary_entropy(p: float) -> float:
    """``H2(p) = -p log2 p - (1 - p) log2 (1 - p)``, with ``H2(0) = H2(1) = 0``."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def _preset(name: str) -> tuple[float, float, float, float, float]:
    try:
        p = PRESETS[name]
    except KeyError:
        raise LinkConfigError(
            f"preset {name!r} is unknown; choose one of {', '.join(PRESETS)}"
        ) from None
    return (
        p.alpha_db_per_km,
        p.efficiency,
        p.dark_count_probability,
        p.misalignment,
        p.ec_efficiency,
    )


def transmittance(preset: str, distance_km: float) -> float:
    """Overall ``eta = eta_Bob 10^(-alpha L / 10)`` of a preset fibre link."""
    alpha, eff, _, _, _ = _preset(preset)
    return eff * math.pow(10.0, -alpha * distance_km / 10.0)


def gain(mu: float, eta: float, y0: float) -> float:
    """``Q_mu = Y0 + 1 - exp(-eta mu)``."""
    return y0 + 1.0 - math.exp(-eta * mu)


def error_rate(mu: float, eta: float, y0: float, e_d: float) -> float:
    """``E_mu = (Y0 / 2 + e_d (1 - exp(-eta mu))) / Q_mu``."""
    q = gain(mu, eta, y0)
    return (0.5 * y0 + e_d * (1.0 - math.exp(-eta * mu))) / q


def plob(eta: ArrayLike) -> NDArray[np.float64]:
    """The repeaterless bound ``-log2(1 - eta)`` in bits per pulse."""
    return np.asarray(-np.log2(1.0 - np.asarray(eta, dtype=np.float64)), dtype=np.float64)


def _gllp(
    *, mu: float, eta: float, y0: float, e_d: float, f: float, q: float, y1: float, e1: float
) -> float:
    q_mu = gain(mu, eta, y0)
    e_mu = error_rate(mu, eta, y0, e_d)
    q1 = y1 * mu * math.exp(-mu)
    return q * (-q_mu * f * binary_entropy(e_mu) + q1 * (1.0 - binary_entropy(e1)))


def gllp_rate(
    preset: str, distance_km: float, mu: float, *, f: float | None = None, q: float = 0.5
) -> float:
    """GLLP rate per pulse with infinitely many decoys (true ``Y1``, ``e1``); 0 if negative.

    Example::

        gllp_rate("gys", 50.0, mu=0.48)
    """
    _, _, y0, e_d, f_preset = _preset(preset)
    eta = transmittance(preset, distance_km)
    y1 = y0 + eta - y0 * eta
    e1 = (0.5 * y0 + e_d * eta) / y1
    ff = f_preset if f is None else f
    return max(0.0, _gllp(mu=mu, eta=eta, y0=y0, e_d=e_d, f=ff, q=q, y1=y1, e1=e1))


def vacuum_weak_rate(
    preset: str,
    distance_km: float,
    mu: float,
    nu: float = 0.1,
    *,
    f: float | None = None,
    q: float = 0.5,
) -> float:
    """GLLP rate per pulse with the vacuum+weak bounds ``Y1_L``, ``e1_U``; 0 if negative."""
    _, _, y0, e_d, f_preset = _preset(preset)
    eta = transmittance(preset, distance_km)
    return vacuum_weak_rate_eta(eta=eta, y0=y0, e_d=e_d, mu=mu, nu=nu, f=f or f_preset, q=q)


def vacuum_weak_rate_eta(
    *, eta: float, y0: float, e_d: float, mu: float, nu: float, f: float, q: float = 0.5
) -> float:
    """As :func:`vacuum_weak_rate`, for an explicit transmittance, ``Y0`` and ``e_d``."""
    y1, e1 = vacuum_weak_bounds(
        mu=mu,
        nu=nu,
        q_mu=gain(mu, eta, y0),
        q_nu=gain(nu, eta, y0),
        e_nu=error_rate(nu, eta, y0, e_d),
        y0_for_yield=y0,
    )
    if y1 <= 0:
        return 0.0
    return max(0.0, _gllp(mu=mu, eta=eta, y0=y0, e_d=e_d, f=f, q=q, y1=y1, e1=e1))


def vacuum_weak_rate_etas(
    eta: ArrayLike, *, y0: float, e_d: float, mu: float, nu: float, f: float, q: float = 0.5
) -> NDArray[np.float64]:
    """:func:`vacuum_weak_rate_eta` over an array of transmittances, as whole-array numpy.

    The same formulas (gains and errors of Ma et al. eqs. 1-10, the bounds of
    :func:`qkd.physics.decoy.vacuum_weak_bounds`, GLLP), element by element; 0 where the
    single-photon bound vanishes or the rate is negative.
    """
    eta_a = np.asarray(eta, dtype=np.float64)
    q_mu = y0 + 1.0 - np.exp(-eta_a * mu)
    q_nu = y0 + 1.0 - np.exp(-eta_a * nu)
    e_mu = (0.5 * y0 + e_d * (1.0 - np.exp(-eta_a * mu))) / q_mu
    e_nu = (0.5 * y0 + e_d * (1.0 - np.exp(-eta_a * nu))) / q_nu
    y1 = (
        mu
        / (mu * nu - nu * nu)
        * (
            q_nu * math.exp(nu)
            - q_mu * math.exp(mu) * nu * nu / (mu * mu)
            - (mu * mu - nu * nu) / (mu * mu) * y0
        )
    )
    positive = y1 > 0.0
    safe_y1 = np.where(positive, y1, 1.0)
    e1 = np.clip((e_nu * q_nu * math.exp(nu) - 0.5 * y0) / (safe_y1 * nu), 0.0, 0.5)
    q1 = safe_y1 * mu * math.exp(-mu)
    rate = q * (-q_mu * f * _h2(e_mu) + q1 * (1.0 - _h2(e1)))
    return np.where(positive, np.maximum(rate, 0.0), 0.0)


def _h2(p: NDArray[np.float64]) -> NDArray[np.float64]:
    inside = (p > 0.0) & (p < 1.0)
    x = np.where(inside, p, 0.5)
    return np.where(inside, -x * np.log2(x) - (1.0 - x) * np.log2(1.0 - x), 0.0)


def rate(
    preset: str,
    distance_km: float,
    mu: float,
    *,
    method: Method = "infinite",
    nu: float = 0.1,
    f: float | None = None,
) -> float:
    """The rate of ``method`` (``infinite`` or ``vacuum+weak``) at one ``mu``."""
    if method == "infinite":
        return gllp_rate(preset, distance_km, mu, f=f)
    if method == "vacuum+weak":
        return vacuum_weak_rate(preset, distance_km, mu, nu, f=f)
    raise LinkConfigError(f"method {method!r} is unknown; use 'infinite' or 'vacuum+weak'")


def optimal_mu(
    preset: str,
    distance_km: float,
    *,
    method: Method = "infinite",
    nu: float = 0.1,
    f: float | None = None,
) -> tuple[float, float]:
    """``(mu, rate)`` maximising the rate: a grid search refined by golden sections."""
    return _best_mu(
        lambda mu: rate(preset, distance_km, mu, method=method, nu=nu, f=f), method=method, nu=nu
    )


def _best_mu(at: Callable[[float], float], *, method: Method, nu: float) -> tuple[float, float]:
    """``(mu, at(mu))`` at the maximum of ``at`` over the signal intensity: a grid from just
    above the decoy (vacuum+weak) or 1e-3 to 1.5, refined by golden sections."""
    low = nu * 1.05 if method == "vacuum+weak" else 1e-3
    grid = np.linspace(low, 1.5, 150)
    rates = [at(float(m)) for m in grid]
    best = int(np.argmax(rates))
    if rates[best] <= 0.0:
        return float(grid[best]), 0.0
    a = float(grid[max(best - 1, 0)])
    b = float(grid[min(best + 1, grid.size - 1)])
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        c = b - golden * (b - a)
        d = a + golden * (b - a)
        if at(c) >= at(d):
            b = d
        else:
            a = c
    mu = (a + b) / 2.0
    return mu, at(mu)


def max_distance(
    preset: str,
    *,
    method: Method = "infinite",
    nu: float = 0.1,
    f: float | None = None,
    upper_km: float = 1000.0,
) -> float:
    """The largest distance (km) with a positive optimal rate, found by bisection to 0.01 km."""
    lo, hi = 0.0, upper_km
    if optimal_mu(preset, lo, method=method, nu=nu, f=f)[1] <= 0.0:
        return 0.0
    while hi - lo > 0.01:
        mid = (lo + hi) / 2.0
        if optimal_mu(preset, mid, method=method, nu=nu, f=f)[1] > 0.0:
            lo = mid
        else:
            hi = mid
    return lo


def link_rate(
    link: Link, *, method: Method = "vacuum+weak", nu: float = 0.1, q: float = 0.5
) -> tuple[float, float]:
    """``(mu, rate)``: the best signal intensity and secret bits per pulse of any link (fibre
    or free-space, one time step), from its transmittance, dark counts and misalignment.

    Example::

        link_rate(Link(name="fs", channel=FreeSpaceChannel(loss_db=35.0), detector=d))
    """
    steps = link.transmittances()
    if len(steps) != 1:
        raise LinkConfigError("link_rate takes a link of one loss; this one has a loss per step")
    eta = steps[0]
    d = link.detector
    y0, e_d, f = d.dark_count_probability, d.misalignment, link.ec_efficiency

    def at(mu: float) -> float:
        if method == "vacuum+weak":
            return vacuum_weak_rate_eta(eta=eta, y0=y0, e_d=e_d, mu=mu, nu=nu, f=f, q=q)
        if method == "infinite":
            y1 = y0 + eta - y0 * eta
            e1 = (0.5 * y0 + e_d * eta) / y1
            return max(0.0, _gllp(mu=mu, eta=eta, y0=y0, e_d=e_d, f=f, q=q, y1=y1, e1=e1))
        raise LinkConfigError(f"method {method!r} is unknown; use 'infinite' or 'vacuum+weak'")

    return _best_mu(at, method=method, nu=nu)


# --------------------------------------------------------------------------------------------
# Expected decoy statistics of a link, honest or attacked


@dataclass(frozen=True, kw_only=True)
class DecoyStatistics:
    """What Alice and Bob expect to see per intensity, and the bounds they draw from it.

    ``q_*`` are gains and ``e_*`` error rates of the signal ``mu``, weak decoy ``nu`` and
    vacuum; ``y1_lower``/``e1_upper`` the vacuum+weak bounds; ``key_rate_bound`` the GLLP
    secret bits per pulse those bounds certify (0 when they certify none).
    """

    mu: float
    nu: float
    q_mu: float
    q_nu: float
    q_0: float
    e_mu: float
    e_nu: float
    y1_lower: float
    e1_upper: float
    key_rate_bound: float


def _poisson(mean: float, n: NDArray[np.int64]) -> NDArray[np.float64]:
    logs = np.array([math.lgamma(k + 1.0) for k in n])
    return np.asarray(np.exp(-mean + n * math.log(mean) - logs), dtype=np.float64)


def decoy_statistics(
    *,
    eta: float,
    y0: float,
    e_d: float,
    mu: float,
    nu: float,
    f: float,
    detector_efficiency: float,
    attack: Literal["intercept-resend", "pns"] | None = None,
    q: float = 0.5,
) -> DecoyStatistics:
    """The expected decoy statistics of a link of transmittance ``eta`` and their bounds.

    The yield of an ``n``-photon pulse is ``Y_n = 1 - (1 - Y0)(1 - eta)^n`` and its error
    ``e_n Y_n = Y0 / 2 + e_d (Y_n - Y0)``; gains and errors are their Poisson mixtures
    (Ma et al. eqs. 1-10). ``attack``:

    - ``"intercept-resend"`` on every pulse: Bob's photons come in Eve's basis, wrong half
      the time, so the photon error becomes ``(e_d + 1/2) / 2``; the gains are unchanged.
    - ``"pns"`` (:class:`qkd.physics.eve.PhotonNumberSplitting`): Eve keeps one photon of
      every multi-photon pulse and sends the rest over a lossless channel to Bob's detectors
      (efficiency ``detector_efficiency``); she forwards single photons (fraction ``s``) or
      multi-photon pulses (fraction ``b``) only as far as needed for the signal gain to equal
      the honest one. The signal's gain and error rate (the QBER) are unchanged; the decoy's
      gain falls relative to the signal's, and the bound on ``Y1`` collapses.
    """
    n = np.arange(max(8, math.ceil(mu + 12.0 * math.sqrt(mu) + 12.0)) + 1, dtype=np.int64)

    def detect(t: float, photons: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.asarray(1.0 - (1.0 - y0) * (1.0 - t) ** photons, dtype=np.float64)

    honest = detect(eta, n)
    yields = honest
    error = e_d
    if attack == "intercept-resend":
        error = (e_d + 0.5) / 2.0
    elif attack == "pns":
        p_mu = _poisson(mu, n)
        target = float(np.sum(p_mu * honest))
        one = float(detect(detector_efficiency, np.array([1]))[0])
        multi = detect(detector_efficiency, np.maximum(n - 1, 0))
        is_multi = n >= 2

        def with_(s: float, b: float) -> NDArray[np.float64]:
            out = np.full(n.size, y0)
            out[1] = s * one + (1.0 - s) * y0
            return np.where(is_multi, b * multi + (1.0 - b) * y0, out)

        def gain_of(s: float, b: float) -> float:
            return float(np.sum(p_mu * with_(s, b)))

        low, high = gain_of(0.0, 0.0), gain_of(0.0, 1.0)
        if high >= target:
            s, b = 0.0, (target - low) / max(high - low, 1e-300)
        else:
            top = gain_of(1.0, 1.0)
            s, b = min(1.0, (target - high) / max(top - high, 1e-300)), 1.0
        yields = with_(s, min(1.0, max(0.0, b)))
    elif attack is not None:
        raise LinkConfigError(f"attack {attack!r} is unknown; use 'intercept-resend' or 'pns'")
    errors = 0.5 * y0 + error * (yields - y0)

    def mix(mean: float, values: NDArray[np.float64]) -> float:
        return float(np.sum(_poisson(mean, n) * values)) if mean > 0 else float(values[0])

    q_mu, q_nu, q_0 = mix(mu, yields), mix(nu, yields), float(yields[0])
    e_mu, e_nu = mix(mu, errors) / q_mu, mix(nu, errors) / q_nu
    y1, e1 = vacuum_weak_bounds(mu=mu, nu=nu, q_mu=q_mu, q_nu=q_nu, e_nu=e_nu, y0_for_yield=q_0)
    rate = q * (
        -q_mu * f * binary_entropy(e_mu) + y1 * mu * math.exp(-mu) * (1 - binary_entropy(e1))
    )
    return DecoyStatistics(
        mu=mu,
        nu=nu,
        q_mu=q_mu,
        q_nu=q_nu,
        q_0=q_0,
        e_mu=e_mu,
        e_nu=e_nu,
        y1_lower=y1,
        e1_upper=e1,
        key_rate_bound=max(0.0, rate) if y1 > 0 else 0.0,
    )
