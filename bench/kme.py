"""Benchmark of the local KME pair: master enc_keys + slave dec_keys pairs per second.

Starts ``agile kme serve`` (quick-start config, fresh certificates and stores in a temporary
directory) on 127.0.0.1, then runs client processes, each with several threads; every thread
keeps one keep-alive mutual-TLS connection to KME A (as sae-a, master) and one to KME B (as
sae-b, slave) and repeats: enc_keys for one 256-bit key, dec_keys for that key_ID.

Results (stable names):
- ``kme.pairs_per_s``: completed pairs per second, all clients together;
- ``kme.latency_p50_ms``, ``kme.latency_p99_ms``: latency of one pair (both requests);
- ``kme.status_per_s``: status requests per second on the same connections (HTTPS + JSON,
  no key store), the raw peer of the pair rate;
- ``kme.pair_cost_vs_status``: time of one pair over the time of one status request
  (2.0 would mean the key store adds nothing to the two HTTPS round trips);
- ``kme.sqlite_commits_per_s``: single-row synchronous WAL commits per second on this disk,
  the other raw primitive a pair depends on (each pair needs two durable commits unless they
  are grouped).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Python puts bench/ first on sys.path, where bench/qkd.py would shadow the qkd package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from qkd.etsi014 import Etsi014Client  # noqa: E402
from qkd.kme.certs import write_certificates  # noqa: E402


def _start_pair(directory: Path) -> tuple[subprocess.Popen[str], str, str]:
    command = [
        sys.executable,
        "-m",
        "agile.cli",
        "kme",
        "serve",
        "--certs",
        str(directory),
        "--listen-a",
        "127.0.0.1:0",
        "--listen-b",
        "127.0.0.1:0",
        "--json",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("agile kme serve did not start")
    addresses = json.loads(line)
    return proc, f"https://{addresses['kme_a']}", f"https://{addresses['kme_b']}"


def _clients(directory: Path, url_a: str, url_b: str) -> tuple[Etsi014Client, Etsi014Client]:
    master = Etsi014Client(
        url_a,
        peer_sae_id="sae-b",
        cert=directory / "sae-a.pem",
        key=directory / "sae-a.key",
        ca=directory / "ca.pem",
        retries=20,
        timeout=30,
    )
    slave = Etsi014Client(
        url_b,
        peer_sae_id="sae-a",
        cert=directory / "sae-b.pem",
        key=directory / "sae-b.key",
        ca=directory / "ca.pem",
        timeout=30,
    )
    return master, slave


def _worker(
    directory: str,
    url_a: str,
    url_b: str,
    threads: int,
    start_at: float,
    seconds: float,
    mode: str,
    out: Any,
) -> None:
    """One client process; times only [start_at, start_at + seconds] (wall clock), so that
    no process's start-up overlaps another's measurement."""
    latencies: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        master, slave = _clients(Path(directory), url_a, url_b)
        master.status()
        slave.status()
        mine: list[float] = []
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            begin = time.perf_counter()
            if mode == "pairs":
                key = master.get_keys(1, 256)[0]
                got = slave.get_keys_by_id([key.key_id])[0]
                if got != key:
                    raise SystemExit("master and slave got different bytes")
            else:
                master.status()
            mine.append(time.perf_counter() - begin)
        master.close()
        slave.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    out.put(latencies)


def _measure(
    directory: Path, url_a: str, url_b: str, procs: int, threads: int, seconds: float, mode: str
) -> list[float]:
    context = mp.get_context("spawn")
    out = context.Queue()
    # Spawned interpreters need a moment to import; they all start timing together.
    start_at = time.time() + 1.5 + 0.25 * procs
    workers = [
        context.Process(
            target=_worker,
            args=(str(directory), url_a, url_b, threads, start_at, seconds, mode, out),
        )
        for _ in range(procs)
    ]
    for proc in workers:
        proc.start()
    latencies: list[float] = []
    for _ in workers:
        latencies.extend(out.get())
    for proc in workers:
        proc.join()
    return latencies


def _sqlite_commits_per_s(directory: Path, count: int) -> float:
    db = sqlite3.connect(directory / "raw.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE t (v BLOB)")
    begin = time.perf_counter()
    for _ in range(count):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", (os.urandom(32),))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - begin
    db.close()
    return count / elapsed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per client process")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per measurement")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 6.0)
    with tempfile.TemporaryDirectory(prefix="bench-kme-") as tmp:
        directory = Path(tmp)
        write_certificates(directory)
        commits = _sqlite_commits_per_s(directory, 200 if args.quick else 1000)
        server, url_a, url_b = _start_pair(directory)
        try:
            time.sleep(0.5)
            status = _measure(directory, url_a, url_b, args.procs, args.threads, seconds, "status")
            pairs = _measure(directory, url_a, url_b, args.procs, args.threads, seconds, "pairs")
        finally:
            server.terminate()
            server.wait(timeout=30)
    pairs_per_s = len(pairs) / seconds
    status_per_s = len(status) / seconds
    results = [
        {"name": "kme.pairs_per_s", "value": round(pairs_per_s, 1), "unit": "pairs/s"},
        {
            "name": "kme.latency_p50_ms",
            "value": round(1000 * statistics.median(pairs), 3),
            "unit": "ms",
        },
        {
            "name": "kme.latency_p99_ms",
            "value": round(1000 * _percentile(pairs, 0.99), 3),
            "unit": "ms",
        },
        {"name": "kme.status_per_s", "value": round(status_per_s, 1), "unit": "requests/s"},
        {
            "name": "kme.pair_cost_vs_status",
            "value": round(status_per_s / pairs_per_s, 3),
            "unit": "ratio",
        },
        {"name": "kme.sqlite_commits_per_s", "value": round(commits, 1), "unit": "commits/s"},
    ]
    json.dump({"results": results}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
