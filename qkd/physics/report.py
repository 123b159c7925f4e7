"""The report of a simulated link run: a frozen dataclass with a JSON form.

The report holds statistics only. The final keys are returned beside it
(:class:`qkd.simulate.SimulationResult`), never inside it, so a report can be logged,
printed or sent anywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["REPORT_FORMAT", "EcReport", "LinkReport", "StageTimings"]

REPORT_FORMAT = "qkd-agile/link-report/1"


@dataclass(frozen=True, kw_only=True)
class EcReport:
    """Error correction: the method, bits leaked, efficiency ``f`` and round trips."""

    method: str
    leaked_bits: int
    efficiency: float | None
    channel_uses: int


@dataclass(frozen=True, kw_only=True)
class StageTimings:
    """Wall-clock seconds spent in each stage."""

    quantum: float = 0.0
    sifting: float = 0.0
    estimation: float = 0.0
    reconciliation: float = 0.0
    verification: float = 0.0
    amplification: float = 0.0
    total: float = 0.0


@dataclass(frozen=True, kw_only=True)
class LinkReport:
    """What a run of the link produced. ``aborted`` runs give no key and say why.

    Example::

        result = qkd.simulate(preset="gys", distance_km=25, pulses=10**8)
        print(result.report.to_json())
    """

    protocol: str
    preset: str
    distance_km: float | None
    eve: str
    pulses: int
    mu: float
    nu: float | None
    asymptotic: bool
    sampler: str
    detections: int
    sifted_bits: int
    raw_key_bits: int
    sample_bits: int
    gain_signal: float
    qber_signal: float | None
    qber: float | None
    qber_upper: float | None
    y1_lower: float | None
    e1_upper: float | None
    phase_error_upper: float | None
    chsh_s: float | None
    ec: EcReport | None
    verified: bool
    final_key_bits: int
    key_rate_per_pulse: float
    aborted: bool
    abort_reason: str | None
    secure_randomness: bool
    epsilon_sec: float
    epsilon_cor: float
    eve_known_fraction: float
    warnings: tuple[str, ...] = ()
    timings: StageTimings = field(default_factory=StageTimings)
    pulses_per_second: float = 0.0
    format: str = REPORT_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        out = asdict(self)
        out["warnings"] = list(self.warnings)
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON document."""
        return json.dumps(self.to_dict(), indent=indent)

    def render(self) -> str:
        """A short human-readable summary."""

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.3f}%"

        where = f"{self.distance_km:g} km" if self.distance_km is not None else "free space"
        lines = [
            f"protocol     {self.protocol}, preset {self.preset}, {where}, eve {self.eve}",
            f"pulses       {self.pulses:.4g} (mu {self.mu:g}"
            + (f", nu {self.nu:g})" if self.nu is not None else ")"),
            f"detections   {self.detections}  sifted {self.sifted_bits}  raw key "
            f"{self.raw_key_bits}  sample {self.sample_bits}",
            f"gain Q_mu    {self.gain_signal:.4e}   E_mu {pct(self.qber_signal)}   "
            f"QBER (sample) {pct(self.qber)} <= {pct(self.qber_upper)}",
        ]
        if self.y1_lower is not None:
            lines.append(f"decoy        Y1_L {self.y1_lower:.4e}   e1_U {pct(self.e1_upper)}")
        if self.chsh_s is not None:
            lines.append(f"CHSH         S = {self.chsh_s:.3f} (classical bound 2)")
        if self.ec is not None:
            eff = "n/a" if self.ec.efficiency is None else f"{self.ec.efficiency:.3f}"
            lines.append(
                f"correction   {self.ec.method}: leaked {self.ec.leaked_bits} bits, f = {eff}, "
                f"{self.ec.channel_uses} round trips; verified: {self.verified}"
            )
        if self.aborted:
            lines.append(f"ABORTED      {self.abort_reason}")
        else:
            lines.append(
                f"final key    {self.final_key_bits} bits ({self.key_rate_per_pulse:.3e} per pulse)"
            )
        lines.extend(f"warning      {w}" for w in self.warnings)
        if not self.secure_randomness:
            lines.append("randomness   seeded: reproducible and INSECURE (test use only)")
        lines.append(
            f"time         {self.timings.total:.3f} s ({self.pulses_per_second:.3g} pulses/s)"
        )
        return "\n".join(lines)
