"""``bench/network_replicas.py`` prints DESIGN.md's form with its stable names.

Only the form and the names are checked (with --quick): timings do not belong in tests.
Slow (it starts a PostgreSQL server and six node processes): ``make test-slow`` runs it.
"""

from __future__ import annotations

import math

import pytest
from bench_form import run_bench

from qkd.delivery.postgres_server import find_bindir


@pytest.mark.slow
def test_replica_bench_prints_its_stable_names() -> None:
    pytest.importorskip("psycopg", reason="psycopg (the postgres extra) is not installed")
    results = {r["name"]: r for r in run_bench("network_replicas.py", "--quick")}
    assert set(results) == {
        "net.replicas.pairs_per_s",
        "net.replicas.vs_sqlite_nodes",
        "net.replicas.latency_p99_ms",
        "net.replicas.server_cpu_ms_per_pair",
        "net.replicas.sqlite_nodes_cpu_ms_per_pair",
    }
    for result in results.values():
        if find_bindir() is None:
            assert result["value"] is None
            continue
        assert isinstance(result["value"], int | float)
        assert math.isfinite(result["value"])
        assert result["value"] > 0
