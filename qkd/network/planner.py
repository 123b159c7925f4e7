"""Plan a trusted-node QKD network: link rates, per-demand max-flow and paths, joint feasibility,
bottlenecks and single failures.

Hazmat: figures for planning, not guarantees. Needs the ``network`` extra (networkx, scipy).

Theory of operation
-------------------
Key relay through trusted nodes (ITU-T Y.3800/Y.3803; DESIGN.md "QKD networks"): a key for
A -> D over A-B-C-D is one-time-padded hop by hop with each link's QKD key, so relaying R bit/s
over a path consumes R bit/s of key on every link of it. Links are undirected; parallel links
between two nodes add their rates into one edge capacity ``c_uv``. A node of kind ``endpoint``
carries no flow for anyone but its own demands: for a demand (s, t) every other endpoint is
removed from the graph, everywhere below.

- **Link rates** (:func:`link_key_rate`): ``fixed`` as given; ``fibre`` the decoy-state BB84
  rate of :mod:`qkd.physics.rates` at the optimal intensity times the pulse rate; ``twin-field``
  ``coefficient * sqrt(eta)`` per pulse (Lucamarini et al., Nature 557, 400 (2018));
  ``repeater`` end-to-end pairs per second from :mod:`qkd.physics.repeater` times the sifting
  ratio and the BBM92 key fraction.
- **max_rate_bps** of a demand alone: the maximum s-t flow over the capacities (Ford and
  Fulkerson 1956; networkx's preflow-push), split over as many paths as help. By the max-flow
  min-cut theorem it equals the smallest total capacity of links whose removal separates s
  from t; the tests check that on random graphs.
- **path**: among all s-t paths of maximal bottleneck (the "widest path" rate ``W``), one with
  the fewest hops. ``W`` is the capacity at which s and t first join when edges are added in
  decreasing order of capacity (Kruskal's order, with union-find); the paths of bottleneck
  ``W`` are exactly the s-t paths in the subgraph of edges with ``c >= W``, and breadth-first
  search finds one with the fewest hops. (A Dijkstra over (width, hops) labels is not enough:
  the label of a wide but long prefix can displace the one that leads to a short optimum.)
- **feasible**: a multi-commodity flow linear programme (Ahuja, Magnanti and Orlin, "Network
  Flows", ch. 17) over the shared capacities, solved by HiGHS through scipy:

      maximise lambda  subject to  for every demand k and node n:
          sum_out f_k - sum_in f_k = lambda d_k [n = s_k] - lambda d_k [n = t_k],
      for every edge uv:  sum_k (f_k,uv + f_k,vu) <= c_uv,   f >= 0.

  ``lambda*`` is the largest common scale at which every demand can be served at once; the
  network is feasible when ``lambda* >= 1 - 1e-9``.
- **bottlenecks**: the links of the edges that every optimal solution saturates at
  ``lambda*``. Candidates are the edges saturated in the optimum found; each is kept if a second
  LP, with ``lambda`` fixed at ``lambda*``, cannot bring its load below its capacity.
- **single_failures**: for every link, and every trusted or ground-station node (with its
  links), the demands whose max-flow alone falls below the requested rate without it.

All comparisons with a requested rate use the tolerance ``1e-9`` (relative).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qkd._errors import QKDError
from qkd.network.model import (
    FibreLink,
    FixedLink,
    Link,
    Network,
    RepeaterLink,
    TwinFieldLink,
)

__all__ = [
    "TOLERANCE",
    "DemandPlan",
    "Failure",
    "LinkRate",
    "Plan",
    "PlannerUnavailable",
    "bottleneck_path",
    "link_key_rate",
    "max_flow",
    "plan",
]

TOLERANCE = 1e-9


class PlannerUnavailable(QKDError):
    """The planner's optional dependencies (networkx, scipy) are not installed."""


@dataclass(frozen=True)
class LinkRate:
    """One link of the file with the secret key rate its physics gives."""

    id: str
    kind: str
    a: str
    b: str
    key_rate_bps: float


@dataclass(frozen=True)
class DemandPlan:
    """One demand, planned alone."""

    from_: str
    to: str
    requested_bps: float
    max_rate_bps: float
    path: tuple[str, ...]
    trusted_nodes: int | None
    met: bool


@dataclass(frozen=True)
class Failure:
    """The demands that fail when one link or node fails."""

    failed: str
    kind: str
    failed_demands: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Plan:
    """Everything ``agile net plan`` prints."""

    name: str
    links: tuple[LinkRate, ...]
    demands: tuple[DemandPlan, ...]
    feasible: bool
    common_scale: float | None
    bottlenecks: tuple[str, ...]
    single_failures: tuple[Failure, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of DESIGN.md (with ``network`` and ``common_scale`` besides)."""
        return {
            "network": self.name,
            "links": [
                {"id": r.id, "kind": r.kind, "key_rate_bps": r.key_rate_bps} for r in self.links
            ],
            "demands": [
                {
                    "from": d.from_,
                    "to": d.to,
                    "requested_bps": d.requested_bps,
                    "max_rate_bps": d.max_rate_bps,
                    "path": list(d.path),
                    "trusted_nodes": d.trusted_nodes,
                    "met": d.met,
                }
                for d in self.demands
            ],
            "feasible": self.feasible,
            "common_scale": self.common_scale,
            "bottlenecks": list(self.bottlenecks),
            "single_failures": [
                {
                    "failed": f.failed,
                    "kind": f.kind,
                    "failed_demands": [list(pair) for pair in f.failed_demands],
                }
                for f in self.single_failures
            ],
        }


def _met(rate: float, requested: float) -> bool:
    return rate >= requested * (1.0 - TOLERANCE)


# ----------------------------------------------------------------------------- link rates


def link_key_rate(link: Link) -> float:
    """Secret key rate of one link in bit/s, from its physics (see the module docstring)."""
    if isinstance(link, FixedLink):
        return link.key_rate_bps
    if isinstance(link, FibreLink):
        from qkd.physics import rates

        _, per_pulse = rates.optimal_mu(link.preset, link.length_km, method=link.method, nu=link.nu)
        return per_pulse * link.pulse_rate_hz
    if isinstance(link, TwinFieldLink):
        return link.coefficient * math.sqrt(link.transmittance) * link.pulse_rate_hz
    if isinstance(link, RepeaterLink):
        from qkd.physics.repeater import ChainParameters, bbm92_key_fraction

        chain = ChainParameters(
            segments=link.segments,
            link_success=link.link_success,
            swap_success=link.swap_success,
            fidelity=link.fidelity,
            t2_s=link.t2_s,
            slot_s=link.slot_s,
        )
        pairs_per_s = 1.0 / (chain.mean_slots * link.slot_s)
        return pairs_per_s * link.sifting * bbm92_key_fraction(chain.mean_fidelity)
    raise QKDError(f"link kind {link.kind!r} has no rate model")  # pragma: no cover


# ----------------------------------------------------------------------------- graphs

Edge = tuple[str, str]


def _edge(a: str, b: str) -> Edge:
    return (a, b) if a <= b else (b, a)


def _capacities(rates: Iterable[LinkRate]) -> dict[Edge, float]:
    caps: dict[Edge, float] = {}
    for r in rates:
        if r.key_rate_bps > 0:
            key = _edge(r.a, r.b)
            caps[key] = caps.get(key, 0.0) + r.key_rate_bps
    return caps


def _nx() -> Any:
    try:
        import networkx
    except ImportError:
        raise PlannerUnavailable(
            "the network planner needs networkx and scipy: pip install 'qkd-agile[network]'"
        ) from None
    return networkx


def max_flow(caps: dict[Edge, float], allowed: set[str], s: str, t: str) -> float:
    """Maximum s-t flow over undirected capacities, using only nodes in ``allowed``."""
    if s not in allowed or t not in allowed:
        return 0.0
    nx = _nx()
    graph = nx.Graph()
    graph.add_nodes_from((s, t))
    graph.add_edges_from(
        (u, v, {"capacity": c}) for (u, v), c in caps.items() if u in allowed and v in allowed
    )
    return float(nx.maximum_flow_value(graph, s, t, capacity="capacity"))


def bottleneck_path(caps: dict[Edge, float], allowed: set[str], s: str, t: str) -> list[str]:
    """Among the s-t paths of maximal bottleneck capacity, one with the fewest hops ([] if none)."""
    if s not in allowed or t not in allowed:
        return []
    edges = sorted(
        ((c, u, v) for (u, v), c in caps.items() if u in allowed and v in allowed),
        key=lambda e: -e[0],
    )
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    width: float | None = None
    for c, u, v in edges:
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[ru] = rv
        if find(s) == find(t):
            width = c
            break
    if width is None:
        return []
    adjacency: dict[str, list[str]] = {}
    for c, u, v in edges:
        if c < width:
            break
        adjacency.setdefault(u, []).append(v)
        adjacency.setdefault(v, []).append(u)
    previous: dict[str, str | None] = {s: None}
    queue = deque([s])
    while queue:
        node = queue.popleft()
        if node == t:
            break
        for nxt in sorted(adjacency.get(node, ())):
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    path: list[str] = []
    step: str | None = t
    while step is not None:
        path.append(step)
        step = previous[step]
    return path[::-1]


# ----------------------------------------------------------------------------- plan


def plan(network: Network, *, failures: bool = True) -> Plan:
    """Plan ``network``: see the module docstring for every figure.

    Example::

        >>> from qkd.network.loader import parse_network
        >>> net = parse_network('''
        ... [network]
        ... name = "line"
        ... [[nodes]]
        ... name = "A"
        ... kind = "endpoint"
        ... [[nodes]]
        ... name = "B"
        ... kind = "trusted"
        ... [[nodes]]
        ... name = "C"
        ... kind = "endpoint"
        ... [[links]]
        ... id = "A-B"
        ... a = "A"
        ... b = "B"
        ... kind = "fixed"
        ... key_rate_bps = 1000.0
        ... [[links]]
        ... id = "B-C"
        ... a = "B"
        ... b = "C"
        ... kind = "fixed"
        ... key_rate_bps = 500.0
        ... [[demands]]
        ... from = "A"
        ... to = "C"
        ... rate_bps = 100.0
        ... ''')
        >>> p = plan(net)
        >>> p.demands[0].max_rate_bps, p.demands[0].path, p.bottlenecks
        (500.0, ('A', 'B', 'C'), ())
    """
    _nx()
    rates = tuple(
        LinkRate(id=link.id, kind=link.kind, a=link.a, b=link.b, key_rate_bps=link_key_rate(link))
        for link in network.links
    )
    caps = _capacities(rates)
    nodes = [node.name for node in network.nodes]
    relays = {node.name for node in network.nodes if node.kind != "endpoint"}
    pairs = [(d.from_, d.to, d.rate_bps) for d in network.demands]

    demands = []
    for s, t, requested in pairs:
        allowed = relays | {s, t}
        rate = max_flow(caps, allowed, s, t)
        path = tuple(bottleneck_path(caps, allowed, s, t)) if rate > 0 else ()
        demands.append(
            DemandPlan(
                from_=s,
                to=t,
                requested_bps=requested,
                max_rate_bps=rate,
                path=path,
                trusted_nodes=len(path) - 2 if path else None,
                met=_met(rate, requested),
            )
        )

    scale, saturated = _common_scale(caps, nodes, relays, pairs)
    bottlenecks = tuple(r.id for r in rates if r.key_rate_bps > 0 and _edge(r.a, r.b) in saturated)
    single = _single_failures(network, rates, relays, pairs) if failures else ()
    return Plan(
        name=network.network.name,
        links=rates,
        demands=tuple(demands),
        feasible=scale is None or scale >= 1.0 - TOLERANCE,
        common_scale=scale,
        bottlenecks=bottlenecks,
        single_failures=single,
    )


def _single_failures(
    network: Network,
    rates: Sequence[LinkRate],
    relays: set[str],
    pairs: Sequence[tuple[str, str, float]],
) -> tuple[Failure, ...]:
    out: list[Failure] = []
    for index, failed in enumerate(rates):
        caps = _capacities(r for i, r in enumerate(rates) if i != index)
        out.append(Failure(failed.id, "link", _failing(caps, relays, pairs, removed=None)))
    caps = _capacities(rates)
    for node in network.nodes:
        if node.kind == "endpoint":
            continue
        out.append(Failure(node.name, "node", _failing(caps, relays, pairs, removed=node.name)))
    return tuple(out)


def _failing(
    caps: dict[Edge, float],
    relays: set[str],
    pairs: Sequence[tuple[str, str, float]],
    *,
    removed: str | None,
) -> tuple[tuple[str, str], ...]:
    failing = []
    for s, t, requested in pairs:
        allowed = (relays | {s, t}) - ({removed} if removed is not None else set())
        if not _met(max_flow(caps, allowed, s, t), requested):
            failing.append((s, t))
    return tuple(failing)


def _common_scale(
    caps: dict[Edge, float],
    nodes: Sequence[str],
    relays: set[str],
    pairs: Sequence[tuple[str, str, float]],
) -> tuple[float | None, set[Edge]]:
    """``lambda*`` of the multi-commodity LP, and the edges every optimum saturates."""
    if not pairs:
        return None, set()
    try:
        from scipy import sparse
        from scipy.optimize import linprog
    except ImportError:
        raise PlannerUnavailable(
            "the network planner needs networkx and scipy: pip install 'qkd-agile[network]'"
        ) from None
    edges = list(caps)
    if not edges:
        return 0.0, set()
    index = {name: i for i, name in enumerate(nodes)}
    n_nodes, n_edges = len(nodes), len(edges)
    # Scale capacities and demands by the largest capacity: lambda is unchanged and HiGHS
    # sees numbers near 1.
    unit = max(caps.values())
    cap = np.array([caps[e] for e in edges]) / unit
    eu = np.array([index[u] for u, _ in edges])
    ev = np.array([index[v] for _, v in edges])
    relay_mask = np.array([name in relays for name in nodes])

    rows_eq: list[np.ndarray] = []
    cols_eq: list[np.ndarray] = []
    vals_eq: list[np.ndarray] = []
    rows_ub: list[np.ndarray] = []
    cols_ub: list[np.ndarray] = []
    column = 0
    for k, (s, t, demand) in enumerate(pairs):
        allowed = relay_mask.copy()
        allowed[[index[s], index[t]]] = True
        usable = np.flatnonzero(allowed[eu] & allowed[ev])
        m = usable.size
        plus = column + np.arange(m)
        minus = column + m + np.arange(m)
        column += 2 * m
        base = k * n_nodes
        # u -> v leaves u and enters v; v -> u the reverse.
        rows_eq += [base + eu[usable], base + ev[usable], base + ev[usable], base + eu[usable]]
        cols_eq += [plus, plus, minus, minus]
        vals_eq += [np.ones(m), -np.ones(m), np.ones(m), -np.ones(m)]
        rows_ub += [usable, usable]
        cols_ub += [plus, minus]
        del demand
    lam = column
    n_vars = column + 1
    d = np.array([p[2] for p in pairs]) / unit
    s_rows = np.array([k * n_nodes + index[p[0]] for k, p in enumerate(pairs)])
    t_rows = np.array([k * n_nodes + index[p[1]] for k, p in enumerate(pairs)])
    rows_eq += [s_rows, t_rows]
    cols_eq += [np.full(len(pairs), lam), np.full(len(pairs), lam)]
    vals_eq += [-d, d]
    a_eq = sparse.csr_array(
        (np.concatenate(vals_eq), (np.concatenate(rows_eq), np.concatenate(cols_eq))),
        shape=(len(pairs) * n_nodes, n_vars),
    )
    ub_rows = np.concatenate(rows_ub) if rows_ub else np.zeros(0, dtype=int)
    ub_cols = np.concatenate(cols_ub) if cols_ub else np.zeros(0, dtype=int)
    a_ub = sparse.csr_array((np.ones(ub_rows.size), (ub_rows, ub_cols)), shape=(n_edges, n_vars))
    b_eq = np.zeros(len(pairs) * n_nodes)
    objective = np.zeros(n_vars)
    objective[lam] = -1.0
    result = linprog(
        objective, A_ub=a_ub, b_ub=cap, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs"
    )
    if result.status != 0:
        raise QKDError(f"the multi-commodity LP did not solve: {result.message}")
    scale = float(result.x[lam])
    if scale <= 0:
        return 0.0, set()
    load = a_ub @ result.x
    candidates = np.flatnonzero(load >= cap * (1 - 1e-7))
    # Keep the candidates that every optimal solution saturates: with lambda fixed at its
    # optimum, minimise the candidate's load; if it cannot drop, the edge binds.
    bounds = [(0.0, None)] * column + [(scale * (1 - TOLERANCE), scale)]
    saturated: set[Edge] = set()
    for e in candidates:
        row = a_ub[[int(e)], :].toarray().ravel()
        second = linprog(
            row, A_ub=a_ub, b_ub=cap, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs"
        )
        if second.status != 0 or second.fun >= cap[e] * (1 - 1e-7):
            saturated.add(edges[int(e)])
    return scale, saturated
