"""A QKD link, end to end: pulses in, a report and two final keys out.

Theory of operation
-------------------
The stages, each in its own module with its theory: the quantum stage
(:mod:`qkd.physics.protocols`), sifting (:mod:`qkd.postprocessing.sifting`), parameter
estimation on a random sample (:mod:`qkd.postprocessing.estimation`), the decoy bounds
(:mod:`qkd.physics.decoy`), error correction by Cascade (:mod:`qkd.postprocessing.cascade`),
error verification (:mod:`qkd.postprocessing.verification`), the secret length
(:mod:`qkd.postprocessing.finite_key`) and privacy amplification by Toeplitz hashing
(:mod:`qkd.postprocessing.toeplitz`).

A run aborts, and no key bit comes out, when the sampled QBER exceeds the threshold (11% by
default, the limit of one-way BB84 post-processing), when a BBM92 CHSH test fails to exceed
2, when the secret length is not positive, or when verification fails; the report says which.
This is how an eavesdropper shows: intercept-resend raises the QBER, photon-number splitting
collapses the decoy bound on the single-photon yield.

This is the hazmat layer: ``simulate`` returns raw key bytes. Keys from a seeded run are
reproducible and must never protect anything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qkd._errors import QKDError
from qkd.physics.decoy import DecoyBounds, DecoyCounts, bound_single_photon
from qkd.physics.eve import Eavesdropper, parse_eve
from qkd.physics.link import DecoySource, Link
from qkd.physics.link import preset as link_preset
from qkd.physics.protocols import Detections, Protocol, Sampler, transmit
from qkd.physics.rates import gain
from qkd.physics.report import EcReport, LinkReport, StageTimings
from qkd.postprocessing.cascade import CascadeVariant, reconcile
from qkd.postprocessing.estimation import QberEstimate, estimate_qber
from qkd.postprocessing.finite_key import KeyLength, decoy_key_length, single_photon_key_length
from qkd.postprocessing.sifting import SiftedKey, sift
from qkd.postprocessing.toeplitz import modified_toeplitz_hash_many
from qkd.postprocessing.verification import verify
from qkd.randomness import KeyRandomness, physics_rng

__all__ = ["Progress", "SimulationResult", "simulate"]

Progress = Callable[[str, float], None]

# Fewer raw-key bits than this cannot give a meaningful estimate or key.
MIN_RAW_BITS = 200


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """The report, and Alice's and Bob's final keys (equal unless the run aborted: both empty).

    The repr shows the report's headline, never a key.
    """

    report: LinkReport
    alice_key: bytes
    bob_key: bytes

    def __repr__(self) -> str:
        r = self.report
        state = f"aborted: {r.abort_reason}" if r.aborted else f"{r.final_key_bits} key bits"
        return f"<SimulationResult {r.protocol} {r.preset}: {state}>"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("SimulationResult holds key material and cannot be pickled")


class _Clock:
    def __init__(self, progress: Progress | None) -> None:
        self.start = time.perf_counter()
        self.last = self.start
        self.spent: dict[str, float] = {}
        self.progress = progress

    def stage(self, name: str, fraction: float) -> None:
        if self.progress is not None:
            self.progress(name, fraction)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.spent[name] = self.spent.get(name, 0.0) + now - self.last
        self.last = now

    def timings(self) -> StageTimings:
        fields = {k: v for k, v in self.spent.items() if k in StageTimings.__dataclass_fields__}
        return StageTimings(**fields, total=time.perf_counter() - self.start)


def _link_for(
    link: Link | None,
    preset_name: str,
    distance_km: float,
    mu: float | None,
    nu: float | None,
) -> Link:
    base = link if link is not None else link_preset(preset_name, distance_km)
    if mu is None and nu is None:
        return base
    src = base.source
    return base.with_source(
        DecoySource(
            mu=src.mu if mu is None else mu,
            nu=src.nu if nu is None else nu,
            p_signal=src.p_signal,
            p_decoy=src.p_decoy,
            p_vacuum=src.p_vacuum,
        )
    )


def _warnings(link: Link, det: Detections, bounds: DecoyBounds | None) -> list[str]:
    """Disagreements between what the link delivered and what its model predicts."""
    out: list[str] = []
    if bounds is not None and det.protocol == "bb84-decoy" and det.sent[0]:
        y0 = link.detector.dark_count_probability
        etas = link.transmittances()
        expected_y1 = float(np.mean([y0 + eta - y0 * eta for eta in etas]))
        expected_gain = float(np.mean([gain(link.source.mu, eta, y0) for eta in etas]))
        gain_ratio = (np.count_nonzero(det.intensity == 0) / det.sent[0]) / expected_gain
        if bounds.y1_lower < 0.5 * expected_y1:
            if gain_ratio > 0.8:
                out.append(
                    f"the signal gain matches the link model ({gain_ratio:.2f}x) but the "
                    f"single-photon yield bound Y1_L = {bounds.y1_lower:.3g} is below half the "
                    f"model's Y1 = {expected_y1:.3g}: photon-number-dependent loss, the "
                    "signature of a photon-number-splitting attack"
                )
            else:
                out.append(
                    f"the signal gain is {gain_ratio:.2f}x the link model's and Y1_L = "
                    f"{bounds.y1_lower:.3g} is below half the model's {expected_y1:.3g}: the "
                    f"link loses {-10 * math.log10(max(gain_ratio, 1e-12)):.1f} dB more than "
                    "modelled (a tap such as a beam splitter, or a fault)"
                )
    if det.chsh is not None and det.chsh.rounds and det.chsh.s <= 2.0:
        out.append(f"CHSH S = {det.chsh.s:.3f} <= 2: the test rounds certify no entanglement")
    return out


def simulate(
    *,
    protocol: Protocol = "bb84-decoy",
    preset: str = "gys",
    distance_km: float = 25.0,
    link: Link | None = None,
    pulses: int = 10**8,
    eve: Eavesdropper | str | None = None,
    mu: float | None = None,
    nu: float | None = None,
    asymptotic: bool = False,
    seed: int | None = None,
    rng: np.random.Generator | int | None = None,
    sampler: Sampler = "events",
    cascade: CascadeVariant = "improved",
    epsilon_sec: float = 1e-10,
    epsilon_cor: float = 1e-15,
    qber_threshold: float = 0.11,
    sample_fraction: float | None = None,
    pair_mu: float = 0.02,
    chsh_fraction: float = 0.1,
    progress: Progress | None = None,
) -> SimulationResult:
    """Simulate a QKD link and its post-processing; return the report and the final keys.

    ``rng`` drives the physics; Alice's bits and bases and the hash seeds come from the OS
    CSPRNG unless ``seed`` is given, which seeds both and marks the run insecure.

    Example::

        result = simulate(preset="gys", distance_km=25, pulses=10**8)
        result.report.final_key_bits, len(result.alice_key)
    """
    if pulses <= 0:
        raise QKDError(f"pulses = {pulses}; give a positive number of pulses")
    if not 0 < epsilon_sec < 1 or not 0 < epsilon_cor < 1:
        raise QKDError("epsilon_sec and epsilon_cor must lie strictly between 0 and 1")
    fraction = (
        sample_fraction
        if sample_fraction is not None
        else (0.05 if protocol == "bb84-decoy" else 0.1)
    )
    if not 0 < fraction < 1:
        raise QKDError(f"sample_fraction = {fraction}; give a fraction in (0, 1)")
    if protocol == "bbm92":
        if nu is not None:
            raise QKDError("nu (the weak decoy) applies to bb84-decoy only; bbm92 has no decoys")
        if mu is not None:
            pair_mu, mu = mu, None
    elif protocol == "bb84-single-photon" and (mu is not None or nu is not None):
        raise QKDError("mu and nu apply to bb84-decoy and bbm92; a single-photon source has none")
    attacker = parse_eve(eve) if isinstance(eve, str) else eve
    the_link = _link_for(link, preset, distance_km, mu, nu)
    physics = physics_rng(seed if seed is not None else rng)
    keyrand = KeyRandomness(seed)
    clock = _Clock(progress)

    clock.stage("quantum", 0.0)
    det = transmit(
        the_link,
        pulses=pulses,
        protocol=protocol,
        eve=attacker,
        rng=physics,
        keyrand=keyrand,
        sampler=sampler,
        pair_mu=pair_mu,
        chsh_fraction=chsh_fraction,
    )
    clock.lap("quantum")
    clock.stage("sifting", 0.3)
    sifted = sift(det)
    clock.lap("sifting")

    run = _Run(
        protocol=protocol,
        link=the_link,
        det=det,
        sifted=sifted,
        attacker=attacker,
        asymptotic=asymptotic,
        sampler=sampler,
        keyrand=keyrand,
        epsilon_sec=epsilon_sec,
        epsilon_cor=epsilon_cor,
        pair_mu=pair_mu,
    )
    if sifted.alice.size < MIN_RAW_BITS:
        return run.abort(
            f"only {sifted.alice.size} raw key bits (need {MIN_RAW_BITS}): send more pulses "
            "or shorten the link",
            clock,
        )

    clock.stage("estimation", 0.4)
    estimate, keep = estimate_qber(
        sifted.alice, sifted.bob, fraction=fraction, epsilon=epsilon_sec, keyrand=keyrand
    )
    alice_raw, bob_raw = sifted.alice[keep], sifted.bob[keep]
    run.estimate = estimate
    run.raw_alice, run.raw_bob = alice_raw, bob_raw
    bounds: DecoyBounds | None = None
    if protocol == "bb84-decoy":
        bounds = bound_single_photon(
            DecoyCounts(
                mu=the_link.source.mu,
                nu=the_link.source.nu,
                sent=det.sent,
                detections=sifted.detections,
                decoy_sifted=sifted.sifted[1],
                decoy_errors=sifted.errors_announced[0],
            ),
            None if asymptotic else epsilon_sec,
        )
    run.bounds = bounds
    run.warnings = _warnings(the_link, det, bounds)
    clock.lap("estimation")

    if estimate.qber > qber_threshold:
        return run.abort(
            f"QBER {100 * estimate.qber:.2f}% exceeds the {100 * qber_threshold:.1f}% threshold: "
            "too noisy for a key (an intercept-resend eavesdropper adds 25% x the fraction "
            "attacked)",
            clock,
        )
    if det.chsh is not None and det.chsh.rounds >= 400 and det.chsh.s <= 2.0:
        return run.abort(
            f"CHSH S = {det.chsh.s:.3f} does not exceed 2: no entanglement certified", clock
        )
    # Before spending time on error correction: is there a key even if it leaked nothing?
    run.key_length = run.length(leaked=0)
    if run.key_length.length <= 0:
        return run.abort(run.no_key_reason(run.key_length), clock)

    clock.stage("reconciliation", 0.5)
    rec = reconcile(alice_raw, bob_raw, estimate.qber, variant=cascade, rng=physics)
    clock.lap("reconciliation")
    true_errors = int(np.count_nonzero(alice_raw != bob_raw))
    raw_qber = true_errors / alice_raw.size
    efficiency = rec.efficiency(raw_qber)
    run.ec = EcReport(
        method=rec.method,
        leaked_bits=rec.leaked_bits,
        efficiency=efficiency if math.isfinite(efficiency) else None,
        channel_uses=rec.channel_uses,
    )

    clock.stage("verification", 0.8)
    check = verify(alice_raw, rec.corrected, epsilon_cor=epsilon_cor, keyrand=keyrand)
    clock.lap("verification")
    if not check.passed:
        return run.abort(
            "error verification failed: the corrected keys still differ (Cascade left errors); "
            "no key from this block",
            clock,
        )
    run.verified = True
    key_length = run.length(leaked=rec.leaked_bits)
    run.key_length = key_length
    final_bits = (key_length.length // 8) * 8
    if final_bits <= 0:
        return run.abort(run.no_key_reason(key_length), clock)

    clock.stage("amplification", 0.9)
    seed_bits = keyrand.bits(alice_raw.size - 1)
    key_a, key_b = modified_toeplitz_hash_many(seed_bits, [alice_raw, rec.corrected], final_bits)
    clock.lap("amplification")
    clock.stage("done", 1.0)
    return SimulationResult(
        report=run.report(clock, final_bits),
        alice_key=np.packbits(key_a).tobytes(),
        bob_key=np.packbits(key_b).tobytes(),
    )


class _Run:
    """The state of one run as it goes through the stages (private to :func:`simulate`)."""

    def __init__(
        self,
        *,
        protocol: Protocol,
        link: Link,
        det: Detections,
        sifted: SiftedKey,
        attacker: Eavesdropper | None,
        asymptotic: bool,
        sampler: Sampler,
        keyrand: KeyRandomness,
        epsilon_sec: float,
        epsilon_cor: float,
        pair_mu: float,
    ) -> None:
        self.protocol = protocol
        self.link = link
        self.det = det
        self.sifted = sifted
        self.attacker = attacker
        self.asymptotic = asymptotic
        self.sampler = sampler
        self.keyrand = keyrand
        self.epsilon_sec = epsilon_sec
        self.epsilon_cor = epsilon_cor
        self.pair_mu = pair_mu
        self.estimate: QberEstimate | None = None
        self.raw_alice: NDArray[np.uint8] = sifted.alice
        self.raw_bob: NDArray[np.uint8] = sifted.bob
        self.bounds: DecoyBounds | None = None
        self.ec: EcReport | None = None
        self.verified = False
        self.key_length: KeyLength | None = None
        self.warnings: list[str] = []

    def length(self, leaked: int) -> KeyLength:
        n = int(self.raw_alice.size)
        if self.bounds is not None:
            return decoy_key_length(
                raw_bits=n,
                mu=self.link.source.mu,
                nu=self.link.source.nu,
                bounds=self.bounds,
                decoy_sifted=self.sifted.sifted[1],
                leaked_bits=leaked,
                epsilon_sec=self.epsilon_sec,
                epsilon_cor=self.epsilon_cor,
                asymptotic=self.asymptotic,
            )
        assert self.estimate is not None
        return single_photon_key_length(
            raw_bits=n,
            phase_error=self.estimate.qber if self.asymptotic else self.estimate.qber_upper,
            leaked_bits=leaked,
            epsilon_sec=self.epsilon_sec,
            epsilon_cor=self.epsilon_cor,
            asymptotic=self.asymptotic,
        )

    def no_key_reason(self, length: KeyLength) -> str:
        why = (
            f"secret key length {length.length} <= 0: single-photon bits s1 = {length.s1:.0f}, "
            f"phase error <= {100 * length.phase_error:.2f}%, leaked {length.leaked_bits} bits"
        )
        if self.bounds is not None:
            why += (
                f"; the decoy bounds (Y1_L = {self.bounds.y1_lower:.3g}) leave too little "
                "single-photon key (too much loss, too few pulses, or photon-number splitting)"
            )
        else:
            why += "; send more pulses"
        return why

    def abort(self, reason: str, clock: _Clock) -> SimulationResult:
        clock.lap("amplification")
        return SimulationResult(report=self.report(clock, 0, reason), alice_key=b"", bob_key=b"")

    def report(self, clock: _Clock, final_bits: int, reason: str | None = None) -> LinkReport:
        det, sifted, link = self.det, self.sifted, self.link
        timings = clock.timings()
        signal_sifted = sifted.sifted[0]
        # E_mu over all sifted signal bits: the sample's errors plus the raw key's, which error
        # correction reveals to Bob.
        errors = (self.estimate.errors if self.estimate else 0) + int(
            np.count_nonzero(self.raw_alice != self.raw_bob)
        )
        known = float(np.mean(sifted.eve_knows)) if sifted.eve_knows.size else 0.0
        is_decoy = self.protocol == "bb84-decoy"
        mu = (
            self.pair_mu
            if self.protocol == "bbm92"
            else (1.0 if self.protocol == "bb84-single-photon" else link.source.mu)
        )
        phase = self.key_length.phase_error if self.key_length is not None else None
        return LinkReport(
            protocol=self.protocol,
            preset=link.name,
            distance_km=link.distance_km,
            eve=str(self.attacker) if self.attacker is not None else "none",
            pulses=det.pulses,
            mu=mu,
            nu=link.source.nu if is_decoy else None,
            asymptotic=self.asymptotic,
            sampler=self.sampler,
            detections=len(det),
            sifted_bits=sifted.sifted_bits,
            raw_key_bits=int(self.raw_alice.size),
            sample_bits=self.estimate.sample_size if self.estimate else 0,
            gain_signal=sifted.detections[0] / det.sent[0] if det.sent[0] else 0.0,
            qber_signal=errors / signal_sifted if signal_sifted else None,
            qber=self.estimate.qber if self.estimate else None,
            qber_upper=self.estimate.qber_upper if self.estimate else None,
            y1_lower=self.bounds.y1_lower if self.bounds else None,
            e1_upper=self.bounds.e1_upper if self.bounds else None,
            phase_error_upper=phase,
            chsh_s=det.chsh.s if det.chsh is not None else None,
            ec=self.ec,
            verified=self.verified,
            final_key_bits=final_bits,
            key_rate_per_pulse=final_bits / det.pulses,
            aborted=reason is not None,
            abort_reason=reason,
            secure_randomness=self.keyrand.secure,
            epsilon_sec=self.epsilon_sec,
            epsilon_cor=self.epsilon_cor,
            eve_known_fraction=known,
            warnings=tuple(self.warnings),
            timings=timings,
            pulses_per_second=det.pulses / timings.total if timings.total > 0 else 0.0,
        )
