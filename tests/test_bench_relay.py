"""``bench/network.py --relay-only`` prints DESIGN.md's form with the names issue 15 asks for.

Only the form and the names are checked (with --quick): timings do not belong in tests.
"""

from __future__ import annotations

import math

from bench_form import run_bench


def test_relay_bench_prints_its_stable_names() -> None:
    results = {r["name"]: r for r in run_bench("network.py", "--relay-only", "--quick")}
    assert set(results) == {
        "net.relay.pairs_per_s",
        "net.relay.vs_direct_pair",
        "net.relay.latency_p99_ms",
        # the profile behind the ratio: CPU per pair of the chain, its busiest node, the pair
        "net.relay.server_cpu_ms_per_pair",
        "net.relay.busiest_node_cpu_ms_per_pair",
        "net.relay.direct_pair_cpu_ms_per_pair",
        # and of the load generator, which shares the cores, against each
        "net.relay.generator_cpu_ms_per_pair",
        "net.relay.direct_generator_cpu_ms_per_pair",
    }
    for result in results.values():
        assert isinstance(result["value"], int | float)
        assert math.isfinite(result["value"])
        assert result["value"] > 0
