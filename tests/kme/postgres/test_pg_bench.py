"""bench/kme.py measures the PostgreSQL replicas beside the SQLite pair, in DESIGN.md's form."""

from __future__ import annotations

from bench_form import run_bench

from qkd.delivery.postgres_server import TemporaryPostgres


def test_the_kme_bench_reports_the_postgres_replicas(postgres_server: TemporaryPostgres) -> None:
    # The fixture only makes sure a server can run here; the bench starts its own.
    results = run_bench(
        "kme.py",
        "--quick",
        "--seconds",
        "1",
        "--procs",
        "1",
        "--threads",
        "2",
        "--client-procs",
        "1",
        "--client-threads",
        "1",
    )
    values = {r["name"]: r["value"] for r in results}
    for name in (
        "kme.pairs_per_s",
        "kme.postgres.pairs_per_s",
        "kme.postgres.latency_p50_ms",
        "kme.postgres.latency_p99_ms",
        "kme.postgres.vs_sqlite_pair",
        "kme.postgres.server_cpu_ms_per_pair",
    ):
        assert values[name] > 0, name
    ratio = values["kme.postgres.pairs_per_s"] / values["kme.pairs_per_s"]
    assert abs(values["kme.postgres.vs_sqlite_pair"] - ratio) < 0.01
