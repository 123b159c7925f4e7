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
  ``rng.geometric`` call drawing the same number of link attempts.

The generated networks: N nodes uniform in a 1,000 km square, each joined to its 3 nearest
neighbours by a fixed-rate link whose rate falls with length like fibre (0.2 dB/km from
1 Mbit/s), 20 of the nodes endpoints, 10 demands between endpoints at a quarter of their
max-flow. The seed is fixed, so every run plans the same networks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
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
from qkd.physics.repeater import ChainParameters, simulate_chains  # noqa: E402

BACKBONE = _HERE.parent / "docs" / "networks" / "backbone.toml"


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repetition, smaller networks")
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    sizes = (100, 300, 1000) if args.quick else (100, 1000, 10_000)
    results: list[dict[str, Any]] = []

    def add(name: str, value: float, unit: str) -> None:
        results.append({"name": name, "value": value, "unit": unit})

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

    backbone = load_network(BACKBONE)
    rates = link_rates(backbone)
    cuts = [LinkEvent("R10-R11", 3600.0 * h, 3600.0 * h + 600.0, "failure") for h in range(24)]
    t_sim = _best(
        partial(simulate_network, backbone, days=1.0, step_s=1.0, events=cuts, rates=rates), repeat
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
    json.dump({"results": results}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
