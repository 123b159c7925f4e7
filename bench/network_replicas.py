"""Benchmark: network nodes as replicas on PostgreSQL against the same nodes on SQLite.

Prints one JSON document ``{"results": [...]}``:

- ``net.replicas.pairs_per_s``: enc_keys + dec_keys pairs (one 256-bit key each) per second
  between two adjacent nodes A and B (one hop of relay), each node run as 2 replicas
  (``agile kme serve --network --replica``) on one PostgreSQL server (``TemporaryPostgres``:
  Debian's ``postgresql-15``, a private socket, fsync on); half the load threads ask replica 0
  of A and fetch at replica 1 of B, the other half the other way round, so every pair crosses
  replicas;
- ``net.replicas.vs_sqlite_nodes``: that rate over the same two nodes run as one process each
  on SQLite, measured in the same run the same way (the machines are shared and noisy);
- ``net.replicas.latency_p99_ms``: the 99th percentile of one pair with replicas;
- ``net.replicas.server_cpu_ms_per_pair``: CPU per pair of the four replicas and the
  PostgreSQL server together, and ``net.replicas.sqlite_nodes_cpu_ms_per_pair``, of the two
  SQLite node processes.

The load generator is bench/network.py's (keep-alive mutual-TLS connections, 32 threads).
Without the server binaries the figures are printed with a null value and the reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
# bench/ must not shadow the qkd package (bench/qkd.py): load bench/network.py by path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from qkd.delivery.postgres_server import TemporaryPostgres, find_bindir  # noqa: E402
from qkd.network.launcher import network_status, start_nodes, stop_nodes  # noqa: E402
from qkd.network.nodeconfig import node_replicas  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_network", _HERE / "network.py")
assert _spec is not None
assert _spec.loader is not None
_network = importlib.util.module_from_spec(_spec)
sys.modules["bench_network"] = _network  # its dataclasses look their module up
_spec.loader.exec_module(_network)

PAIR = """[network]
name = "bench-replicas"

[[nodes]]
name = "A"
kind = "trusted"
saes = ["app-a"]

[[nodes]]
name = "B"
kind = "trusted"
saes = ["app-b"]

[[links]]
id = "A-B"
a = "A"
b = "B"
kind = "fixed"
key_rate_bps = 1e8
"""
_POOL_BYTES = 4 << 20
THREADS = _network.RELAY_THREADS


def _pids(state: Path, node: str, replicas: int) -> list[int]:
    here = state / "nodes" / node
    files = [here / "pid"] + [here / f"replica-{i}" / "pid" for i in range(1, replicas)]
    return [int(f.read_text()) for f in files]


def _server_pids(server: TemporaryPostgres) -> list[int]:
    """The PostgreSQL postmaster and its backends (children), for CPU accounting."""
    data = server.socket_dir / "data" / "postmaster.pid"
    postmaster = int(data.read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children")
    try:
        return [postmaster, *map(int, children.read_text().split())]
    except OSError:
        return [postmaster]


def _run(
    directory: Path, seconds: float, url: str | None, server: TemporaryPostgres | None
) -> tuple[float, list[float], float | None]:
    """(pairs/s, latencies, CPU seconds per pair of the nodes and the server) for A - B,
    as 2 replicas per node on ``url`` or, without it, one SQLite process per node."""
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "pair.toml"
    file.write_text(PAIR)
    state = directory / "state"
    replicas = 2 if url else 1
    options: dict[str, Any] = {"routing_period_s": 1.0, "pool_bytes": _POOL_BYTES}
    if url:
        options |= {"store": url, "replicas": replicas}
    try:
        config = start_nodes(file, state, **options)
        deadline = time.monotonic() + 120
        while True:
            doc = network_status(state)
            full = 2 * 8 * _POOL_BYTES
            if all(x["up"] and x["pool_bits"] >= 0.95 * full for x in doc["links"]):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the nodes did not come up: {doc}")
            time.sleep(0.2)
        time.sleep(2.0)  # every replica loads the blocks and sees the link up
        ca = state / "ca.pem"

        def end(node: str, sae: str, replica: int) -> tuple[str, Any, str]:
            address = node_replicas(config["nodes"][node], node)[replica]["etsi014"]
            cert, key = state / "saes" / sae / "cert.pem", state / "saes" / sae / "key.pem"
            return f"https://{address}", _network._sae_context(cert, key, ca), sae

        routes = [(0, replicas - 1), (replicas - 1, 0)]
        pids = _pids(state, "A", replicas) + _pids(state, "B", replicas)
        if server is not None:
            pids += _server_pids(server)
        before = _network._cpu_s(pids)
        counts: list[int] = []
        latencies: list[float] = []
        lock = threading.Lock()

        def drive(master_at: int, slave_at: int) -> None:
            count, mine = _network._pairs(
                end("A", "app-a", master_at), end("B", "app-b", slave_at), seconds, THREADS // 2
            )
            with lock:
                counts.append(count)
                latencies.extend(mine)

        workers = [threading.Thread(target=drive, args=route) for route in routes]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        after = _network._cpu_s(pids)
        total = sum(counts)
        cpu = None if before is None or after is None or not total else (after - before) / total
        return total / seconds, latencies, cpu
    finally:
        stop_nodes(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s per measurement (not 10 s)")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 10.0
    results: list[dict[str, Any]] = []

    def add(name: str, value: float | None, unit: str) -> None:
        results.append({"name": name, "value": value, "unit": unit})

    if find_bindir() is None:
        why = "unavailable: no PostgreSQL server binaries (install postgresql-15)"
        for name in ("pairs_per_s", "vs_sqlite_nodes", "latency_p99_ms",
                     "server_cpu_ms_per_pair", "sqlite_nodes_cpu_ms_per_pair"):  # fmt: skip
            add(f"net.replicas.{name}", None, why)
    else:
        with (
            tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp,
            TemporaryPostgres() as pg,
        ):
            url = pg.create_database("bench")
            rate, latencies, cpu = _run(Path(tmp) / "replicas", seconds, url, pg)
            sqlite_rate, _, sqlite_cpu = _run(Path(tmp) / "sqlite", seconds, None, None)
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else None
        add("net.replicas.pairs_per_s", round(rate, 1),
            f"pairs/s (enc_keys at one replica of A, dec_keys at the other of B, one hop,"
            f" 2 replicas per node on PostgreSQL, {THREADS} threads)")  # fmt: skip
        add("net.replicas.vs_sqlite_nodes", round(rate / sqlite_rate, 3),
            f"x (the same two nodes as one SQLite process each, same run:"
            f" {sqlite_rate:.1f} pairs/s)")  # fmt: skip
        add(
            "net.replicas.latency_p99_ms",
            None if p99 is None else round(p99, 2),
            "ms (one pair with replicas)" if p99 is not None else "unavailable: no pair",
        )
        add("net.replicas.server_cpu_ms_per_pair", None if cpu is None else round(cpu * 1000, 3),
            "ms CPU per pair, the 4 replicas and the PostgreSQL server together")  # fmt: skip
        add("net.replicas.sqlite_nodes_cpu_ms_per_pair",
            None if sqlite_cpu is None else round(sqlite_cpu * 1000, 3),
            "ms CPU per pair, the 2 SQLite node processes together")  # fmt: skip
    json.dump({"results": results}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
