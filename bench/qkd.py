"""Benchmarks of the QKD link simulator: quantum stage, Cascade, privacy amplification, e2e.

Prints one JSON document ``{"results": [...]}``. Each rate comes with a ratio against a raw
numpy primitive timed in the same run (the machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This script is bench/qkd.py: Python puts bench/ first on sys.path, where "qkd" would name
# this file instead of the package. Drop that entry before importing the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402

import qkd  # noqa: E402
from qkd.physics.protocols import transmit  # noqa: E402
from qkd.physics.rates import binary_entropy  # noqa: E402
from qkd.postprocessing.cascade import reconcile  # noqa: E402
from qkd.postprocessing.toeplitz import fast_length, modified_toeplitz_hash  # noqa: E402
from qkd.randomness import KeyRandomness  # noqa: E402


def _best(fn: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` timings of ``fn`` (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repetition of each timing")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    results: list[dict[str, Any]] = []

    def add(name: str, value: float, unit: str) -> None:
        results.append({"name": name, "value": value, "unit": unit})

    rng = np.random.default_rng(1)

    # Quantum stage: 10^9 pulses over 25 km of the gys link, event sampler.
    link = qkd.preset("gys", 25.0)
    pulses = 10**9
    t_quantum = _best(
        lambda: transmit(link, pulses=pulses, rng=rng, keyrand=KeyRandomness()), repeat
    )
    t_draw = _best(lambda: rng.random(10**7), repeat) * (pulses / 10**7)
    add("qkd.quantum.pulses_per_s", pulses / t_quantum, "pulses/s")
    add("qkd.quantum.vs_numpy_uniform_draws", t_draw / t_quantum, "x (one rng.random per pulse)")
    pulse_n = 10**6 if args.quick else 4 * 10**6
    t_pulse = _best(
        lambda: transmit(link, pulses=pulse_n, rng=rng, keyrand=KeyRandomness(), sampler="pulses"),
        1,
    )
    add("qkd.quantum.per_pulse_sampler.pulses_per_s", pulse_n / t_pulse, "pulses/s")

    # Cascade (improved variant) on 10^6 bits at QBER 2%.
    n = 10**6
    alice = rng.integers(0, 2, size=n, dtype=np.uint8)
    errors = (rng.random(n) < 0.02).astype(np.uint8)
    bob = alice ^ errors
    qber = float(errors.mean())
    rec = reconcile(alice, bob, 0.02, rng=rng)
    t_cascade = _best(lambda: reconcile(alice, bob, 0.02, rng=rng), repeat)
    t_xor = _best(lambda: np.count_nonzero(alice ^ bob), repeat)
    add("qkd.cascade.mbit_per_s", n / t_cascade / 1e6, "Mbit/s")
    add("qkd.cascade.efficiency", rec.leaked_bits / (n * binary_entropy(qber)), "f")
    add("qkd.cascade.vs_xor_count", t_cascade / t_xor, "x (one XOR + count over the key)")
    for variant in ("original", "option7"):
        r = reconcile(alice, bob, 0.02, variant=variant, rng=rng)
        add(f"qkd.cascade.{variant}.efficiency", r.efficiency(qber), "f")

    # Privacy amplification: modified Toeplitz, n = 10^6 input bits, n / 2 output bits.
    seed = rng.integers(0, 2, size=n - 1, dtype=np.uint8)
    t_pa = _best(lambda: modified_toeplitz_hash(seed, alice, n // 2), repeat)
    size = fast_length(n - 1)
    as_float = alice.astype(np.float64)
    t_fft = _best(lambda: np.fft.rfft(as_float, size), repeat)
    add("qkd.pa.mbit_per_s", n / t_pa / 1e6, "Mbit/s")
    add("qkd.pa.vs_one_rfft", t_pa / t_fft, "x (one real FFT of the same length)")

    # End to end: 10^8 pulses over 25 km of the gys link, finite-key, all stages.
    e2e: list[float] = []
    keys: list[int] = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = qkd.simulate(preset="gys", distance_km=25.0, pulses=10**8)
        e2e.append(time.perf_counter() - start)
        keys.append(result.report.final_key_bits)
    add("qkd.e2e.seconds", min(e2e), "s (10^8 pulses, gys, 25 km)")
    add("qkd.e2e.final_key_bits", float(np.median(keys)), "bits")
    add("qkd.e2e.pulses_per_s", 10**8 / min(e2e), "pulses/s")

    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
