"""Benchmark of the ``pqc`` providers; prints one JSON document ``{"results": [...]}``.

Per available (provider, algorithm): ``pqc.<provider>.<algorithm>.{keygen,encaps,decaps}_per_s``
where ``<algorithm>`` is the standard name lower-cased with runs of other characters turned
into ``-`` (``ML-KEM-768`` -> ``ml-kem-768``, ``DHKEM(X25519, HKDF-SHA256)`` ->
``dhkem-x25519-hkdf-sha256``). These names are kept stable.

``pqc.mlkem768.overhead_ratio``: the median, over repeated interleaved runs in this process,
of the time of ML-KEM-768 encapsulate + decapsulate through ``pqc`` divided by the time of
the same work done directly with pyca/cryptography by a caller holding only bytes
(``MLKEM768PublicKey.from_public_bytes(pk).encapsulate()`` and
``MLKEM768PrivateKey.from_seed_bytes(seed).decapsulate(ct)``). Acceptance: <= 1.05.

``pqc.mlkem768.prepared_overhead_ratio``: the same for a caller holding key objects: encapsulate
through ``pqc`` and decapsulate with a ``pqc`` ``KemPrivateKey``, over pyca's
``encapsulate()`` and ``MLKEM768PrivateKey.decapsulate(ct)`` on a key object (no parsing in the
loop on either side but the peer's public key).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import mlkem

# This script is itself named pqc.py: drop its directory from the import path (Python puts
# it first) so that `import pqc` below finds the library, not this file.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if sys.modules.get("pqc") is sys.modules.get("__main__"):
    del sys.modules["pqc"]

import pqc  # noqa: E402

# Slow to generate (0.1-0.3 s per key pair) and 0.5-1.3 MB keys: only the smallest set runs
# in --quick mode, and key generation is timed with fewer iterations.
_BIG = re.compile(r"Classic-McEliece-(?!348864)")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _rate(operation: Callable[[], object], budget_s: float, repeats: int) -> float:
    """Operations per second: the median over ``repeats`` timed batches of ~budget_s each."""
    start = time.perf_counter()
    operation()
    single = max(time.perf_counter() - start, 1e-7)
    iterations = max(1, int(budget_s / single))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            operation()
        rates.append(iterations / (time.perf_counter() - start))
    return statistics.median(rates)


def _kem_results(quick: bool) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    budget, repeats = (0.02, 3) if quick else (0.1, 5)
    for name in pqc.available_kems():
        if _BIG.match(name) and quick:
            continue
        for provider in pqc.kem_providers(name):
            kem = pqc.kem(name, provider=provider)
            public_key, secret_key = kem.generate_keypair()
            ciphertext = kem.encapsulate(public_key).ciphertext
            prefix = f"pqc.{provider}.{_slug(name)}"
            keygen_budget = budget / 4 if name.startswith("Classic-McEliece") else budget
            operations: tuple[tuple[str, Callable[[], object], float], ...] = (
                ("keygen", kem.generate_keypair, keygen_budget),
                ("encaps", functools.partial(kem.encapsulate, public_key), budget),
                ("decaps", functools.partial(kem.decapsulate, secret_key, ciphertext), budget),
            )
            for op, call, op_budget in operations:
                results.append(
                    {
                        "name": f"{prefix}.{op}_per_s",
                        "value": round(_rate(call, op_budget, repeats), 1),
                        "unit": "ops/s",
                    }
                )
    return results


def _overhead_ratio(quick: bool) -> list[dict[str, Any]]:
    kem = pqc.kem("ML-KEM-768", provider="cryptography")
    public_key, seed = kem.generate_keypair()
    from_public = mlkem.MLKEM768PublicKey.from_public_bytes
    from_seed = mlkem.MLKEM768PrivateKey.from_seed_bytes

    def direct(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            _, ct = from_public(public_key).encapsulate()
            from_seed(seed).decapsulate(ct)
        return time.perf_counter() - start

    def through_pqc(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            enc = kem.encapsulate(public_key)
            kem.decapsulate(seed, enc.ciphertext)
        return time.perf_counter() - start

    pyca_key = from_seed(seed)
    pqc_key = kem.load_private_key(seed)

    def direct_prepared(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            _, ct = from_public(public_key).encapsulate()
            pyca_key.decapsulate(ct)
        return time.perf_counter() - start

    def pqc_prepared(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            pqc_key.decapsulate(kem.encapsulate(public_key).ciphertext)
        return time.perf_counter() - start

    iterations, rounds = (200, 7) if quick else (1000, 21)
    ratios, direct_times, pqc_times = _interleaved(direct, through_pqc, iterations, rounds)
    prepared_ratios, _, _ = _interleaved(direct_prepared, pqc_prepared, iterations, rounds)
    return [
        {
            "name": "pqc.mlkem768.overhead_ratio",
            "value": round(statistics.median(ratios), 4),
            "unit": "ratio",
        },
        {
            "name": "pqc.mlkem768.direct_encaps_decaps_per_s",
            "value": round(iterations / statistics.median(direct_times), 1),
            "unit": "ops/s",
        },
        {
            "name": "pqc.mlkem768.pqc_encaps_decaps_per_s",
            "value": round(iterations / statistics.median(pqc_times), 1),
            "unit": "ops/s",
        },
        {"name": "pqc.mlkem768.overhead_ratio_rounds", "value": rounds, "unit": "count"},
        {
            "name": "pqc.mlkem768.prepared_overhead_ratio",
            "value": round(statistics.median(prepared_ratios), 4),
            "unit": "ratio",
        },
    ]


def _interleaved(
    direct: Callable[[int], float],
    through_pqc: Callable[[int], float],
    iterations: int,
    rounds: int,
) -> tuple[list[float], list[float], list[float]]:
    """Per-round ratios pqc/direct and both times, the two alternating which runs first so
    that drift on a shared machine cancels out."""
    direct(50), through_pqc(50)  # warm up caches and the allocator
    ratios, direct_times, pqc_times = [], [], []
    for index in range(rounds):
        if index % 2:
            t_pqc, t_direct = through_pqc(iterations), direct(iterations)
        else:
            t_direct, t_pqc = direct(iterations), through_pqc(iterations)
        ratios.append(t_pqc / t_direct)
        direct_times.append(t_direct)
        pqc_times.append(t_pqc)
    return ratios, direct_times, pqc_times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--ratio-only", action="store_true", help="only pqc.mlkem768.overhead_ratio"
    )
    args = parser.parse_args(argv)
    results = _overhead_ratio(args.quick)
    if not args.ratio_only:
        results += _kem_results(args.quick)
    json.dump({"results": results}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
