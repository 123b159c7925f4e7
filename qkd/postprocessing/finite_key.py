"""The length of the secret key: finite-key bound (Lim et al. 2014) or the asymptotic GLLP rate.

Theory of operation
-------------------
Finite key (Lim, Curty, Walenta, Xu and Zbinden, PRA 89, 022307 (2014), eq. 1): a key of

    l = floor( s0 + s1 (1 - H2(phi)) - leak_EC - 6 log2(21 / eps_sec) - log2(2 / eps_cor) )

bits is ``eps_sec``-secret and ``eps_cor``-correct, where ``s0`` and ``s1`` are lower bounds on
the raw-key bits that came from vacuum and single-photon pulses, ``phi`` an upper bound on the
phase-error rate of the single-photon bits, and ``leak_EC`` the bits disclosed by error
correction (measured, not modelled). Here the raw key is the sifted signal bits of both bases
(symmetric BB84): ``s0 = n Q0_L / Q_mu_U`` and ``s1 = n Q1_L / Q_mu_U`` from the decoy bounds
(:mod:`qkd.physics.decoy`), and ``phi = e1_U + mu`` where ``e1_U`` bounds the single-photon
error rate measured on the decoy pulses (by basis symmetry, the bit-error rate in one basis is
the phase-error rate in the other) and ``mu`` is the sampling deviation of
:mod:`qkd.postprocessing.estimation` between the decoy's single-photon bits and the key's. For
an exact single-photon source (and for BBM92, every bit of which comes from a pair) ``s1 = n``,
``s0 = 0`` and ``phi`` is the sampled QBER's upper bound.

Asymptotic (GLLP, Gottesman, Lo, Lütkenhaus and Preskill, QIC 4, 325 (2004)):
``l = n (Q1 / Q_mu) (1 - H2(e1)) - leak_EC`` with the point values of the decoy bounds (for a
single-photon source or BBM92, ``l = n (1 - H2(E)) - leak_EC``), so that a long run matches
:func:`qkd.physics.rates.vacuum_weak_rate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qkd.physics.decoy import DecoyBounds
from qkd.physics.rates import binary_entropy
from qkd.postprocessing.estimation import sampling_deviation

__all__ = ["KeyLength", "decoy_key_length", "single_photon_key_length"]


@dataclass(frozen=True, kw_only=True)
class KeyLength:
    """The secret length (may be <= 0) and the terms it was computed from."""

    length: int
    s0: float
    s1: float
    phase_error: float
    leaked_bits: int
    security_cost: float


def _security_cost(epsilon_sec: float, epsilon_cor: float) -> float:
    return 6.0 * math.log2(21.0 / epsilon_sec) + math.log2(2.0 / epsilon_cor)


def decoy_key_length(
    *,
    raw_bits: int,
    mu: float,
    nu: float,
    bounds: DecoyBounds,
    decoy_sifted: int,
    leaked_bits: int,
    epsilon_sec: float,
    epsilon_cor: float,
    asymptotic: bool,
) -> KeyLength:
    """The secret length of decoy-state BB84 from ``raw_bits`` sifted signal bits."""
    s1 = raw_bits * bounds.fraction_single(mu)
    if asymptotic:
        length = s1 * (1.0 - binary_entropy(bounds.e1_upper)) - leaked_bits
        return KeyLength(
            length=math.floor(length),
            s0=0.0,
            s1=s1,
            phase_error=bounds.e1_upper,
            leaked_bits=leaked_bits,
            security_cost=0.0,
        )
    s0 = raw_bits * bounds.fraction_vacuum(mu)
    # Single-photon bits among the decoy's sifted bits, on which e1_U was measured.
    q_nu = bounds.q_nu
    test_single = decoy_sifted * bounds.y1_lower * nu * math.exp(-nu) / q_nu if q_nu > 0 else 0.0
    phi = min(0.5, bounds.e1_upper + sampling_deviation(s1, test_single, epsilon_sec))
    cost = _security_cost(epsilon_sec, epsilon_cor)
    length = s0 + s1 * (1.0 - binary_entropy(phi)) - leaked_bits - cost
    return KeyLength(
        length=math.floor(length),
        s0=s0,
        s1=s1,
        phase_error=phi,
        leaked_bits=leaked_bits,
        security_cost=cost,
    )


def single_photon_key_length(
    *,
    raw_bits: int,
    phase_error: float,
    leaked_bits: int,
    epsilon_sec: float,
    epsilon_cor: float,
    asymptotic: bool,
) -> KeyLength:
    """Secret length when every raw-key bit is a single-photon (or single-pair) bit.

    ``phase_error`` is the point QBER (asymptotic) or its sampled upper bound (finite).
    """
    cost = 0.0 if asymptotic else _security_cost(epsilon_sec, epsilon_cor)
    length = raw_bits * (1.0 - binary_entropy(min(0.5, phase_error))) - leaked_bits - cost
    return KeyLength(
        length=math.floor(length),
        s0=0.0,
        s1=float(raw_bits),
        phase_error=phase_error,
        leaked_bits=leaked_bits,
        security_cost=cost,
    )
