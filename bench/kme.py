"""Benchmark of the local KME pair: master enc_keys + slave dec_keys pairs per second.

Starts ``agile kme serve`` (quick-start config, fresh certificates and stores in a temporary
directory) on 127.0.0.1 as its own process, exactly as a user runs it, then loads it from
separate client processes. A pair is one enc_keys by the master (sae-a at KME A) for one
256-bit key and one dec_keys by the slave (sae-b at KME B) for that key_ID, each over a
keep-alive mutual-TLS connection; the slave's key must equal the master's.

Two load generators, reported separately so that nothing is hidden:

- the **lean generator** (the capacity figures, ``kme.pairs_per_s``): like ``wrk``, it
  measures the server rather than a client library. Each thread holds one keep-alive
  mutual-TLS socket to KME A and one to KME B (stdlib ``ssl``, full certificate and host-name
  verification), sends pre-built request bytes (the dec_keys body is a template into which
  the key_ID is put), reads each answer by its ``Content-Length``, checks the status and
  compares the two keys' bytes. It does not validate answers beyond that. It runs in
  processes (default 2 x 8 threads: 16 pairs in flight), so that one interpreter's GIL does
  not limit it; its own CPU time per pair is reported;
- the **library client** (``kme.client_pairs_per_s``): :class:`qkd.Etsi014Client` over
  httpx, with all of its validation, which is what an application sees.

Results (stable names):

- ``kme.pairs_per_s``: completed pairs per second, lean generator, all connections together;
- ``kme.latency_p50_ms``, ``kme.latency_p99_ms``: latency of one pair (both requests), lean;
- ``kme.client_pairs_per_s``, ``kme.client_latency_p50_ms``: the same with Etsi014Client;
- ``kme.server_cpu_ms_per_pair``: CPU time (user + system) of the ``agile kme serve`` process
  per pair during the lean run, which the machine's other load does not inflate much;
- ``kme.generator_cpu_ms_per_pair``: CPU time of the lean generator's processes per pair;
- ``kme.status_per_s``: status requests per second, lean (HTTPS + JSON, no key store): the
  raw peer of the pair rate;
- ``kme.pair_cost_vs_status``: time of one pair over the time of one status request
  (2.0 would mean the key store adds nothing to the two HTTPS round trips);
- ``kme.sqlite_commits_per_s``: single-row synchronous WAL commits per second on this disk,
  the other raw primitive a pair depends on (a pair needs two durable commits; group commit
  lets concurrent requests share them).

The scale-out store, measured in the same run when PostgreSQL's server binaries and psycopg
are there (``--no-postgres`` skips it): a private PostgreSQL server
(:class:`qkd.delivery.postgres_server.TemporaryPostgres`, fsync on) holds both KMEs' pools,
and two replicas of the pair (two ``agile kme serve`` processes on one configuration) serve
them. The lean generator's processes alternate between the replicas, and each pair crosses
them: enc_keys at one replica's KME A, dec_keys at the other's KME B.

- ``kme.postgres.pairs_per_s``: completed pairs per second over both replicas, lean;
- ``kme.postgres.latency_p50_ms``, ``kme.postgres.latency_p99_ms``: latency of one pair;
- ``kme.postgres.vs_sqlite_pair``: ``kme.postgres.pairs_per_s`` over ``kme.pairs_per_s``;
- ``kme.postgres.server_cpu_ms_per_pair``: CPU time of the two replicas and of the
  PostgreSQL server's processes per pair.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import multiprocessing as mp
import os
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Python puts bench/ first on sys.path, where bench/qkd.py would shadow the qkd package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from qkd.delivery.etsi014 import Etsi014Client  # noqa: E402
from qkd.delivery.kme.certs import write_certificates  # noqa: E402

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _start_pair(
    directory: Path, config: Path | None = None
) -> tuple[subprocess.Popen[str], str, str]:
    command = [sys.executable, "-m", "agile.cli", "kme", "serve", "--json"]
    if config is None:
        command += ["--certs", str(directory), "--listen-a", "127.0.0.1:0"]
        command += ["--listen-b", "127.0.0.1:0"]
    else:
        command += ["--config", str(config)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("agile kme serve did not start")
    addresses = json.loads(line)
    return proc, addresses["kme_a"], addresses["kme_b"]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes (Linux /proc), 0 for those that are gone."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _CLOCK_TICKS


# ------------------------------------------------------------------ the lean generator


class _LeanConnection:
    """One keep-alive mutual-TLS HTTP/1.1 connection that sends pre-built requests."""

    def __init__(self, address: str, context: ssl.SSLContext) -> None:
        host, _, port = address.rpartition(":")
        raw = socket.create_connection((host, int(port)), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.buffer = b""

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request``; return the answer's status and body."""
        self.sock.sendall(request)
        buffer = self.buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += self._recv()
        head = buffer[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length = None
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise SystemExit("the KME answered without Content-Length")
        start = end + 4
        while len(buffer) < start + length:
            buffer += self._recv()
        self.buffer = buffer[start + length :]
        return status, buffer[start : start + length]

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise SystemExit("the KME closed a keep-alive connection")
        return data

    def close(self) -> None:
        self.sock.close()


def _request(method: str, host: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def _in_threads(
    threads: int,
    measure: Callable[[list[float]], None],
    catch: tuple[type[BaseException], ...],
    out: Any,
) -> None:
    """Run ``measure`` in ``threads`` threads and put ``(latencies, failures)`` on ``out``.

    Each thread's ``measure`` appends its latencies to the list it is given; those it took
    before an exception of ``catch`` still count, and the exception is reported to the parent
    as a failed run.
    """
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        mine: list[float] = []
        try:
            measure(mine)
        except catch as exc:
            with lock:
                failures.append(f"{type(exc).__name__}: {exc}")
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    out.put((latencies, failures))


def _lean_worker(
    directory: str,
    address_a: str,
    address_b: str,
    threads: int,
    start_at: float,
    seconds: float,
    mode: str,
    out: Any,
) -> None:
    """One lean generator process: ``threads`` threads, each with one connection per KME.
    Times only [start_at, start_at + seconds] (wall clock), so that no process's start-up
    overlaps another's measurement."""
    certs = Path(directory)
    master_tls = ssl.create_default_context(cafile=certs / "ca.pem")
    master_tls.load_cert_chain(certs / "sae-a.pem", certs / "sae-a.key")
    slave_tls = ssl.create_default_context(cafile=certs / "ca.pem")
    slave_tls.load_cert_chain(certs / "sae-b.pem", certs / "sae-b.key")
    status_request = _request("GET", address_a, "/api/v1/keys/sae-b/status")
    enc_request = _request(
        "POST", address_a, "/api/v1/keys/sae-b/enc_keys", b'{"number":1,"size":256}'
    )
    # Every canonical UUID has 36 characters, so the dec_keys request is one template.
    placeholder = b"-" * 36
    dec_body = b'{"key_IDs":[{"key_ID":"%s"}]}' % placeholder
    dec_head, dec_tail = _request("POST", address_b, "/api/v1/keys/sae-a/dec_keys", dec_body).split(
        placeholder
    )

    def measure(mine: list[float]) -> None:
        master = _LeanConnection(address_a, master_tls)
        slave = _LeanConnection(address_b, slave_tls)
        master.exchange(status_request)
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            begin = time.perf_counter()
            if mode == "pairs":
                status, body = master.exchange(enc_request)
                if status == 503:  # the pool is refilling: not a pair, try again
                    continue
                if status != 200:
                    raise SystemExit(f"enc_keys answered {status}")
                key = json.loads(body)["keys"][0]
                key_id = key["key_ID"].encode("ascii")
                status, body = slave.exchange(dec_head + key_id + dec_tail)
                if status != 200:
                    raise SystemExit(f"dec_keys answered {status}")
                got = json.loads(body)["keys"][0]
                if got["key_ID"] != key["key_ID"] or not hmac.compare_digest(
                    base64.b64decode(got["key"]), base64.b64decode(key["key"])
                ):
                    raise SystemExit("master and slave got different keys")
            else:
                status, _ = master.exchange(status_request)
                if status != 200:
                    raise SystemExit(f"status answered {status}")
            mine.append(time.perf_counter() - begin)
        master.close()
        slave.close()

    _in_threads(threads, measure, (OSError, SystemExit, ValueError, KeyError), out)


# ------------------------------------------------------------------ the library client


def _client_worker(
    directory: str,
    address_a: str,
    address_b: str,
    threads: int,
    start_at: float,
    seconds: float,
    mode: str,
    out: Any,
) -> None:
    """One process of Etsi014Client (httpx) threads; timed like :func:`_lean_worker`."""
    certs = Path(directory)

    def measure(mine: list[float]) -> None:
        master = Etsi014Client(
            f"https://{address_a}",
            peer_sae_id="sae-b",
            cert=certs / "sae-a.pem",
            key=certs / "sae-a.key",
            ca=certs / "ca.pem",
            retries=20,
            timeout=30,
        )
        slave = Etsi014Client(
            f"https://{address_b}",
            peer_sae_id="sae-a",
            cert=certs / "sae-b.pem",
            key=certs / "sae-b.key",
            ca=certs / "ca.pem",
            timeout=30,
        )
        master.status()
        slave.status()
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            begin = time.perf_counter()
            key = master.get_keys(1, 256)[0]
            if slave.get_keys_by_id([key.key_id])[0] != key:
                raise SystemExit("master and slave got different keys")
            mine.append(time.perf_counter() - begin)
        master.close()
        slave.close()

    _in_threads(threads, measure, (Exception, SystemExit), out)


class _Run:
    """Latencies of one measurement and the CPU seconds spent in it."""

    def __init__(self, latencies: list[float], server_cpu: float, generator_cpu: float) -> None:
        self.latencies = latencies
        self.server_cpu = server_cpu
        self.generator_cpu = generator_cpu


def _measure(
    worker: Any,
    server_pids: int | list[int],
    directory: Path,
    address_a: str | list[str],
    address_b: str | list[str],
    procs: int,
    threads: int,
    seconds: float,
    mode: str,
) -> _Run:
    """Run ``procs`` generator processes; process ``i`` sends enc_keys to
    ``address_a[i % n]`` and dec_keys to ``address_b[i % n]`` when lists are given."""
    context = mp.get_context("spawn")
    out = context.Queue()
    servers = server_pids if isinstance(server_pids, list) else [server_pids]
    masters = address_a if isinstance(address_a, list) else [address_a]
    slaves = address_b if isinstance(address_b, list) else [address_b]
    # Spawned interpreters need a moment to import and connect; all start timing together.
    start_at = time.time() + 1.5 + 0.25 * procs + 0.01 * procs * threads
    workers = [
        context.Process(
            target=worker,
            args=(
                str(directory),
                masters[i % len(masters)],
                slaves[i % len(slaves)],
                threads,
                start_at,
                seconds,
                mode,
                out,
            ),
        )
        for i in range(procs)
    ]
    for proc in workers:
        proc.start()
    pids = [p.pid for p in workers if p.pid is not None]
    time.sleep(max(0.0, start_at - time.time()))
    server_before, generator_before = _cpu_seconds(servers), _cpu_seconds(pids)
    time.sleep(max(0.0, start_at + seconds - time.time()))
    server_cpu = _cpu_seconds(servers) - server_before
    generator_cpu = _cpu_seconds(pids) - generator_before
    latencies: list[float] = []
    failures: list[str] = []
    for _ in workers:
        got, failed = out.get()
        latencies.extend(got)
        failures.extend(failed)
    for proc in workers:
        proc.join()
    if failures:
        raise SystemExit(f"{mode} run failed: {failures[0]} ({len(failures)} connection(s))")
    return _Run(latencies, server_cpu, generator_cpu)


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


def _children(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (the PostgreSQL server's backends)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def _postgres_run(directory: Path, args: argparse.Namespace, seconds: float) -> _Run | str:
    """The pairs run over two replicas on one PostgreSQL pool, or why it cannot run here."""
    try:
        from qkd.delivery.postgres_server import TemporaryPostgres, find_bindir
        from qkd.delivery.store_postgres import PostgresKeyStore  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'qkd-agile[postgres]')"
    if find_bindir() is None:
        return "no PostgreSQL server binaries (install Debian's postgresql-15)"
    with TemporaryPostgres() as server:
        url = server.create_database("kme")
        config = directory / "replicas.toml"
        lines = [f'ca = "{directory / "ca.pem"}"']
        for end in ("a", "b"):
            lines += [
                f"[kme.{end}]",
                f'id = "KME-{end.upper()}"',
                'listen = "127.0.0.1:0"',
                f'cert = "{directory / f"kme-{end}.pem"}"',
                f'key = "{directory / f"kme-{end}.key"}"',
                f'store = "{url}"',
            ]
        lines += ["[[link]]", 'name = "a-b"', 'saes_a = ["sae-a"]', 'saes_b = ["sae-b"]']
        config.write_text("\n".join(lines) + "\n")
        replicas = [_start_pair(directory, config) for _ in range(2)]
        try:
            _wait_for_pool(directory, replicas[0][1], 4096)
            postmaster = int((server.socket_dir / "data" / "postmaster.pid").read_text().split()[0])
            pids = [r[0].pid for r in replicas] + [postmaster, *_children(postmaster)]
            return _measure(
                _lean_worker,
                pids,
                directory,
                [replicas[0][1], replicas[1][1]],
                [replicas[1][2], replicas[0][2]],
                args.procs,
                args.threads,
                seconds,
                "pairs",
            )
        finally:
            for proc, _, _ in replicas:
                proc.terminate()
                proc.wait(timeout=30)


def _wait_for_pool(directory: Path, address_a: str, count: int) -> None:
    """Wait until the (leader's) feeder has filled ``count`` keys for sae-a's direction."""
    with Etsi014Client(
        f"https://{address_a}",
        peer_sae_id="sae-b",
        cert=directory / "sae-a.pem",
        key=directory / "sae-a.key",
        ca=directory / "ca.pem",
    ) as client:
        deadline = time.monotonic() + 60
        while client.status().stored_key_count < count:
            if time.monotonic() > deadline:
                raise SystemExit("the replicas' feeder did not fill the pool in 60 s")
            time.sleep(0.1)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--procs", type=int, default=2, help="lean generator processes")
    parser.add_argument(
        "--threads", type=int, default=8, help="lean generator threads (connection pairs) each"
    )
    parser.add_argument("--client-procs", type=int, default=2, help="Etsi014Client processes")
    parser.add_argument("--client-threads", type=int, default=8, help="Etsi014Client threads each")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per measurement")
    parser.add_argument(
        "--no-postgres", action="store_true", help="skip the PostgreSQL replicas' figures"
    )
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 6.0)
    with tempfile.TemporaryDirectory(prefix="bench-kme-") as tmp:
        directory = Path(tmp)
        write_certificates(directory)
        commits = _sqlite_commits_per_s(directory, 200 if args.quick else 1000)
        server, address_a, address_b = _start_pair(directory)
        lean = (server.pid, directory, address_a, address_b, args.procs, args.threads, seconds)
        try:
            time.sleep(0.5)
            status = _measure(_lean_worker, *lean, "status")
            pairs = _measure(_lean_worker, *lean, "pairs")
            client = _measure(
                _client_worker,
                server.pid,
                directory,
                address_a,
                address_b,
                args.client_procs,
                args.client_threads,
                seconds,
                "pairs",
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
        replicated = None if args.no_postgres else _postgres_run(directory, args, seconds)
    if not pairs.latencies or not client.latencies or not status.latencies:
        raise SystemExit("a run completed no requests; is the machine overloaded?")
    pairs_per_s = len(pairs.latencies) / seconds
    status_per_s = len(status.latencies) / seconds
    results = [
        {"name": "kme.pairs_per_s", "value": round(pairs_per_s, 1), "unit": "pairs/s"},
        {
            "name": "kme.latency_p50_ms",
            "value": round(1000 * statistics.median(pairs.latencies), 3),
            "unit": "ms",
        },
        {
            "name": "kme.latency_p99_ms",
            "value": round(1000 * _percentile(pairs.latencies, 0.99), 3),
            "unit": "ms",
        },
        {
            "name": "kme.client_pairs_per_s",
            "value": round(len(client.latencies) / seconds, 1),
            "unit": "pairs/s",
        },
        {
            "name": "kme.client_latency_p50_ms",
            "value": round(1000 * statistics.median(client.latencies), 3),
            "unit": "ms",
        },
        {
            "name": "kme.server_cpu_ms_per_pair",
            "value": round(1000 * pairs.server_cpu / len(pairs.latencies), 3),
            "unit": "ms",
        },
        {
            "name": "kme.generator_cpu_ms_per_pair",
            "value": round(1000 * pairs.generator_cpu / len(pairs.latencies), 3),
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
    if isinstance(replicated, str):
        print(f"bench/kme.py: PostgreSQL figures skipped: {replicated}", file=sys.stderr)
    elif replicated is not None:
        if not replicated.latencies:
            raise SystemExit("the PostgreSQL run completed no pairs; is the machine overloaded?")
        pg_per_s = len(replicated.latencies) / seconds
        results += [
            {"name": "kme.postgres.pairs_per_s", "value": round(pg_per_s, 1), "unit": "pairs/s"},
            {
                "name": "kme.postgres.latency_p50_ms",
                "value": round(1000 * statistics.median(replicated.latencies), 3),
                "unit": "ms",
            },
            {
                "name": "kme.postgres.latency_p99_ms",
                "value": round(1000 * _percentile(replicated.latencies, 0.99), 3),
                "unit": "ms",
            },
            {
                "name": "kme.postgres.vs_sqlite_pair",
                "value": round(pg_per_s / pairs_per_s, 3),
                "unit": "ratio",
            },
            {
                "name": "kme.postgres.server_cpu_ms_per_pair",
                "value": round(1000 * replicated.server_cpu / len(replicated.latencies), 3),
                "unit": "ms",
            },
        ]
    json.dump({"results": results}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
