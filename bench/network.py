"""Benchmarks of the network planner and the repeater-chain Monte Carlo.

Prints one JSON document ``{"results": [...]}``:

- ``net.plan.seconds.N`` for generated networks of N = 100, 1,000 and 10,000 nodes (the whole
  plan: link rates, per-demand max-flow and paths, the multi-commodity LP with its bottleneck
  check, and the single-failure analysis), and ``net.plan.growth_exponent``, the slope of
  log(seconds) against log(N) fitted over those sizes;
- ``net.plan.vs_one_max_flow.N``: the plan's time over one networkx max-flow on the same
  graph, timed in the same run (the machines are shared and noisy);
- ``net.simulate.sim_seconds_per_s``: simulated seconds per wall-clock second when
  :func:`~qkd.network.simulation.simulate_network` steps the example backbone
  (docs/networks/backbone.toml: 34 links, 4 demands over up to 33 hops) through one day in
  1-second steps, with a 10-minute failure of one hop every hour (48 routing epochs); the
  link rates are computed once beforehand and not timed;
- ``qkd.repeater.mc_chains_per_s``: delivered end-to-end pairs simulated per second for an
  8-segment chain, and ``qkd.repeater.mc_vs_numpy_geometric``: that time over one
  ``rng.geometric`` call drawing the same number of link attempts;
- ``qkd.repeater.vs_sequence``: for the same 8-segment chain, the wall-clock time that SeQUeNCe
  needs to estimate the mean slots per delivered pair (the inverse of the entanglement rate) to
  a 1% standard error, over the time ``qkd.physics.repeater.simulate_chains`` needs for the same
  precision, both measured in this run; beside it both times
  (``qkd.repeater.sequence_seconds_to_1pct``, ``qkd.repeater.mc_seconds_to_1pct``) and both
  rate estimates (``qkd.repeater.sequence_pairs_per_slot``, ``qkd.repeater.mc_pairs_per_slot``).
  SeQUeNCe runs in a venv of its own (``make bench-sequence`` creates ``.venv-sequence``, or
  ``QKD_SEQUENCE_PYTHON`` names a Python that has it) through ``bench/_sequence_chain.py``, whose
  docstring says exactly what it simulates. Without it the ratio is reported with a null value
  and the reason in its unit.

``--plan-only`` prints the ``net.plan.*`` figures alone; ``--repeater-only`` the repeater ones.

The generated networks: N nodes uniform in a 1,000 km square, each joined to its 3 nearest
neighbours by a fixed-rate link whose rate falls with length like fibre (0.2 dB/km from
1 Mbit/s), 20 of the nodes endpoints, 10 demands between endpoints at a quarter of their
max-flow. The seed is fixed, so every run plans the same networks.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

# This script is bench/network.py; drop bench/ from sys.path as bench/qkd.py does.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402

from qkd.network.events import LinkEvent  # noqa: E402
from qkd.network.loader import load_network, network_from_dict  # noqa: E402
from qkd.network.model import Network  # noqa: E402
from qkd.network.planner import capacities, link_rates, max_flow, plan  # noqa: E402
from qkd.network.simulation import simulate_network  # noqa: E402
from qkd.physics.repeater import ChainParameters, ChainResult, simulate_chains  # noqa: E402

# The precision both simulators must reach, as standard error over mean (slots per pair).
_TARGET = 0.01
_SEQUENCE_SCRIPT = _HERE / "_sequence_chain.py"
_SEQUENCE_VENV_PYTHON = _HERE.parent / ".venv-sequence" / "bin" / "python"

BACKBONE = _HERE.parent / "docs" / "networks" / "backbone.toml"


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@dataclass
class _Pooled:
    """Mean and spread of slots per pair over several runs (Chan et al.'s pairwise update)."""

    count: int = 0
    mean: float = 0.0
    squares: float = 0.0  # sum of squared deviations from the mean

    def add(self, result: ChainResult) -> None:
        n, mean = result.chains, result.mean_slots
        squares = (result.stderr_slots * math.sqrt(n)) ** 2 * (n - 1)
        total = self.count + n
        delta = mean - self.mean
        self.squares += squares + delta**2 * self.count * n / total
        self.mean += delta * n / total
        self.count = total

    @property
    def stderr(self) -> float:
        return math.sqrt(self.squares / (self.count - 1) / self.count)


def _mc_to_target(chain: ChainParameters, rng: np.random.Generator) -> tuple[float, _Pooled]:
    """Seconds for ``simulate_chains`` to reach ``_TARGET``.

    A pilot run sizes the next; runs are pooled, never redrawn, until the pooled standard error
    is small enough. Redrawing until one run passes would favour samples of low spread, and so
    (the waiting time being skewed) of low mean: a bias of one or two standard errors.
    """
    start = time.perf_counter()
    pooled = _Pooled()
    chains = 1000
    while True:
        pooled.add(simulate_chains(chain, chains=chains, rng=rng))
        if pooled.stderr <= _TARGET * pooled.mean:
            return time.perf_counter() - start, pooled
        spread = pooled.stderr * math.sqrt(pooled.count) / pooled.mean
        chains = max(1000, math.ceil(1.05 * (spread / _TARGET) ** 2) - pooled.count)


def _sequence_python() -> Path | None:
    named = os.environ.get("QKD_SEQUENCE_PYTHON")
    if named:
        return Path(named)
    return _SEQUENCE_VENV_PYTHON if _SEQUENCE_VENV_PYTHON.exists() else None


def _sequence_to_target(chain: ChainParameters, cap_s: float) -> dict[str, Any] | str:
    """SeQUeNCe's figures for the same chain, or the reason it could not run."""
    python = _sequence_python()
    if python is None:
        return "SeQUeNCe not installed (make bench-sequence creates .venv-sequence)"
    command = [
        str(python),
        str(_SEQUENCE_SCRIPT),
        f"--segments={chain.segments}",
        f"--link-success={chain.link_success}",
        f"--swap-success={chain.swap_success}",
        f"--target={_TARGET}",
        f"--cap-s={cap_s}",
    ]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=cap_s + 120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"SeQUeNCe run failed ({exc})"
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"SeQUeNCe run exited {proc.returncode}: {tail[0]}"
    try:
        figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return "SeQUeNCe run printed no JSON"
    return figures


def generate(n: int, seed: int = 1) -> Network:
    """A random geometric network of ``n`` nodes (see the module docstring)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1000, size=(n, 2))
    _, neighbours = cKDTree(xy).query(xy, k=4)
    endpoints = set(rng.choice(n, size=min(20, n // 2), replace=False).tolist())
    nodes = [
        {"name": f"n{i}", "kind": "endpoint" if i in endpoints else "trusted"} for i in range(n)
    ]
    seen: set[tuple[int, int]] = set()
    links = []
    for i in range(n):
        for j in neighbours[i, 1:]:
            a, b = sorted((i, int(j)))
            if (a, b) in seen or (a in endpoints and b in endpoints):
                continue
            seen.add((a, b))
            km = float(np.hypot(*(xy[a] - xy[b])))
            links.append(
                {
                    "id": f"n{a}-n{b}",
                    "a": f"n{a}",
                    "b": f"n{b}",
                    "kind": "fixed",
                    "key_rate_bps": 1e6 * 10 ** (-0.02 * km),
                }
            )
    ends = sorted(endpoints)
    pairs = [(ends[2 * k], ends[2 * k + 1]) for k in range(min(10, len(ends) // 2))]
    draft = network_from_dict(
        {"network": {"name": f"generated-{n}"}, "nodes": nodes, "links": links, "demands": []}
    )
    caps = capacities(link_rates(draft))
    relays = {node["name"] for node in nodes if node["kind"] == "trusted"}
    demands = []
    for a, b in pairs:
        s, t = f"n{a}", f"n{b}"
        rate = max_flow(caps, relays | {s, t}, s, t)
        if rate > 0:
            demands.append({"from": s, "to": t, "rate_bps": rate / 4})
    return network_from_dict(
        {"network": {"name": f"generated-{n}"}, "nodes": nodes, "links": links, "demands": demands}
    )


def _compare_with_sequence(
    chain: ChainParameters,
    rng: np.random.Generator,
    results: list[dict[str, Any]],
    *,
    repeat: int,
    cap_s: float,
) -> None:
    """Append ``qkd.repeater.vs_sequence`` and its figures (see the module docstring)."""
    what = (
        f"{chain.segments} segments, P={chain.link_success}, Q={chain.swap_success}, "
        f"time to {_TARGET:.0%} stderr on mean slots per pair"
    )
    theirs = _sequence_to_target(chain, cap_s)
    if isinstance(theirs, str):
        results.append(
            {"name": "qkd.repeater.vs_sequence", "value": None, "unit": f"unavailable: {theirs}"}
        )
        return
    best = float("inf")
    ours: _Pooled | None = None
    for _ in range(repeat):
        seconds, result = _mc_to_target(chain, rng)
        if seconds < best:
            best, ours = seconds, result
    assert ours is not None
    version = theirs["sequence_version"]
    their_seconds = float(theirs["seconds_to_target"])
    how = (
        "measured"
        if theirs["reached_target"]
        else f"extrapolated as 1/sqrt(n) from {theirs['seconds']:.0f} s "
        f"at {theirs['stderr_slots'] / theirs['mean_slots']:.2%}"
    )
    closed = 1.0 / chain.mean_slots

    def rate(name: str, mean: float, stderr: float, pairs: int) -> None:
        results.append(
            {
                "name": name,
                "value": 1.0 / mean,
                "unit": f"pairs/slot (stderr {stderr / mean**2:.2g}, {pairs} pairs; "
                f"closed form {closed:.6g})",
            }
        )

    results += [
        {
            "name": "qkd.repeater.vs_sequence",
            "value": their_seconds / best,
            "unit": f"x (SeQUeNCe {version} time / ours; {what}; SeQUeNCe {how})",
        },
        {
            "name": "qkd.repeater.sequence_seconds_to_1pct",
            "value": their_seconds,
            "unit": f"s (SeQUeNCe {version}: event per attempt, qubits in its ket manager, "
            f"end fidelity {theirs['mean_fidelity']:.6f}; {how})",
        },
        {
            "name": "qkd.repeater.mc_seconds_to_1pct",
            "value": best,
            "unit": "s (qkd.physics.repeater.simulate_chains, pilot run included)",
        },
    ]
    rate(
        "qkd.repeater.sequence_pairs_per_slot",
        float(theirs["mean_slots"]),
        float(theirs["stderr_slots"]),
        int(theirs["pairs"]),
    )
    rate("qkd.repeater.mc_pairs_per_slot", ours.mean, ours.stderr, ours.count)


def _plan_figures(
    sizes: tuple[int, ...], repeat: int, add: Callable[[str, float, str], None]
) -> None:
    """``net.plan.*``: the plan's time per size, over one max-flow, and its growth exponent."""
    seconds = []
    for n in sizes:
        network = generate(n)
        t_plan = _best(partial(plan, network), 1 if n >= 10_000 else repeat)
        caps = capacities(link_rates(network))
        relays = {node.name for node in network.nodes if node.kind != "endpoint"}
        d = network.demands[0]
        allowed = relays | {d.from_, d.to}
        t_flow = _best(partial(max_flow, caps, allowed, d.from_, d.to), repeat)
        seconds.append(t_plan)
        add(f"net.plan.seconds.{n}", t_plan, f"s ({len(network.links)} links, "
            f"{len(network.demands)} demands)")  # fmt: skip
        add(f"net.plan.vs_one_max_flow.{n}", t_plan / t_flow, "x (one max-flow, same graph)")
    slope = float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])
    add("net.plan.growth_exponent", slope, f"seconds ~ N^k, fitted over N = {list(sizes)}")


# ----------------------------------------------------------------------------- key relay
#
# net.relay.*: a 5-node chain (4 hops) of `agile kme serve --network` processes, started
# by qkd.network.launcher exactly as `agile net up` does, against the local KME pair
# (`agile kme serve`, one process) in the same run. A pair is one enc_keys by the master
# SAE (one 256-bit key) and one dec_keys by the slave SAE for its key_ID, over keep-alive
# mutual-TLS connections, from RELAY_THREADS threads of this process; the slave's key must
# equal the master's. Over the chain, enc_keys returns only once the last node holds the
# key durably, so a pair includes the relay over the 4 hops.

RELAY_THREADS = 32
_CHAIN_NODES = ("N0", "N1", "N2", "N3", "N4")
_POOL_BYTES = 4 << 20


class _Lean:
    """One keep-alive mutual-TLS HTTP/1.1 connection sending pre-built requests."""

    def __init__(self, url: str, context: Any) -> None:
        import socket

        host, _, port = url.removeprefix("https://").rpartition(":")
        raw = socket.create_connection((host, int(port)), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"{host}:{port}"
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.buffer = b""

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        buffer = self.buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += self._recv()
        lines = buffer[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            int(v) for n, _, v in (x.partition(":") for x in lines[1:])
            if n.strip().lower() == "content-length"
        )  # fmt: skip
        while len(buffer) < end + 4 + length:
            buffer += self._recv()
        self.buffer = buffer[end + 4 + length :]
        return status, json.loads(buffer[end + 4 : end + 4 + length])

    def _recv(self) -> bytes:
        data: bytes = self.sock.recv(65536)
        if not data:
            raise SystemExit("a KME closed a keep-alive connection")
        return data

    def close(self) -> None:
        self.sock.close()


def _pairs(
    master: tuple[str, Any, str],
    slave: tuple[str, Any, str],
    seconds: float,
    threads: int = RELAY_THREADS,
) -> tuple[int, list[float]]:
    """Pairs completed in ``seconds`` and their latencies; (url, TLS context, SAE) per end."""
    import threading

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start_at = time.monotonic() + 0.5

    def run() -> None:
        m = _Lean(master[0], master[1])
        s = _Lean(slave[0], slave[1])
        mine: list[float] = []
        enc_path = f"/api/v1/keys/{slave[2]}/enc_keys"
        dec_path = f"/api/v1/keys/{master[2]}/dec_keys"
        try:
            while time.monotonic() < start_at:
                time.sleep(0.001)
            while time.monotonic() < start_at + seconds:
                begin = time.perf_counter()
                status, doc = m.post(enc_path, b'{"number":1,"size":256}')
                if status == 503:  # the pools are refilling: not a pair
                    time.sleep(0.005)
                    continue
                if status != 200:
                    raise SystemExit(f"enc_keys answered {status}: {doc}")
                key = doc["keys"][0]
                body = json.dumps({"key_IDs": [{"key_ID": key["key_ID"]}]}).encode()
                status, got = s.post(dec_path, body)
                if status != 200 or got["keys"][0]["key"] != key["key"]:
                    raise SystemExit(f"dec_keys answered {status} or another key")
                mine.append(time.perf_counter() - begin)
        except (OSError, SystemExit, KeyError, ValueError) as exc:
            with lock:
                failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            m.close()
            s.close()
            with lock:
                latencies.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(f"relay bench failed: {failures[0]}")
    return len(latencies), latencies


def _sae_context(cert: Path, key: Path, ca: Path) -> Any:
    import ssl

    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    return context


def _cpu_s(pids: list[int]) -> float | None:
    """User + system CPU seconds of these processes so far (Linux /proc), or None."""
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


def _measured_pairs(
    master: tuple[str, Any, str], slave: tuple[str, Any, str], seconds: float, pids: list[int]
) -> tuple[int, list[float], list[float | None]]:
    """:func:`_pairs`, and the CPU seconds per pair meanwhile: each of ``pids``, then this
    process (the load generator) last."""
    before = [_cpu_s([pid]) for pid in [*pids, os.getpid()]]
    count, latencies = _pairs(master, slave, seconds)
    after = [_cpu_s([pid]) for pid in [*pids, os.getpid()]]
    per_pair = [
        None if a is None or b is None or not count else (a - b) / count
        for a, b in zip(after, before, strict=True)
    ]
    return count, latencies, per_pair


def _direct_pair_rate(directory: Path, seconds: float) -> tuple[float, float | None, float | None]:
    from qkd.delivery.kme.certs import write_certificates

    directory.mkdir(parents=True, exist_ok=True)
    write_certificates(directory)
    command = [sys.executable, "-m", "agile.cli", "kme", "serve", "--certs", str(directory),
               "--listen-a", "127.0.0.1:0", "--listen-b", "127.0.0.1:0", "--json"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        addresses = json.loads(proc.stdout.readline())
        ca = directory / "ca.pem"
        master = (
            f"https://{addresses['kme_a']}",
            _sae_context(directory / "sae-a.pem", directory / "sae-a.key", ca),
            "sae-a",
        )
        slave_tls = _sae_context(directory / "sae-b.pem", directory / "sae-b.key", ca)
        slave = (f"https://{addresses['kme_b']}", slave_tls, "sae-b")
        time.sleep(1.0)  # let the pools fill
        count, _, (cpu, generator) = _measured_pairs(master, slave, seconds, [proc.pid])
        return count / seconds, cpu, generator
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def _relay_chain_rate(
    directory: Path, seconds: float
) -> tuple[float, list[float], list[float | None]]:
    from qkd.network.launcher import network_status, start_nodes, stop_nodes

    lines = ['[network]\nname = "bench-chain"\n']
    for i, name in enumerate(_CHAIN_NODES):
        saes = '["app-0"]' if i == 0 else '["app-4"]' if i == len(_CHAIN_NODES) - 1 else "[]"
        lines.append(f'[[nodes]]\nname = "{name}"\nkind = "trusted"\nsaes = {saes}\n')
    for a, b in itertools.pairwise(_CHAIN_NODES):
        lines.append(f'[[links]]\nid = "{a}-{b}"\na = "{a}"\nb = "{b}"\nkind = "fixed"\n'
                     "key_rate_bps = 1e8\n")  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "chain.toml"
    file.write_text("\n".join(lines))
    state = directory / "state"
    try:
        config = start_nodes(file, state, routing_period_s=1.0, pool_bytes=_POOL_BYTES)
        # Measure the steady state: wait until every link's pools (both directions) are
        # nearly full, so that the initial fill does not run during the measurement.
        full_bits = 2 * 8 * _POOL_BYTES
        deadline = time.monotonic() + 120
        while True:
            doc = network_status(state)
            if all(x["up"] and x["pool_bits"] >= 0.95 * full_bits for x in doc["links"]):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"the chain did not come up: {doc}")
            time.sleep(0.2)
        ca = state / "ca.pem"
        first, last = _CHAIN_NODES[0], _CHAIN_NODES[-1]
        master = (
            f"https://{config['nodes'][first]['etsi014']}",
            _sae_context(state / "saes/app-0/cert.pem", state / "saes/app-0/key.pem", ca),
            "app-0",
        )
        slave = (f"https://{config['nodes'][last]['etsi014']}",
                 _sae_context(state / "saes/app-4/cert.pem", state / "saes/app-4/key.pem", ca),
                 "app-4")  # fmt: skip
        pids = [int((state / "nodes" / name / "pid").read_text()) for name in _CHAIN_NODES]
        count, latencies, cpu = _measured_pairs(master, slave, seconds, pids)
        return count / seconds, latencies, cpu
    finally:
        stop_nodes(state)


def _relay_figures(quick: bool, add: Callable[[str, float | None, str], None]) -> None:
    """net.relay.pairs_per_s, net.relay.vs_direct_pair and net.relay.latency_p99_ms."""
    import tempfile

    seconds = 3.0 if quick else 10.0
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        relay_rate, latencies, cpu = _relay_chain_rate(Path(tmp) / "chain", seconds)
        direct_rate, direct_cpu, direct_generator = _direct_pair_rate(Path(tmp) / "pair", seconds)
    node_cpu, generator = cpu[:-1], cpu[-1]
    add("net.relay.pairs_per_s", round(relay_rate, 1),
        f"pairs/s (enc_keys + dec_keys, 256-bit keys, relayed over a 4-hop chain of 5 KME"
        f" processes, {RELAY_THREADS} threads)")  # fmt: skip
    add("net.relay.vs_direct_pair", round(relay_rate / direct_rate, 3),
        f"x (the local KME pair in the same run: {direct_rate:.1f} pairs/s)")  # fmt: skip
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000 if ordered else None
    unit = "ms (one pair over the 4-hop chain)" if p99 is not None else "unavailable: no pair"
    add("net.relay.latency_p99_ms", None if p99 is None else round(p99, 2), unit)
    # The profile behind the ratio: CPU per pair of each process. On one host the chain's five
    # processes share its cores; on one host per node a chain is bounded by its busiest node.
    known = [c for c in node_cpu if c is not None]
    whole = round(sum(known) * 1000, 3) if len(known) == len(node_cpu) else None
    busiest = round(max(known) * 1000, 3) if known else None
    add("net.relay.server_cpu_ms_per_pair", whole,
        "ms CPU per pair, the 5 KME processes of the chain together")  # fmt: skip
    add("net.relay.busiest_node_cpu_ms_per_pair", busiest,
        "ms CPU per pair of the chain's busiest KME process")  # fmt: skip
    add("net.relay.direct_pair_cpu_ms_per_pair",
        None if direct_cpu is None else round(direct_cpu * 1000, 3),
        "ms CPU per pair of the direct pair's one process (both KMEs)")  # fmt: skip
    # The load generator shares the two cores too: its CPU per pair against each.
    add("net.relay.generator_cpu_ms_per_pair",
        None if generator is None else round(generator * 1000, 3),
        "ms CPU per pair of the load generator (this process) against the chain")  # fmt: skip
    add("net.relay.direct_generator_cpu_ms_per_pair",
        None if direct_generator is None else round(direct_generator * 1000, 3),
        "ms CPU per pair of the load generator against the direct pair")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repetition, smaller networks")
    parser.add_argument(
        "--repeater-only", action="store_true", help="only the repeater figures (no planner)"
    )
    parser.add_argument(
        "--plan-only", action="store_true", help="only the net.plan figures (no simulation)"
    )
    parser.add_argument(
        "--relay-only", action="store_true", help="only the key relay figures (net.relay.*)"
    )
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    sizes = (100, 300, 1000) if args.quick else (100, 1000, 10_000)
    results: list[dict[str, Any]] = []

    def add(name: str, value: float | None, unit: str) -> None:
        results.append({"name": name, "value": value, "unit": unit})

    if args.plan_only:
        _plan_figures(sizes, repeat, add)
        json.dump({"results": results}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if args.relay_only:
        _relay_figures(args.quick, add)
        json.dump({"results": results}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return

    if not args.repeater_only:
        _plan_figures(sizes, repeat, add)
        backbone = load_network(BACKBONE)
        rates = link_rates(backbone)
        cuts = [LinkEvent("R10-R11", 3600.0 * h, 3600.0 * h + 600.0, "failure") for h in range(24)]
        t_sim = _best(
            partial(simulate_network, backbone, days=1.0, step_s=1.0, events=cuts, rates=rates),
            repeat,
        )
        add("net.simulate.sim_seconds_per_s", 86_400.0 / t_sim,
            "simulated s per s (backbone example, 1 day in 1-s steps, 24 failures)")  # fmt: skip

    chain = ChainParameters(segments=8, link_success=0.1, swap_success=0.9)
    chains = 20_000 if args.quick else 100_000
    rng = np.random.default_rng(1)
    t_mc = _best(lambda: simulate_chains(chain, chains=chains, rng=rng), repeat)
    draws = int(chains * 8 / 0.9**7)
    t_geo = _best(lambda: rng.geometric(0.1, size=draws), repeat)
    add("qkd.repeater.mc_chains_per_s", chains / t_mc, "pairs/s (8 segments, P=0.1, Q=0.9)")
    add("qkd.repeater.mc_vs_numpy_geometric", t_mc / t_geo, "x (the same number of draws)")
    _compare_with_sequence(chain, rng, results, repeat=repeat, cap_s=5.0 if args.quick else 180.0)
    if not args.repeater_only:
        _relay_figures(args.quick, add)
    json.dump({"results": results}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
