"""The quantum stage: pulses through the link to Bob's clicks, for three protocols.

Theory of operation
-------------------
Protocols. ``bb84-decoy`` is BB84 with a weak-coherent source at three intensities (signal, weak
decoy, vacuum; see :mod:`qkd.physics.link`); ``bb84-single-photon`` is the ideal BB84 of an
exact single-photon source; ``bbm92`` is the entanglement-based protocol of Bennett, Brassard
and Mermin (PRL 68, 557 (1992)) with a pair source in the middle of the link, a fraction of
whose coincidences is spent on the CHSH test of Ekert (PRL 67, 661 (1991)).

Per-pulse physics (prepare and measure). A pulse of ``n`` photons reaches Bob's detectors as
``n'`` photons (``n' = n`` without Eve), each of which arrives with probability ``t`` and then
lands in the detector of Alice's bit value with probability ``p_c`` (``1 - e_d`` when Bob
measures in the basis the photons were prepared in, ``1/2`` otherwise). Each detector also
fires on a dark count with probability ``p_d``. So, with ``A``/``B`` the probabilities that
the right/wrong detector stays silent and ``C`` that both do,

    A = (1 - p_d)(1 - t p_c)^n',   B = (1 - p_d)(1 - t (1 - p_c))^n',   C = (1 - p_d)^2 (1 - t)^n'
    P(click) = 1 - C,              P(error | click) = (A - C + (1 - A - B + C) / 2) / (1 - C)

where the double clicks (``1 - A - B + C``) are given a random bit. Averaged over a Poisson
``n`` these give the ``Q_mu`` and ``E_mu`` of :mod:`qkd.physics.rates` up to terms of order
``(eta mu)^2 e_d``.

Two samplers, one model. The *event* sampler (the default) never materialises a pulse: it
splits the pulses into classes (intensity, photon number, Eve's action) by multinomial
draws, draws the number of clicks of each class from a binomial, and only then draws, per
click, Bob's basis and whether the bit is wrong. At 50 km fewer than one pulse in a thousand
clicks, so this costs time in proportion to the clicks, not the pulses. The *pulse* sampler
follows every pulse through the same physics, photon by photon, with whole-array operations;
it is the reference the event sampler is tested against.

Randomness. Alice's bits and bases are drawn, for the pulses that matter, from the key
randomness (:class:`qkd.randomness.KeyRandomness`, the OS CSPRNG unless seeded); everything
else from the physics ``rng``. Events are shuffled so that their order carries no trace of
the class they were drawn from.

BBM92. ``n`` pairs per pulse are Poisson distributed (mean ``mu``); each photon of a pair
reaches its side's detectors with that side's transmittance. A coincidence made by exactly
one pair, with no other photon detected, carries the pair's correlation (error ``e_d`` in
matched bases, CHSH correlation ``(1 - 2 e_d) cos 2(a - b)``); any other coincidence
(multi-pair, dark count) is uncorrelated (error 1/2, correlation 0). The test angles are
``a in {0, pi/4}``, ``b in {pi/8, 3 pi/8}``, so that ``S = 2 sqrt(2) (1 - 2 e_d)`` for clean
pairs; an intercept-resend Eve who measured Bob's photon at angle ``e`` turns the correlation
into ``(1 - 2 e_d) cos 2(a - e) cos 2(b - e)``, and ``S`` falls to ``sqrt(2)`` at most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from qkd._errors import QKDError
from qkd.physics.eve import BeamSplitting, Eavesdropper, InterceptResend, PhotonNumberSplitting
from qkd.physics.link import Link
from qkd.randomness import KeyRandomness

__all__ = [
    "PROTOCOLS",
    "ChshResult",
    "Detections",
    "Protocol",
    "ProtocolError",
    "Sampler",
    "transmit",
]

Protocol = Literal["bb84-decoy", "bb84-single-photon", "bbm92"]
Sampler = Literal["events", "pulses"]
PROTOCOLS: tuple[Protocol, ...] = ("bb84-decoy", "bb84-single-photon", "bbm92")

# Detections beyond this in one call would need gigabytes; a caller simulating a long run
# splits it into blocks (as a real link's post-processing does).
MAX_DETECTIONS = 200_000_000
_PULSE_CHUNK = 1 << 20


class ProtocolError(QKDError, ValueError):
    """A protocol, sampler or attack combination is not supported, or a run is too large."""


@dataclass(frozen=True, kw_only=True)
class ChshResult:
    """Coincidence counts of the CHSH test rounds, per setting pair, and the value ``S``."""

    rounds: int
    agreements: tuple[int, int, int, int]
    totals: tuple[int, int, int, int]

    @property
    def s(self) -> float:
        """``S = E(a0,b0) - E(a0,b1) + E(a1,b0) + E(a1,b1)``; classical bound 2."""
        e = [
            (2.0 * a - t) / t if t else 0.0
            for a, t in zip(self.agreements, self.totals, strict=True)
        ]
        return e[0] - e[1] + e[2] + e[3]


@dataclass(frozen=True, kw_only=True, eq=False)
class Detections:
    """One entry per gate where Bob registered a click (per coincidence for BBM92).

    ``intensity`` indexes ``Link.source.intensities`` (0 signal, 1 decoy, 2 vacuum);
    ``eve_knows`` is the simulator's ground truth of the bits Eve learnt.
    """

    protocol: Protocol
    pulses: int
    sent: tuple[int, int, int]
    intensity: NDArray[np.int8]
    photons: NDArray[np.int16]
    alice_basis: NDArray[np.uint8]
    alice_bit: NDArray[np.uint8]
    bob_basis: NDArray[np.uint8]
    bob_bit: NDArray[np.uint8]
    eve_knows: NDArray[np.bool_]
    chsh: ChshResult | None = None

    def __len__(self) -> int:
        return int(self.intensity.size)

    def __repr__(self) -> str:
        return f"<Detections {self.protocol}: {len(self)} clicks of {self.pulses} pulses>"


# --------------------------------------------------------------------------------------------
# Photon-number classes (event sampler)


@dataclass(frozen=True)
class _Classes:
    """Per class: probability weight, photons reaching Bob, transmittance, P(correct), Eve."""

    weight: NDArray[np.float64]
    photons: NDArray[np.int64]
    forwarded: NDArray[np.int64]
    transmittance: NDArray[np.float64]
    p_correct: NDArray[np.float64]
    eve_knows: NDArray[np.bool_]


def _poisson_pmf(mean: float) -> NDArray[np.float64]:
    """P(n) for n = 0..n_max, the tail beyond n_max (below 1e-16) folded into n_max."""
    if mean == 0.0:
        return np.array([1.0])
    n_max = max(4, math.ceil(mean + 12.0 * math.sqrt(mean) + 12.0))
    n = np.arange(n_max + 1)
    log_p = -mean + n * math.log(mean) - np.array([math.lgamma(k + 1.0) for k in n])
    pmf = np.exp(log_p)
    pmf[-1] += max(0.0, 1.0 - pmf.sum())
    return np.asarray(pmf / pmf.sum(), dtype=np.float64)


def _yield(photons: NDArray[np.int64] | int, t: float, y0: float) -> NDArray[np.float64]:
    return np.asarray(1.0 - (1.0 - y0) * (1.0 - t) ** np.asarray(photons), dtype=np.float64)


def _pns_forwarding(link: Link, eta: float, t_eve: float, mean: float) -> tuple[float, float]:
    """Eve's forwarding probabilities (single-photon ``s``, multi-photon ``b``).

    She chooses them so that the signal gain equals that of the honest link.
    """
    y0 = link.detector.dark_count_probability
    pmf = _poisson_pmf(mean)
    n = np.arange(pmf.size)
    honest = float(np.sum(pmf * _yield(n, eta, y0)))
    dark = y0
    p0, p1 = pmf[0], pmf[1]
    multi = pmf[2:]
    g_multi = float(np.sum(multi * _yield(n[2:] - 1, t_eve, y0)))
    p_multi = float(multi.sum())
    g1 = float(p1 * _yield(1, t_eve, y0))
    base = p0 * dark
    if base + g_multi + p1 * dark >= honest:
        b = (honest - base - p1 * dark - p_multi * dark) / max(g_multi - p_multi * dark, 1e-300)
        return 0.0, float(min(1.0, max(0.0, b)))
    s = (honest - base - g_multi - p1 * dark) / max(g1 - p1 * dark, 1e-300)
    return float(min(1.0, max(0.0, s))), 1.0


def _classes(
    link: Link, eve: Eavesdropper | None, eta: float, pmf: NDArray[np.float64], signal_mu: float
) -> _Classes:
    e_d = link.detector.misalignment
    n = np.arange(pmf.size, dtype=np.int64)
    ones = np.ones(pmf.size)
    falses = np.zeros(pmf.size, dtype=np.bool_)
    if eve is None:
        return _Classes(pmf, n, n, eta * ones, (1 - e_d) * ones, falses)
    if isinstance(eve, InterceptResend):
        p = eve.fraction * (n > 0)
        weight = np.concatenate([pmf * (1 - p), pmf * p / 2, pmf * p / 2])
        return _Classes(
            weight,
            np.tile(n, 3),
            np.tile(n, 3),
            eta * np.ones(3 * pmf.size),
            np.concatenate([(1 - e_d) * ones, (1 - e_d) * ones, 0.5 * ones]),
            np.concatenate([falses, n > 0, falses]),
        )
    if isinstance(eve, BeamSplitting):
        # Class (n, j): Eve keeps j of the n photons, Bob gets n - j.
        rows_w, rows_n, rows_f, rows_e = [], [], [], []
        for photons, p_n in enumerate(pmf):
            j = np.arange(photons + 1)
            log_binom = np.array(
                [
                    math.lgamma(photons + 1) - math.lgamma(k + 1) - math.lgamma(photons - k + 1)
                    for k in j
                ]
            )
            with np.errstate(divide="ignore"):
                w = np.exp(log_binom + j * np.log(eve.tap) + (photons - j) * np.log1p(-eve.tap))
            rows_w.append(p_n * np.nan_to_num(w))
            rows_n.append(np.full(j.size, photons))
            rows_f.append(photons - j)
            rows_e.append(j > 0)
        size = sum(r.size for r in rows_w)
        return _Classes(
            np.concatenate(rows_w),
            np.concatenate(rows_n).astype(np.int64),
            np.concatenate(rows_f).astype(np.int64),
            eta * np.ones(size),
            (1 - e_d) * np.ones(size),
            np.concatenate(rows_e),
        )
    # Photon-number splitting over a lossless channel straight into Bob's detectors.
    t_eve = link.detector.efficiency
    s, b = _pns_forwarding(link, eta, t_eve, signal_mu)
    forward = np.where(n == 1, s, np.where(n >= 2, b, 1.0))
    fwd_photons = np.where(n >= 2, n - 1, n)
    weight = np.concatenate([pmf * forward, pmf * (1 - forward)])
    return _Classes(
        weight,
        np.tile(n, 2),
        np.concatenate([fwd_photons, np.zeros_like(n)]),
        np.concatenate([np.where(n == 0, eta, t_eve), eta * ones]),
        (1 - e_d) * np.ones(2 * pmf.size),
        np.concatenate([n >= 2, falses]),
    )


def _click_and_error(
    photons: NDArray[np.int64], t: NDArray[np.float64], p_c: NDArray[np.float64], p_d: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """P(click) and P(error | click) for ``photons`` photons (see the module docstring)."""
    silent_right = (1 - p_d) * (1 - t * p_c) ** photons
    silent_wrong = (1 - p_d) * (1 - t * (1 - p_c)) ** photons
    silent = (1 - p_d) ** 2 * (1 - t) ** photons
    click = 1 - silent
    both = 1 - silent_right - silent_wrong + silent
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(click > 0, (silent_right - silent + both / 2) / click, 0.5)
    return click, np.clip(err, 0.0, 1.0)


def _split(total: int, steps: int) -> list[int]:
    base, extra = divmod(total, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


def _intensities(
    link: Link, protocol: Protocol
) -> tuple[tuple[float, ...], tuple[float, ...], list[NDArray[np.float64]]]:
    if protocol == "bb84-single-photon":
        return (1.0,), (1.0,), [np.array([0.0, 1.0])]
    src = link.source
    return src.intensities, src.probabilities, [_poisson_pmf(m) for m in src.intensities]


def _finish(
    *,
    protocol: Protocol,
    pulses: int,
    sent: NDArray[np.int64],
    intensity: NDArray[np.int8],
    photons: NDArray[np.int16],
    match: NDArray[np.bool_],
    error: NDArray[np.bool_],
    eve_knows: NDArray[np.bool_],
    rng: np.random.Generator,
    keyrand: KeyRandomness,
    chsh: ChshResult | None = None,
    shuffle: bool = True,
) -> Detections:
    if shuffle and intensity.size:
        order = rng.permutation(intensity.size)
        intensity, photons, match, error, eve_knows = (
            intensity[order],
            photons[order],
            match[order],
            error[order],
            eve_knows[order],
        )
    count = intensity.size
    alice_basis = keyrand.bits(count)
    alice_bit = keyrand.bits(count)
    bob_basis = np.where(match, alice_basis, alice_basis ^ 1).astype(np.uint8)
    random_bit = rng.integers(0, 2, size=count, dtype=np.uint8)
    bob_bit = np.where(match, alice_bit ^ error.astype(np.uint8), random_bit).astype(np.uint8)
    padded = np.zeros(3, dtype=np.int64)
    padded[: sent.size] = sent
    return Detections(
        protocol=protocol,
        pulses=pulses,
        sent=(int(padded[0]), int(padded[1]), int(padded[2])),
        intensity=intensity,
        photons=photons,
        alice_basis=alice_basis,
        alice_bit=alice_bit,
        bob_basis=bob_basis,
        bob_bit=bob_bit,
        eve_knows=eve_knows,
        chsh=chsh,
    )


def _check_detections(expected: float) -> None:
    if expected > MAX_DETECTIONS:
        raise ProtocolError(
            f"about {expected:.3g} detections in one run exceed the limit of {MAX_DETECTIONS:.0e};"
            " simulate fewer pulses per call and repeat (a link post-processes in blocks too)"
        )


def _prepare_measure_events(
    link: Link,
    *,
    protocol: Protocol,
    eve: Eavesdropper | None,
    pulses: int,
    rng: np.random.Generator,
    keyrand: KeyRandomness,
) -> Detections:
    means, probs, pmfs = _intensities(link, protocol)
    p_d = link.detector.dark_count_per_detector
    etas = link.transmittances()
    sent = np.zeros(len(means), dtype=np.int64)
    parts: list[tuple[int, _Classes, NDArray[np.int64], NDArray[np.float64]]] = []
    expected = 0.0
    for eta, step_pulses in zip(etas, _split(pulses, len(etas)), strict=True):
        per_intensity = rng.multinomial(step_pulses, probs)
        sent += per_intensity
        for k, (pmf, n_k) in enumerate(zip(pmfs, per_intensity, strict=True)):
            cls = _classes(link, eve, eta, pmf, means[0])
            click, err = _click_and_error(cls.forwarded, cls.transmittance, cls.p_correct, p_d)
            weights = cls.weight / cls.weight.sum()
            expected += float(n_k * np.sum(weights * click))
            _check_detections(expected)
            counts = rng.binomial(rng.multinomial(int(n_k), weights), click)
            parts.append((k, cls, counts, err))
    intensity = np.concatenate(
        [np.repeat(np.int8(k), int(c.sum())) for k, _, c, _ in parts] or [np.zeros(0, np.int8)]
    ).astype(np.int8)
    photons = np.concatenate(
        [np.repeat(cls.photons, c) for _, cls, c, _ in parts] or [np.zeros(0, np.int64)]
    ).astype(np.int16)
    eve_knows = np.concatenate(
        [np.repeat(cls.eve_knows, c) for _, cls, c, _ in parts] or [np.zeros(0, np.bool_)]
    )
    p_err = np.concatenate([np.repeat(e, c) for _, _, c, e in parts] or [np.zeros(0)])
    match = rng.random(intensity.size) < 0.5
    error = match & (rng.random(intensity.size) < p_err)
    return _finish(
        protocol=protocol,
        pulses=pulses,
        sent=sent,
        intensity=intensity,
        photons=photons,
        match=match,
        error=error,
        eve_knows=eve_knows,
        rng=rng,
        keyrand=keyrand,
    )


# --------------------------------------------------------------------------------------------
# Per-pulse reference sampler


def _prepare_measure_pulses(
    link: Link,
    *,
    protocol: Protocol,
    eve: Eavesdropper | None,
    pulses: int,
    rng: np.random.Generator,
    keyrand: KeyRandomness,
) -> Detections:
    means, probs, _ = _intensities(link, protocol)
    e_d = link.detector.misalignment
    p_d = link.detector.dark_count_per_detector
    etas = link.transmittances()
    mean_arr = np.asarray(means)
    cum = np.cumsum(probs)
    sent = np.zeros(len(means), dtype=np.int64)
    out: dict[str, list[NDArray[np.generic]]] = {
        k: [] for k in ("int", "ph", "ab", "ax", "bb", "bx", "eve")
    }
    for eta, step_pulses in zip(etas, _split(pulses, len(etas)), strict=True):
        pns = (
            _pns_forwarding(link, eta, link.detector.efficiency, means[0])
            if isinstance(eve, PhotonNumberSplitting)
            else (1.0, 1.0)
        )
        for start in range(0, step_pulses, _PULSE_CHUNK):
            size = min(_PULSE_CHUNK, step_pulses - start)
            k = np.minimum(np.searchsorted(cum, rng.random(size), side="right"), len(means) - 1)
            sent += np.bincount(k, minlength=len(means))
            n = (
                np.ones(size, dtype=np.int64)
                if protocol == "bb84-single-photon"
                else rng.poisson(mean_arr[k])
            )
            a_basis = keyrand.bits(size)
            a_bit = keyrand.bits(size)
            # The state that reaches Bob: basis, bit, photon number, transmittance.
            s_basis, s_bit, n_bob = a_basis.copy(), a_bit.copy(), n.copy()
            t = np.full(size, eta)
            knows = np.zeros(size, dtype=np.bool_)
            if isinstance(eve, InterceptResend):
                hit = (rng.random(size) < eve.fraction) & (n > 0)
                e_basis = rng.integers(0, 2, size=size, dtype=np.uint8)
                same = e_basis == a_basis
                e_bit = np.where(same, a_bit, rng.integers(0, 2, size=size, dtype=np.uint8))
                s_basis = np.where(hit, e_basis, a_basis).astype(np.uint8)
                s_bit = np.where(hit, e_bit, a_bit).astype(np.uint8)
                knows = hit & same
            elif isinstance(eve, BeamSplitting):
                kept = rng.binomial(n, eve.tap)
                n_bob = n - kept
                knows = kept > 0
            elif isinstance(eve, PhotonNumberSplitting):
                s_fwd, b_fwd = pns
                u = rng.random(size)
                single = (n == 1) & (u < s_fwd)
                multi = (n >= 2) & (u < b_fwd)
                blocked = ((n == 1) & ~single) | ((n >= 2) & ~multi)
                n_bob = np.where(multi, n - 1, np.where(blocked, 0, n))
                t = np.where(single | multi, link.detector.efficiency, eta)
                knows = multi
            b_basis = rng.integers(0, 2, size=size, dtype=np.uint8)
            arrived = rng.binomial(n_bob, t)
            p_right = np.where(b_basis == s_basis, 1.0 - e_d, 0.5)
            right = rng.binomial(arrived, p_right)
            wrong = arrived - right
            click_right = (right > 0) | (rng.random(size) < p_d)
            click_wrong = (wrong > 0) | (rng.random(size) < p_d)
            clicked = click_right | click_wrong
            # "right" is the detector of the bit value s_bit in Bob's basis.
            coin = rng.integers(0, 2, size=size, dtype=np.uint8)
            b_bit = np.where(
                click_right & click_wrong, coin, np.where(click_right, s_bit, s_bit ^ 1)
            ).astype(np.uint8)
            for key, arr in (
                ("int", k.astype(np.int8)),
                ("ph", n.astype(np.int16)),
                ("ab", a_basis),
                ("ax", a_bit),
                ("bb", b_basis),
                ("bx", b_bit),
                ("eve", knows),
            ):
                out[key].append(arr[clicked])
    cat = {key: np.concatenate(v) for key, v in out.items()}
    padded = np.zeros(3, dtype=np.int64)
    padded[: sent.size] = sent
    return Detections(
        protocol=protocol,
        pulses=pulses,
        sent=(int(padded[0]), int(padded[1]), int(padded[2])),
        intensity=cat["int"].astype(np.int8),
        photons=cat["ph"].astype(np.int16),
        alice_basis=cat["ab"].astype(np.uint8),
        alice_bit=cat["ax"].astype(np.uint8),
        bob_basis=cat["bb"].astype(np.uint8),
        bob_bit=cat["bx"].astype(np.uint8),
        eve_knows=cat["eve"].astype(np.bool_),
    )


# --------------------------------------------------------------------------------------------
# BBM92


_CHSH_A = (0.0, math.pi / 4)
_CHSH_B = (math.pi / 8, 3 * math.pi / 8)


def _bbm92_sides(link: Link) -> tuple[float, float, float]:
    """Transmittance of Alice's and Bob's arm (source in the middle) and the dark yield."""
    etas = link.transmittances()
    if len(etas) != 1:
        raise ProtocolError("bbm92 supports a fibre or fixed-loss link, not a pass of time steps")
    eta_total = etas[0] / link.detector.efficiency
    arm = link.detector.efficiency * math.sqrt(eta_total)
    return arm, arm, link.detector.dark_count_probability


def _chsh(
    clean: NDArray[np.bool_],
    intercepted: NDArray[np.bool_],
    e_d: float,
    rng: np.random.Generator,
) -> ChshResult:
    size = clean.size
    i = rng.integers(0, 2, size=size)
    j = rng.integers(0, 2, size=size)
    a = np.asarray(_CHSH_A)[i]
    b = np.asarray(_CHSH_B)[j]
    eve_angle = np.where(rng.integers(0, 2, size=size) == 0, 0.0, math.pi / 4)
    visibility = 1.0 - 2.0 * e_d
    corr = np.where(
        intercepted,
        visibility * np.cos(2 * (a - eve_angle)) * np.cos(2 * (b - eve_angle)),
        visibility * np.cos(2 * (a - b)),
    )
    corr = np.where(clean, corr, 0.0)
    agree = rng.random(size) < (1.0 + corr) / 2.0
    setting = 2 * i + j
    totals = np.bincount(setting, minlength=4)
    agreements = np.bincount(setting[agree], minlength=4)
    return ChshResult(
        rounds=int(size),
        agreements=(
            int(agreements[0]),
            int(agreements[1]),
            int(agreements[2]),
            int(agreements[3]),
        ),
        totals=(int(totals[0]), int(totals[1]), int(totals[2]), int(totals[3])),
    )


def _bbm92(
    link: Link,
    *,
    eve: Eavesdropper | None,
    pulses: int,
    rng: np.random.Generator,
    keyrand: KeyRandomness,
    sampler: Sampler,
    mu: float,
    chsh_fraction: float,
) -> Detections:
    if isinstance(eve, PhotonNumberSplitting):
        raise ProtocolError(
            "pns attacks a weak-coherent source; bbm92 has a pair source: use bb84-decoy"
        )
    t_a, t_b, y0 = _bbm92_sides(link)
    if isinstance(eve, BeamSplitting):
        t_b *= 1.0 - eve.tap
    e_d = link.detector.misalignment
    p_intercept = eve.fraction if isinstance(eve, InterceptResend) else 0.0
    if sampler == "events":
        pmf = _poisson_pmf(mu)
        n = np.arange(pmf.size)
        silent_a = (1 - y0) * (1 - t_a) ** n
        silent_b = (1 - y0) * (1 - t_b) ** n
        silent_ab = (1 - y0) ** 2 * ((1 - t_a) * (1 - t_b)) ** n
        coinc = 1 - silent_a - silent_b + silent_ab
        clean = n * t_a * t_b * ((1 - t_a) * (1 - t_b)) ** np.maximum(n - 1, 0)
        probs = np.stack([clean, coinc - clean, 1 - coinc], axis=1).clip(0.0, 1.0)
        _check_detections(pulses * float(np.sum(pmf * coinc)))
        per_n = rng.multinomial(pulses, pmf)
        counts = np.array(
            [rng.multinomial(int(c), p / p.sum()) for c, p in zip(per_n, probs, strict=True)]
        )
        photons = np.concatenate([np.repeat(n, counts[:, 0]), np.repeat(n, counts[:, 1])])
        is_clean = np.concatenate(
            [
                np.ones(int(counts[:, 0].sum()), np.bool_),
                np.zeros(int(counts[:, 1].sum()), np.bool_),
            ]
        )
    else:
        photons_l, clean_l = [], []
        for start in range(0, pulses, _PULSE_CHUNK):
            size = min(_PULSE_CHUNK, pulses - start)
            n = rng.poisson(mu, size=size)
            both = rng.binomial(n, t_a * t_b)
            only_a = rng.binomial(n - both, t_a * (1 - t_b) / max(1 - t_a * t_b, 1e-300))
            only_b = rng.binomial(
                n - both - only_a,
                (1 - t_a) * t_b / max((1 - t_a) * (1 - t_b) + (1 - t_a) * t_b, 1e-300),
            )
            click_a = (both + only_a > 0) | (rng.random(size) < y0)
            click_b = (both + only_b > 0) | (rng.random(size) < y0)
            coincidence = click_a & click_b
            photons_l.append(n[coincidence])
            clean_l.append(((both == 1) & (only_a == 0) & (only_b == 0))[coincidence])
        photons = np.concatenate(photons_l)
        is_clean = np.concatenate(clean_l)
    order = rng.permutation(photons.size)
    photons, is_clean = photons[order], is_clean[order]
    intercepted = rng.random(photons.size) < p_intercept
    test = rng.random(photons.size) < chsh_fraction
    chsh = _chsh(is_clean[test], intercepted[test], e_d, rng)
    photons, is_clean, intercepted = photons[~test], is_clean[~test], intercepted[~test]
    size = photons.size
    eve_right = rng.random(size) < 0.5
    p_err = np.where(is_clean, np.where(intercepted & ~eve_right, 0.5, e_d), 0.5)
    match = rng.random(size) < 0.5
    error = match & (rng.random(size) < p_err)
    return _finish(
        protocol="bbm92",
        pulses=pulses,
        sent=np.array([pulses], dtype=np.int64),
        intensity=np.zeros(size, dtype=np.int8),
        photons=photons.astype(np.int16),
        match=match,
        error=error,
        eve_knows=intercepted & eve_right & is_clean,
        rng=rng,
        keyrand=keyrand,
        chsh=chsh,
        shuffle=False,
    )


def transmit(
    link: Link,
    *,
    pulses: int,
    protocol: Protocol = "bb84-decoy",
    eve: Eavesdropper | None = None,
    rng: np.random.Generator,
    keyrand: KeyRandomness,
    sampler: Sampler = "events",
    pair_mu: float = 0.02,
    chsh_fraction: float = 0.1,
) -> Detections:
    """Send ``pulses`` pulses over ``link`` and return Bob's clicks.

    Example::

        det = transmit(preset("gys", 25), pulses=10**7, rng=np.random.default_rng(1),
                       keyrand=KeyRandomness())
    """
    if pulses < 0:
        raise ProtocolError(f"pulses = {pulses}; give a count >= 0")
    if protocol not in PROTOCOLS:
        raise ProtocolError(f"protocol {protocol!r} is unknown; choose one of {PROTOCOLS}")
    if sampler not in ("events", "pulses"):
        raise ProtocolError(f"sampler {sampler!r} is unknown; use 'events' or 'pulses'")
    if protocol == "bbm92":
        return _bbm92(
            link,
            eve=eve,
            pulses=pulses,
            rng=rng,
            keyrand=keyrand,
            sampler=sampler,
            mu=pair_mu,
            chsh_fraction=chsh_fraction,
        )
    if protocol == "bb84-single-photon" and isinstance(eve, PhotonNumberSplitting):
        raise ProtocolError(
            "pns needs multi-photon pulses; a single-photon source has none: use bb84-decoy"
        )
    if sampler == "events":
        return _prepare_measure_events(
            link, protocol=protocol, eve=eve, pulses=pulses, rng=rng, keyrand=keyrand
        )
    return _prepare_measure_pulses(
        link, protocol=protocol, eve=eve, pulses=pulses, rng=rng, keyrand=keyrand
    )
