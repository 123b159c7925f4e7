"""Quantum repeater chains: waiting time, Werner fidelity with memory dephasing, BBM92 key.

Hazmat: explicit parameters, no policy. Easy to misuse: a chain's figures are per delivered
end-to-end pair and per time slot; turning them into bits per second needs the slot length.

Theory of operation
-------------------
A chain of ``N`` elementary links (segments) joined by ``N - 1`` entanglement swaps, in the
protocol of DESIGN.md ("QKD networks"), which is the simplest of the schemes analysed by
Briegel, Dür, Cirac and Zoller (PRL 81, 5932 (1998)) and surveyed by Sangouard, Simon,
de Riedmatten and Gisin (Rev. Mod. Phys. 83, 33 (2011)):

- Time runs in slots of length ``tau``. In each slot every link that holds no pair attempts
  once and succeeds with probability ``P`` (independent of the others). A link that has
  succeeded keeps its pair in memory until all ``N`` hold one. Link ``i``'s success slot is
  therefore geometric, ``s_i ~ Geom(P)`` on ``{1, 2, ...}``, and the round ends at
  ``T = max_i s_i``.
- In slot ``T`` the ``N - 1`` swaps run, each succeeding with probability ``Q``. If any fails,
  every pair is discarded and all links start again in the next slot.

Waiting time. The expected maximum of ``N`` independent geometric variables is, by
inclusion-exclusion over ``P(T <= t) = (1 - (1 - P)^t)^N`` (Bernardes, Praxmeyer and van Loock,
PRA 83, 012323 (2011), eq. 5; also Shchukin, Schmidt and van Loock, PRA 100, 032322 (2019)):

    E_N = sum_{k=1..N} (-1)^(k+1) C(N, k) / (1 - (1 - P)^k),     E_1 = 1 / P,
    E_2 = (3 - 2P) / (P (2 - P)).

Rounds are independent and a round delivers with probability ``Q^(N - 1)`` regardless of how
long it took, so the number of rounds per delivered pair is ``Geom(Q^(N - 1))`` and (Wald)

    mean slots per delivered pair = E_N / Q^(N - 1).

Fidelity. Every elementary pair is a Werner state of fidelity ``F0``, ``rho = w |Phi+><Phi+| +
(1 - w) I/4`` with ``w = (4 F0 - 1) / 3``. A pair stored for time ``t`` in memories that dephase
(or depolarise) with time constant ``T2`` keeps ``w exp(-t / T2)``: one factor per pair, as
DESIGN.md fixes it (a model of the decay of the whole pair's coherence; per-qubit dephasing of
both halves would square it). In the successful round link ``i`` has waited
``t_i = (T - s_i) tau``. Swapping two Werner states with a Bell measurement gives a Werner state
whose ``w`` is the product of the two (Dür and Briegel, Rep. Prog. Phys. 70, 1381 (2007),
Sec. 3), so the end-to-end pair has

    w_end = w^N prod_i exp(-t_i / T2),     F = (1 + 3 w_end) / 4.

Because ``F`` is linear in ``w_end``, its mean over the chains has a closed form. With
``x = exp(-tau / T2)``, ``g_T = sum_{s=1..T} P (1 - P)^(s-1) x^(T-s)`` (the weight of all
``s_i <= T``) and ``h_T = x g_{T-1}`` (all ``s_i <= T - 1``),

    E[prod_i x^(T - s_i)] = sum_{T >= 1} (g_T^N - h_T^N),

and for ``N = 2`` it reduces to ``P / (2 - P) * (1 + 2 (1 - P) x / (1 - (1 - P) x))``, the mean
of ``x^|s_1 - s_2|``. The series is summed until its terms fall below double precision.

Key. BBM92 (Bennett, Brassard and Mermin, PRL 68, 557 (1992)) on a Werner state measured in
the Z and X bases has QBER ``e = 2 (1 - F) / 3`` in both; its asymptotic secret-key fraction
(Shor and Preskill, PRL 85, 441 (2000)) is ``max(0, 1 - 2 H2(e))``. ``F = 0.95`` gives 0.578;
the key vanishes near ``F = 0.835``.

Elementary links from loss. ``elementary_link_success`` gives P for a link of length
``L_0`` heralded in the middle by a two-photon Bell measurement (Barrett and Kok, PRA 71,
060310(R) (2005)): each memory emits a photon that travels ``L_0 / 2``, both must arrive and
be detected, and a linear-optics Bell measurement succeeds with probability 1/2:

    P = (1/2) (p_s eta_m eta_d)^2 10^(-alpha L_0 / 10),

with ``p_s`` the emission probability, ``eta_m`` the memory's read-out efficiency and
``eta_d`` the detectors'. ``key_per_slot`` turns a chain into secret bits per slot,
``sifting * BBM92(F) / mean_slots``, comparable with per-pulse rates and with PLOB on the same
axis (one slot is one use of each elementary channel).

Memory cutoff. With a cutoff ``t_c`` a stored pair may wait at most ``m = floor(t_c / tau)``
slots: a pair made in slot ``s`` is discarded at the start of slot ``s + m + 1`` if the round
has not ended, and its link attempts again in that slot (Rozpedek et al., PRA 99, 052330
(2019); Li, Coopmans, Emonts et al., npj Quantum Inf. 7, 160 (2021)). The round ends in the
first slot in which every link holds a pair of age ``<= m``; the ages it reports are those
pairs' storage times, so no pair is ever used older than the cutoff. ``m = 0`` asks all links
to succeed in the same slot: ``E = 1 / P^N``.

- Two links, closed form. After the first success of one link alone, the other has ``m``
  slots; if it fails in all of them both links attempt again, the start's situation, so the
  process regenerates. With ``q = 1 - P`` and ``r = 1 - q^2``,

      E_2(m) = (1 + 2 q (1 - q^m)) / (r - 2 P q^(m+1)),

  which is ``(3 - 2P) / (P (2 - P))`` as ``m -> inf`` and ``1 / P^2`` at ``m = 0``.
- Any N, exact recursion. Links are identical and independent until the round ends, so the
  chain's state is how many links are empty and how many hold a pair of each age
  ``0..m``: ``C(N + m + 1, N)`` states. In each slot the ages grow by one, the links that are
  empty or whose pair reaches ``m + 1`` attempt, and ``j`` of the ``k`` attempts succeed with
  the binomial probability. The round ends when no link is empty. The expected visits ``u``
  of the transient states solve ``(I - Q)^T u = e_start``; ``E_N(m) = sum u`` and the mean of
  ``prod_i x^(age_i)`` at the end is the visits times the probability of ending in each final
  state times its ``x^(sum of ages)`` (Kemeny and Snell, "Finite Markov Chains", ch. 3).
  ``mean_slots = E_N(m) / Q^(N - 1)`` and the fidelity as above.

Monte Carlo. ``simulate_chains`` draws, for ``M`` delivered pairs at once, the number of rounds
each needed (``Geom(Q^(N - 1))``), then one ``(rounds, N)`` array of geometric success slots,
takes row maxima, sums them per pair with ``np.add.reduceat``, and reads the storage times of
each pair's last (successful) round from the same array. No Python loop runs per chain or per
slot; chains are processed in batches only to bound memory. With a cutoff each link's
successes are a renewal sequence (a window ``[s, s + m]`` of usable storage, then ``m`` plus a
geometric wait to the next success), and the round ends at the first slot that one window of
every link covers: an ``(rounds, N)`` array of current windows is advanced, all rounds at once,
by moving every link whose window ends before the latest start (an interval-intersection
sweep). The loop runs over windows, never over chains or slots.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qkd._errors import QKDError
from qkd.physics.rates import binary_entropy
from qkd.randomness import RngLike, physics_rng

__all__ = [
    "ChainParameters",
    "ChainResult",
    "RepeaterConfigError",
    "bbm92_key_fraction",
    "cutoff_round",
    "elementary_link_success",
    "expected_rounds_slots",
    "expected_slots",
    "key_per_slot",
    "mean_fidelity",
    "mean_storage_factor",
    "simulate_chains",
    "stored_fidelity",
    "two_link_cutoff_slots",
    "werner_fidelity",
    "werner_parameter",
]

# Upper bound on the number of geometric draws held in memory at once (rows x segments).
_BATCH_DRAWS = 1 << 22
# A run that needs more geometric draws than this in all is refused: it would take minutes.
_MAX_DRAWS = 1 << 32
# The exact recursion with a cutoff: its lumped states, and the dense solve without scipy.
_MAX_CUTOFF_STATES = 250_000
_MAX_DENSE_STATES = 3_000
_MAX_CUTOFF_SLOTS = 10_000_000
# Rounds stepped at once by the cutoff Monte Carlo (rows of the (rounds, N) age array).
_CUTOFF_BATCH_ROUNDS = 1 << 16


class RepeaterConfigError(QKDError, ValueError):
    """A repeater chain parameter is out of range."""


@dataclass(frozen=True, kw_only=True)
class ChainParameters:
    """One repeater chain: ``segments`` links, each succeeding with ``link_success`` per slot.

    ``swap_success`` is each swap's probability, ``fidelity`` each elementary pair's Werner
    fidelity. ``t2_s`` (memory time constant) needs ``slot_s`` (slot length); without ``t2_s``
    memories are perfect.

    >>> ChainParameters(segments=2, link_success=0.1).mean_slots  # doctest: +ELLIPSIS
    14.736...
    """

    segments: int
    link_success: float
    swap_success: float = 1.0
    fidelity: float = 1.0
    t2_s: float | None = None
    slot_s: float | None = None
    cutoff_s: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.segments, bool) or not isinstance(self.segments, int):
            raise RepeaterConfigError("segments must be a whole number >= 1")
        if self.segments < 1:
            raise RepeaterConfigError(f"segments is {self.segments}; give at least 1")
        for name in ("link_success", "swap_success"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 < value <= 1.0):
                raise RepeaterConfigError(f"{name} is {value}; give a probability in (0, 1]")
        if not (math.isfinite(self.fidelity) and 0.25 <= self.fidelity <= 1.0):
            raise RepeaterConfigError(
                f"fidelity is {self.fidelity}; a Werner fidelity lies in [0.25, 1]"
            )
        if self.t2_s is not None:
            if self.slot_s is None:
                raise RepeaterConfigError("t2_s needs slot_s, the length of one attempt slot")
            if not (math.isfinite(self.t2_s) and self.t2_s > 0):
                raise RepeaterConfigError(f"t2_s is {self.t2_s}; give a time > 0 s")
        if self.slot_s is not None and not (math.isfinite(self.slot_s) and self.slot_s > 0):
            raise RepeaterConfigError(f"slot_s is {self.slot_s}; give a time > 0 s")
        if self.cutoff_s is not None:
            if self.slot_s is None:
                raise RepeaterConfigError("cutoff_s needs slot_s, the length of one attempt slot")
            if not (math.isfinite(self.cutoff_s) and self.cutoff_s >= 0):
                raise RepeaterConfigError(f"cutoff_s is {self.cutoff_s}; give a time >= 0 s")
            if self.cutoff_s / self.slot_s > _MAX_CUTOFF_SLOTS:
                raise RepeaterConfigError(
                    f"a cutoff of {self.cutoff_s / self.slot_s:.3g} slots is longer than "
                    f"{_MAX_CUTOFF_SLOTS}; leave it out (no cutoff) instead"
                )

    @property
    def cutoff_slots(self) -> int | None:
        """``m``: the most slots a pair may wait, or None without a cutoff."""
        if self.cutoff_s is None or self.slot_s is None:
            return None
        return math.floor(self.cutoff_s / self.slot_s * (1.0 + 1e-12))

    @property
    def mean_slots(self) -> float:
        """Slots per delivered end-to-end pair, ``E_N / Q^(N - 1)`` (closed form, or the exact
        recursion with a cutoff)."""
        m = self.cutoff_slots
        if m is None:
            return expected_slots(self.segments, self.link_success, self.swap_success)
        rounds, _ = cutoff_round(self.segments, self.link_success, m, self.storage_decay)
        return rounds / self.swap_success ** (self.segments - 1)

    @property
    def storage_decay(self) -> float:
        """``x = exp(-tau / T2)``, the factor one slot of storage applies to ``w``; 1 without T2."""
        if self.t2_s is None or self.slot_s is None:
            return 1.0
        return math.exp(-self.slot_s / self.t2_s)

    @property
    def mean_fidelity(self) -> float:
        """Closed-form mean end-to-end fidelity over delivered pairs."""
        return mean_fidelity(self)


@dataclass(frozen=True, kw_only=True)
class ChainResult:
    """Monte Carlo figures over ``chains`` delivered end-to-end pairs."""

    parameters: ChainParameters
    chains: int
    mean_slots: float
    stderr_slots: float
    mean_fidelity: float
    stderr_fidelity: float

    @property
    def secret_key_fraction(self) -> float:
        """BBM92 key fraction of the mean fidelity."""
        return bbm92_key_fraction(self.mean_fidelity)


def werner_parameter(fidelity: float) -> float:
    """``w = (4 F - 1) / 3`` of a Werner state of fidelity ``F``."""
    return (4.0 * fidelity - 1.0) / 3.0


def werner_fidelity(w: float) -> float:
    """``F = (1 + 3 w) / 4``, the inverse of :func:`werner_parameter`."""
    return (1.0 + 3.0 * w) / 4.0


def stored_fidelity(fidelity: float, storage_s: float, t2_s: float) -> float:
    """Fidelity of a Werner pair of fidelity ``fidelity`` after ``storage_s`` in memory.

    >>> round(stored_fidelity(1.0, 1.0, 1.0), 4)
    0.5259
    """
    return werner_fidelity(werner_parameter(fidelity) * math.exp(-storage_s / t2_s))


def bbm92_key_fraction(fidelity: float) -> float:
    """Asymptotic BBM92 key fraction ``max(0, 1 - 2 H2(e))`` with ``e = 2 (1 - F) / 3``.

    >>> round(bbm92_key_fraction(0.95), 3)
    0.578
    """
    e = 2.0 * (1.0 - fidelity) / 3.0
    return max(0.0, 1.0 - 2.0 * binary_entropy(e))


def expected_rounds_slots(segments: int, link_success: float) -> float:
    """``E_N``: expected maximum of ``segments`` independent geometric waiting times (slots)."""
    q = 1.0 - link_success
    if q == 0.0:
        return 1.0
    # The alternating sum loses precision for large N and small P (terms of size C(N, N/2)/P
    # cancel); the tail sum sum_{t >= 0} [1 - (1 - q^t)^N] is exact and converges like q^t.
    if segments <= 20:
        return math.fsum(
            (-1) ** (k + 1) * math.comb(segments, k) / (1.0 - q**k) for k in range(1, segments + 1)
        )
    t = np.arange(0, _tail_length(q), dtype=np.float64)
    return float(np.sum(-np.expm1(segments * np.log1p(-(q ** t[1:])))) + 1.0)


def _tail_length(q: float) -> int:
    # Enough terms that q^t < 1e-18 (N q^t bounds a term), capped against q extremely near 1.
    return min(math.ceil(math.log(1e-18) / math.log(q)) + 2, 50_000_000)


def expected_slots(segments: int, link_success: float, swap_success: float = 1.0) -> float:
    """Closed-form slots per delivered end-to-end pair: ``E_N / Q^(N - 1)``.

    >>> round(expected_slots(2, 0.5), 4)  # (3 - 2P) / (P (2 - P))
    2.6667
    """
    return expected_rounds_slots(segments, link_success) / swap_success ** (segments - 1)


def mean_storage_factor(segments: int, link_success: float, decay: float) -> float:
    """``E[prod_i x^(T - s_i)]`` over one round, for per-slot decay ``x`` (closed-form series)."""
    if decay == 1.0 or segments == 1:
        return 1.0
    p, q, x, n = link_success, 1.0 - link_success, decay, segments
    if q == 0.0:
        return 1.0
    total, g = 0.0, 0.0
    t_max = _tail_length(q) + 1
    for t in range(1, t_max + 1):
        h = x * g
        g = h + p * q ** (t - 1)
        term = g**n - h**n
        total += term
        if t > 1 and term < 1e-17 * total:
            break
    return total


def mean_fidelity(parameters: ChainParameters) -> float:
    """Mean end-to-end Werner fidelity over delivered pairs (closed form, or the exact
    recursion with a cutoff)."""
    w = werner_parameter(parameters.fidelity) ** parameters.segments
    m = parameters.cutoff_slots
    if m is None:
        factor = mean_storage_factor(
            parameters.segments, parameters.link_success, parameters.storage_decay
        )
    else:
        _, factor = cutoff_round(
            parameters.segments, parameters.link_success, m, parameters.storage_decay
        )
    return werner_fidelity(w * factor)


def two_link_cutoff_slots(link_success: float, cutoff_slots: int) -> float:
    """``E_2(m)``: mean slots of one round of two links with a cutoff of ``m`` slots.

    >>> round(two_link_cutoff_slots(0.5, 0), 6)  # 1 / P^2
    4.0
    """
    p, q, m = link_success, 1.0 - link_success, cutoff_slots
    return (1.0 + 2.0 * q * (1.0 - q**m)) / (1.0 - q * q - 2.0 * p * q ** (m + 1))


@functools.lru_cache(maxsize=64)
def cutoff_round(
    segments: int, link_success: float, cutoff_slots: int, decay: float = 1.0
) -> tuple[float, float]:
    """``(E_N(m), E[prod_i x^(age_i)])`` of one round with a cutoff: the exact recursion over
    the chain's lumped states (module docstring). Raises when the states are too many."""
    n, p, m = segments, link_success, cutoff_slots
    parts = m + 2
    count = math.comb(n + parts - 1, n)
    if count > _MAX_CUTOFF_STATES:
        raise RepeaterConfigError(
            f"the exact recursion for {n} segments and a cutoff of {m} slots has {count:,} "
            f"states (more than {_MAX_CUTOFF_STATES:,}); use the Monte Carlo"
        )
    # States: (empty, holding age 0, ..., holding age m) counts summing to n.
    states = [
        _composition(bars, n, parts)
        for bars in itertools.combinations(range(n + parts - 1), parts - 1)
    ]
    transient = [c for c in states if c[0] > 0]
    index = {c: i for i, c in enumerate(transient)}
    q = 1.0 - p
    # pmf[k][j]: j successes among k attempts.
    pmf = [[math.comb(k, j) * p**j * q ** (k - j) for j in range(k + 1)] for k in range(n + 1)]
    powers = [decay**a for a in range(n * (m + 1) + 1)]
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    ending = np.zeros(len(transient))
    for i, c in enumerate(transient):
        attempts = c[0] + c[-1]
        shifted = c[1:-1]
        if attempts:
            ending[i] = (
                pmf[attempts][attempts] * powers[sum(a * k for a, k in enumerate(shifted, 1))]
            )
        row = pmf[attempts]
        for j in range(attempts):
            rows.append(i)
            cols.append(index[(attempts - j, j, *shifted)])
            vals.append(row[j])
    start = index[(n,) + (0,) * (parts - 1)]
    visits = _solve_visits(len(transient), rows, cols, vals, start)
    return float(visits.sum()), float(visits @ ending)


def _composition(bars: tuple[int, ...], n: int, parts: int) -> tuple[int, ...]:
    edges = (-1, *bars, n + parts - 1)
    return tuple(edges[k + 1] - edges[k] - 1 for k in range(parts))


def _solve_visits(
    size: int, rows: list[int], cols: list[int], vals: list[float], start: int
) -> NDArray[np.float64]:
    """``u`` with ``(I - Q)^T u = e_start``: dense without scipy, else sparse (a direct solve
    for small systems, LGMRES with a checked residual for large ones)."""
    rhs = np.zeros(size)
    rhs[start] = 1.0
    try:
        from scipy.sparse import coo_matrix, identity
        from scipy.sparse.linalg import spsolve
    except ImportError:
        if size > _MAX_DENSE_STATES:
            raise RepeaterConfigError(
                f"the exact recursion needs scipy for {size:,} states; install the network extra"
            ) from None
        matrix = np.eye(size)
        np.subtract.at(matrix, (cols, rows), vals)
        return np.asarray(np.linalg.solve(matrix, rhs), dtype=np.float64)
    matrix = (
        identity(size, format="csr") - coo_matrix((vals, (cols, rows)), shape=(size, size))
    ).tocsr()
    if size > _MAX_DENSE_STATES:
        # A Krylov solve takes about a second where a sparse LU takes tens (fill-in); its
        # residual is checked, and the direct solve is the fallback.
        from scipy.sparse.linalg import lgmres

        try:
            x, info = lgmres(matrix, rhs, rtol=1e-13, atol=0.0, maxiter=5000)
        except TypeError:  # scipy < 1.12 calls it tol
            x, info = lgmres(matrix, rhs, tol=1e-13, atol=0.0, maxiter=5000)
        if info == 0 and np.linalg.norm(matrix @ x - rhs) < 1e-10:
            return np.asarray(x, dtype=np.float64)
    return np.asarray(spsolve(matrix.tocsc(), rhs), dtype=np.float64)


def elementary_link_success(
    segment_km: float,
    *,
    attenuation_db_per_km: float = 0.2,
    memory_efficiency: float = 1.0,
    detector_efficiency: float = 1.0,
    emission_probability: float = 1.0,
) -> float:
    """P of one attempt on an elementary link heralded in the middle (Barrett-Kok).

    >>> round(elementary_link_success(0.0), 3)
    0.5
    """
    for name, value in (
        ("memory_efficiency", memory_efficiency),
        ("detector_efficiency", detector_efficiency),
        ("emission_probability", emission_probability),
    ):
        if not (math.isfinite(value) and 0.0 < value <= 1.0):
            raise RepeaterConfigError(f"{name} is {value}; give a probability in (0, 1]")
    if not (math.isfinite(segment_km) and segment_km >= 0 and attenuation_db_per_km >= 0):
        raise RepeaterConfigError("segment_km and attenuation_db_per_km must be >= 0")
    efficiency = emission_probability * memory_efficiency * detector_efficiency
    return float(0.5 * efficiency**2 * 10.0 ** (-attenuation_db_per_km * segment_km / 10.0))


def key_per_slot(parameters: ChainParameters, *, sifting: float = 0.5) -> float:
    """Secret bits per slot of a chain: ``sifting * BBM92(mean F) / mean_slots`` (closed forms)."""
    fraction = bbm92_key_fraction(parameters.mean_fidelity)
    return sifting * fraction / parameters.mean_slots


def simulate_chains(
    parameters: ChainParameters, chains: int = 10_000, rng: RngLike = None
) -> ChainResult:
    """Monte Carlo over ``chains`` delivered end-to-end pairs, vectorised over the chains.

    >>> r = simulate_chains(ChainParameters(segments=2, link_success=0.5), 2000, rng=1)
    >>> abs(r.mean_slots - 8 / 3) < 5 * r.stderr_slots
    True
    """
    if isinstance(chains, bool) or not isinstance(chains, int) or chains < 2:
        raise RepeaterConfigError(f"chains is {chains!r}; give a whole number >= 2")
    generator = physics_rng(rng)
    n, p = parameters.segments, parameters.link_success
    deliver = parameters.swap_success ** (n - 1)
    expected_draws = chains * n / deliver
    if expected_draws > _MAX_DRAWS:
        raise RepeaterConfigError(
            f"{chains} chains need about {expected_draws:.2g} link attempts to simulate; "
            "use fewer chains or a larger swap_success"
        )
    batch = max(1, min(chains, int(_BATCH_DRAWS * deliver / n)))
    slots = np.empty(chains, dtype=np.float64)
    log_w = np.empty(chains, dtype=np.float64)
    log_decay = math.log(parameters.storage_decay)
    cutoff = parameters.cutoff_slots
    if cutoff is not None:
        batch = max(1, min(chains, int(_CUTOFF_BATCH_ROUNDS * deliver)))
    for start in range(0, chains, batch):
        stop = min(start + batch, chains)
        if cutoff is None:
            slots[start:stop], log_w[start:stop] = _simulate_batch(
                generator,
                stop - start,
                segments=n,
                link_success=p,
                deliver=deliver,
                log_decay=log_decay,
            )
        else:
            slots[start:stop], log_w[start:stop] = _simulate_cutoff_batch(
                generator,
                stop - start,
                segments=n,
                link_success=p,
                deliver=deliver,
                log_decay=log_decay,
                cutoff_slots=cutoff,
            )
    w0 = werner_parameter(parameters.fidelity) ** n
    fidelity = (1.0 + 3.0 * w0 * np.exp(log_w)) / 4.0
    return ChainResult(
        parameters=parameters,
        chains=chains,
        mean_slots=float(slots.mean()),
        stderr_slots=float(slots.std(ddof=1) / math.sqrt(chains)),
        mean_fidelity=float(fidelity.mean()),
        stderr_fidelity=float(fidelity.std(ddof=1) / math.sqrt(chains)),
    )


def _simulate_batch(
    rng: np.random.Generator,
    count: int,
    *,
    segments: int,
    link_success: float,
    deliver: float,
    log_decay: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Slots per delivered pair, and ``sum_i log x^(T - s_i)`` of each final round."""
    rounds = rng.geometric(deliver, size=count) if deliver < 1.0 else np.ones(count, np.int64)
    success = rng.geometric(link_success, size=(int(rounds.sum()), segments))
    last = success.max(axis=1)
    starts = np.concatenate(([0], np.cumsum(rounds)[:-1]))
    slots = np.add.reduceat(last, starts).astype(np.float64)
    final = np.cumsum(rounds) - 1
    waited = (last[final, None] - success[final]).sum(axis=1)
    return slots, waited.astype(np.float64) * log_decay


def _simulate_cutoff_batch(
    rng: np.random.Generator,
    count: int,
    *,
    segments: int,
    link_success: float,
    deliver: float,
    log_decay: float,
    cutoff_slots: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """As :func:`_simulate_batch`, with a cutoff (see the module docstring).

    Until its round ends each link's successes form a renewal sequence,
    ``s_1 = G_1`` and ``s_(k+1) = s_k + m + G_(k+1)`` (the pair made at ``s_k`` is usable up to
    ``s_k + m``; the link attempts again from ``s_k + m + 1``). The round ends at the first slot
    covered by one usable window ``[s, s + m]`` of every link: with each link at its current
    window, the candidate is the latest start; a link whose window ends before it moves to its
    next window; when none does, the candidate is the end. Every step is one numpy operation on
    all unfinished rounds, and there are as many steps as windows a link goes through.
    """
    m = cutoff_slots
    rounds = rng.geometric(deliver, size=count) if deliver < 1.0 else np.ones(count, np.int64)
    total = int(rounds.sum())
    starts = rng.geometric(link_success, size=(total, segments)).astype(np.int64)
    alive = np.arange(total)
    length = np.zeros(total, dtype=np.int64)
    waited = np.zeros(total, dtype=np.int64)
    while alive.size:
        candidate = starts.max(axis=1)
        behind = starts + m < candidate[:, None]
        done = ~behind.any(axis=1)
        if done.any():
            finished = alive[done]
            length[finished] = candidate[done]
            waited[finished] = (candidate[done, None] - starts[done]).sum(axis=1)
            keep = ~done
            starts, behind, alive = starts[keep], behind[keep], alive[keep]
        moved = int(np.count_nonzero(behind))
        if moved:
            starts[behind] += m + rng.geometric(link_success, size=moved)
    first = np.concatenate(([0], np.cumsum(rounds)[:-1]))
    slots = np.add.reduceat(length, first).astype(np.float64)
    final = np.cumsum(rounds) - 1
    return slots, waited[final].astype(np.float64) * log_decay
