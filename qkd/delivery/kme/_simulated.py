"""The "simulated" link source: final keys from the QKD link simulator (:func:`qkd.simulate`).

Each run of the simulator yields Alice's and Bob's final keys after sifting, parameter
estimation, error correction, verification and privacy amplification; runs are repeated until
enough key is buffered. The link's ``simulation`` table is passed to ``qkd.simulate`` as
keyword arguments, except ``pulse_rate_hz``: when given (and ``rate_bps`` is 0), the link is
metered at the simulated secret key rate, final bits per pulse times pulses per second.
"""

from __future__ import annotations

import hmac
import inspect
import threading
from typing import Any

from qkd.delivery.keysource import KeyExhausted, KeySourceError
from qkd.delivery.kme.config import ConfigError, LinkSettings
from qkd.physics.simulation import simulate

__all__ = ["SimulatedSupplier", "simulated_supplier"]

_DEFAULTS: dict[str, Any] = {"preset": "gys", "distance_km": 25.0, "pulses": 10**8}
# Runs in a row that may yield no key (aborted, or too short) before the link gives up.
_MAX_BARREN_RUNS = 5


class SimulatedSupplier:
    """A :data:`qkd.KeyMaterialSupplier` fed by repeated simulator runs."""

    def __init__(self, link: LinkSettings) -> None:
        options = dict(link.simulation)
        pulse_rate = options.pop("pulse_rate_hz", None)
        accepted = set(inspect.signature(simulate).parameters) - {"progress", "seed", "rng"}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise ConfigError(
                f"link {link.name}: simulation.{unknown[0]} is not a qkd.simulate argument;"
                f" known: {sorted(accepted)}"
            )
        if pulse_rate is not None and (
            isinstance(pulse_rate, bool)
            or not isinstance(pulse_rate, int | float)
            or pulse_rate <= 0
        ):
            raise ConfigError(f"link {link.name}: simulation.pulse_rate_hz must be positive")
        self.name = link.name
        self.options = {**_DEFAULTS, **options}
        self.pulse_rate_hz = None if pulse_rate is None else float(pulse_rate)
        self.rate_bps: float | None = None
        self.last_report: Any = None
        self._alice = bytearray()
        self._bob = bytearray()
        self._lock = threading.Lock()

    def __call__(self, nbytes: int) -> tuple[bytes, bytes]:
        with self._lock:
            barren = 0
            while len(self._alice) < nbytes:
                try:
                    result = simulate(**self.options)
                except (TypeError, ValueError) as exc:
                    raise KeySourceError(f"link {self.name}: simulation failed: {exc}") from exc
                report = result.report
                self.last_report = report
                if self.pulse_rate_hz is not None:
                    self.rate_bps = report.final_key_bits / report.pulses * self.pulse_rate_hz
                usable = min(len(result.alice_key), len(result.bob_key))
                if report.aborted or usable == 0:
                    barren += 1
                    if barren >= _MAX_BARREN_RUNS:
                        reason = report.abort_reason or "no final key"
                        raise KeyExhausted(
                            503,
                            f"link {self.name}: the simulated link yields no key ({reason})",
                        )
                    continue
                barren = 0
                alice, bob = result.alice_key[:usable], result.bob_key[:usable]
                if not hmac.compare_digest(alice, bob):
                    # Post-processing verification should make this impossible; never hand
                    # out keys the two ends disagree on.
                    continue
                self._alice += alice
                self._bob += bob
            alice_out, bob_out = bytes(self._alice[:nbytes]), bytes(self._bob[:nbytes])
            del self._alice[:nbytes]
            del self._bob[:nbytes]
            return alice_out, bob_out


def simulated_supplier(link: LinkSettings) -> SimulatedSupplier:
    return SimulatedSupplier(link)
