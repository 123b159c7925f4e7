"""Vacuum + weak decoy-state bounds on the single-photon yield and error rate.

Theory of operation
-------------------
With a Poisson source the gain and error of intensity ``k`` are mixtures over the photon
number ``n`` of the yields ``Y_n`` and errors ``e_n``:

    Q_k = sum_n Y_n exp(-k) k^n / n!,       E_k Q_k = sum_n e_n Y_n exp(-k) k^n / n!

Eve can make ``Y_n`` depend on ``n`` (a photon-number-splitting attack), but not on the
intensity a pulse was drawn from. With a signal ``mu``, a weak decoy ``nu < mu`` and the vacuum,
Ma, Qi, Zhao and Lo (PRA 72, 012326 (2005), eqs. 34 and 37) bound the single-photon yield and
error rate from below and above:

    Y1 >= Y1_L = mu / (mu nu - nu^2) * (Q_nu e^nu - Q_mu e^mu nu^2/mu^2 - (mu^2 - nu^2)/mu^2 Y0)
    e1 <= e1_U = (E_nu Q_nu e^nu - e0 Y0) / (Y1_L nu),        e0 = 1/2

A PNS attack lowers ``Y1`` relative to the multi-photon yields, so ``Q_nu`` falls relative to
``Q_mu`` and ``Y1_L`` collapses: the attack shows up here.

Finite statistics. For a run of finite length each observed count ``x`` is replaced by the
end of its confidence interval that makes the bound worse: ``Q_nu`` and ``Y0`` (in ``e1``) by
their lower ends, ``Q_mu``, ``Y0`` (in ``Y1``) and ``E_nu Q_nu`` by their upper ends. The
interval is the inverted multiplicative Chernoff bound with ``beta = ln(1/eps)``,

    x_upper = x + beta + sqrt(2 beta x + beta^2),     x_lower = max(0, x - sqrt(2 beta x))

(Chernoff bounds as used in finite-key decoy analyses, e.g. Curty et al., Nat. Commun. 5,
3732 (2014); Lim et al., PRA 89, 022307 (2014) use the looser Hoeffding form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "DecoyBounds",
    "DecoyCounts",
    "bound_single_photon",
    "chernoff_lower",
    "chernoff_upper",
    "vacuum_weak_bounds",
]


def chernoff_upper(count: float, epsilon: float) -> float:
    """Upper confidence bound, with failure probability ``epsilon``, on a Poisson-like count."""
    beta = math.log(1.0 / epsilon)
    return count + beta + math.sqrt(2.0 * beta * count + beta * beta)


def chernoff_lower(count: float, epsilon: float) -> float:
    """Lower confidence bound, with failure probability ``epsilon``, on a count."""
    beta = math.log(1.0 / epsilon)
    return max(0.0, count - math.sqrt(2.0 * beta * count))


def vacuum_weak_bounds(
    *,
    mu: float,
    nu: float,
    q_mu: float,
    q_nu: float,
    e_nu: float,
    y0_for_yield: float,
    y0_for_error: float | None = None,
) -> tuple[float, float]:
    """``(Y1_L, e1_U)`` from the gains, the decoy error rate and the vacuum yield.

    ``y0_for_yield`` enters ``Y1_L`` (pass an upper bound in finite mode), ``y0_for_error``
    enters ``e1_U`` (pass a lower bound; defaults to ``y0_for_yield``). ``e1_U`` is clipped to
    ``[0, 1/2]``; when ``Y1_L <= 0`` there is no single-photon bound and ``e1_U = 1/2``.
    """
    y0_e = y0_for_yield if y0_for_error is None else y0_for_error
    y1 = (
        mu
        / (mu * nu - nu * nu)
        * (
            q_nu * math.exp(nu)
            - q_mu * math.exp(mu) * nu * nu / (mu * mu)
            - (mu * mu - nu * nu) / (mu * mu) * y0_for_yield
        )
    )
    if y1 <= 0.0:
        return 0.0, 0.5
    e1 = (e_nu * q_nu * math.exp(nu) - 0.5 * y0_e) / (y1 * nu)
    return y1, min(0.5, max(0.0, e1))


@dataclass(frozen=True, kw_only=True)
class DecoyCounts:
    """What Alice and Bob announce per intensity: pulses sent, detections, sifted bits, errors.

    The signal's error count is not needed (the signal's bits are the key).
    """

    mu: float
    nu: float
    sent: tuple[int, int, int]
    detections: tuple[int, int, int]
    decoy_sifted: int
    decoy_errors: int


@dataclass(frozen=True, kw_only=True)
class DecoyBounds:
    """Single-photon and vacuum bounds for the signal intensity."""

    y0: float
    y0_lower: float
    y1_lower: float
    e1_upper: float
    q_mu_upper: float
    q_nu: float
    e_nu: float

    def fraction_single(self, mu: float) -> float:
        """``Q1_L / Q_mu_U``: lower bound on the single-photon share of signal detections."""
        if self.q_mu_upper <= 0:
            return 0.0
        return min(1.0, self.y1_lower * mu * math.exp(-mu) / self.q_mu_upper)

    def fraction_vacuum(self, mu: float) -> float:
        """``Q0_L / Q_mu_U``: lower bound on the vacuum share of signal detections."""
        if self.q_mu_upper <= 0:
            return 0.0
        return min(1.0, self.y0_lower * math.exp(-mu) / self.q_mu_upper)


def bound_single_photon(counts: DecoyCounts, epsilon: float | None) -> DecoyBounds:
    """Decoy bounds from announced counts; ``epsilon=None`` gives the asymptotic point values.

    Example::

        b = bound_single_photon(counts, epsilon=1e-10)
        b.y1_lower, b.e1_upper
    """
    n_mu, n_nu, n_0 = counts.detections
    s_mu, s_nu, s_0 = counts.sent
    if min(s_mu, s_nu, s_0) <= 0 or counts.decoy_sifted <= 0:
        return DecoyBounds(
            y0=0.0, y0_lower=0.0, y1_lower=0.0, e1_upper=0.5, q_mu_upper=0.0, q_nu=0.0, e_nu=0.5
        )
    y0 = n_0 / s_0
    q_nu = n_nu / s_nu
    e_nu = counts.decoy_errors / counts.decoy_sifted
    if epsilon is None:
        y1, e1 = vacuum_weak_bounds(
            mu=counts.mu, nu=counts.nu, q_mu=n_mu / s_mu, q_nu=q_nu, e_nu=e_nu, y0_for_yield=y0
        )
        return DecoyBounds(
            y0=y0,
            y0_lower=y0,
            y1_lower=y1,
            e1_upper=e1,
            q_mu_upper=n_mu / s_mu,
            q_nu=q_nu,
            e_nu=e_nu,
        )
    q_mu_u = chernoff_upper(n_mu, epsilon) / s_mu
    q_nu_l = chernoff_lower(n_nu, epsilon) / s_nu
    y0_u = chernoff_upper(n_0, epsilon) / s_0
    y0_l = chernoff_lower(n_0, epsilon) / s_0
    # E_nu Q_nu counts decoy errors among all decoy detections: scale the sifted error count
    # up by the detections/sifted ratio, which is public.
    err_u = chernoff_upper(counts.decoy_errors, epsilon) / counts.decoy_sifted
    y1, e1 = vacuum_weak_bounds(
        mu=counts.mu,
        nu=counts.nu,
        q_mu=q_mu_u,
        q_nu=q_nu_l,
        e_nu=min(1.0, err_u * q_nu / q_nu_l) if q_nu_l > 0 else 1.0,
        y0_for_yield=y0_u,
        y0_for_error=y0_l,
    )
    return DecoyBounds(
        y0=y0, y0_lower=y0_l, y1_lower=y1, e1_upper=e1, q_mu_upper=q_mu_u, q_nu=q_nu, e_nu=e_nu
    )
