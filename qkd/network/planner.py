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
  rate of :mod:`qkd.physics.rates` at the optimal intensity times the pulse rate; ``free-space``
  the same over a free-space channel's loss (given, or from the path's optics); ``twin-field``
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
  network is feasible when ``lambda* >= 1 - 1e-9``. The planner solves the same LP in path
  form (one variable per s-t path rather than per commodity, edge and direction), by column
  generation (:class:`_PathLP`): only the paths that the LP's dual prices make worth having
  are ever written down, found by one Dijkstra per commodity, and the answer is the arc
  form's (the tests check both on random graphs). At 10,000 nodes the arc form has ~340,000
  variables; the path form a few hundred. Small LPs (up to 10,000 arc variables) are solved in
  arc form, which one HiGHS call does faster than the rounds of column generation.
- **bottlenecks**: the links of the edges that every optimal solution saturates at
  ``lambda*``. Candidates are the edges saturated in the optimum found; one with a positive
  dual price binds in every optimum (complementary slackness); each other is kept if a second
  LP, with ``lambda`` fixed at ``lambda*``, cannot bring its load below its capacity (both in
  path form too).
- **single_failures**: for every link, and every trusted or ground-station node (with its
  links), the demands whose max-flow alone falls below the requested rate without it; then,
  for every link, an entry of kind ``alarm``: an eavesdropping alarm on the link (its QBER
  alarm stops its key), which fails the same demands as the link failing.

All comparisons with a requested rate use the tolerance ``1e-9`` (relative).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from qkd._errors import QKDError
from qkd.network.model import (
    FibreLink,
    FixedLink,
    FreeSpaceLink,
    Link,
    Network,
    RepeaterLink,
    SatelliteLink,
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
    "capacities",
    "link_key_rate",
    "link_rates",
    "max_flow",
    "plan",
    "route_demands",
    "satellite_key_rate",
]

TOLERANCE = 1e-9
# HiGHS simplex for small LPs; its interior-point method (with crossover) is about twice as
# fast on the large multi-commodity LPs of networks with thousands of nodes.
_IPM_ABOVE_VARIABLES = 50_000
# Up to this many arc variables (2 per edge and demand) one HiGHS call on the arc form is
# quicker than the rounds of column generation on the path form; both give the same answer.
_ARCS_UP_TO_VARIABLES = 10_000
# The LPs that ask whether an edge can be unsaturated at the optimal scale compare loads with
# capacities to 1e-7: HiGHS's default feasibility tolerance (1e-7, absolute) would let an edge
# of capacity 1e-3 (in units of the largest) look unsaturated when it is not.
_TIGHT = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
# The joint LP's resolution, in units of its largest (lowered) capacity. An edge below it is
# still a capacity of the LP, but whether it is saturated is beneath the solver's tolerances
# (and a subnormal rate even underflows to 0 in those units): it is never a bottleneck.
_RESOLUTION = 1e-9


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
    # Satellite links: (station, start_s, end_s) of each pass the rate comes from.
    windows: tuple[tuple[str, float, float], ...] = ()
    # Satellite links, one per window: (station, first_s, step_s, bits of each step). The
    # key of step i arrives over [first_s + i step_s, first_s + (i+1) step_s).
    pass_keys: tuple[tuple[str, float, float, tuple[float, ...]], ...] = ()


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
            "links": [_link_dict(r) for r in self.links],
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


def _link_dict(rate: LinkRate) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rate.id, "kind": rate.kind, "key_rate_bps": rate.key_rate_bps}
    if rate.kind == "satellite":
        bits = [sum(keys) for *_, keys in rate.pass_keys]
        out["pass_windows"] = [
            {"station": station, "start_s": start, "end_s": end}
            | ({"key_bits": bits[i]} if len(bits) == len(rate.windows) else {})
            for i, (station, start, end) in enumerate(rate.windows)
        ]
    return out


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
    if isinstance(link, FreeSpaceLink):
        from qkd.physics import rates
        from qkd.physics.link import FreeSpaceChannel, detector_preset
        from qkd.physics.link import Link as PhysicalLink

        detector, f = detector_preset(link.preset)
        physical = PhysicalLink(
            name=link.id,
            channel=FreeSpaceChannel(loss_db=link.channel_loss_db),
            detector=detector,
            ec_efficiency=f,
        )
        _, per_pulse = rates.link_rate(physical, method=link.method, nu=link.nu)
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
            cutoff_s=link.cutoff_s,
        )
        pairs_per_s = 1.0 / (chain.mean_slots * link.slot_s)
        return pairs_per_s * link.sifting * bbm92_key_fraction(chain.mean_fidelity)
    raise QKDError(
        f"link kind {link.kind!r} needs the network (its ends' positions): use link_rates"
    )


def link_rates(network: Network) -> tuple[LinkRate, ...]:
    """Every link of ``network`` with its key rate, in the order of the file."""
    out = []
    for link in network.links:
        if isinstance(link, SatelliteLink):
            rate, windows, keys = _satellite(link, network)
            out.append(LinkRate(link.id, link.kind, link.a, link.b, rate, windows, keys))
        else:
            out.append(LinkRate(link.id, link.kind, link.a, link.b, link_key_rate(link)))
    return tuple(out)


def satellite_key_rate(
    link: SatelliteLink, network: Network
) -> tuple[float, tuple[tuple[str, float, float], ...]]:
    """Average key rate of a satellite relay link over its days, and its pass windows."""
    rate, windows, _ = _satellite(link, network)
    return rate, windows


def _satellite(
    link: SatelliteLink, network: Network
) -> tuple[
    float,
    tuple[tuple[str, float, float], ...],
    tuple[tuple[str, float, float, tuple[float, ...]], ...],
]:
    """:func:`satellite_key_rate`, and the key of every step of every pass.

    A step's key is the pass's key (:func:`qkd.physics.satellite.key_per_pass`) divided
    among its steps in proportion to the asymptotic decoy-state rate at the step's own loss,
    so the steps add up to the pass.
    """
    from qkd.physics import satellite
    from qkd.physics.rates import vacuum_weak_rate_etas

    orbit: satellite.Orbit
    if link.tle is not None:
        orbit = satellite.TleOrbit(link.tle[0], link.tle[1])
    else:
        assert link.altitude_km is not None
        assert link.inclination_deg is not None
        orbit = satellite.CircularOrbit(
            altitude_km=link.altitude_km,
            inclination_deg=link.inclination_deg,
            raan_deg=link.raan_deg,
            start_deg=link.start_deg,
            epoch=link.epoch or satellite.DEFAULT_EPOCH,
        )
    optics = satellite.OpticalLink(
        wavelength_m=link.wavelength_m,
        transmitter_m=link.transmitter_m,
        receiver_m=link.receiver_m,
        divergence_rad=link.divergence_rad,
        zenith_transmittance=link.zenith_transmittance,
        seeing_arcsec=link.seeing_arcsec,
        field_of_view_rad=link.field_of_view_rad,
        pointing_loss_db=link.pointing_loss_db,
        optics_loss_db=link.optics_loss_db,
    )
    pulses = satellite.DecoyPulses(
        pulse_rate_hz=link.pulse_rate_hz, detector_efficiency=link.detector_efficiency
    )
    # The per-step shape uses the decoy parameters of key_per_pass's transmitter.
    decoy = {"y0": pulses.y0, "e_d": pulses.e_d, "mu": pulses.mu, "nu": pulses.nu, "f": pulses.f}
    seconds = link.days * 86_400.0
    keys = []
    windows: list[tuple[str, float, float]] = []
    profiles: list[tuple[str, float, float, tuple[float, ...]]] = []
    for end in (link.a, link.b):
        node = network.node(end)
        if node.latitude_deg is None or node.longitude_deg is None:
            raise QKDError(f"ground station {end!r} has no latitude_deg/longitude_deg")
        station = satellite.GroundStation(
            name=end, latitude_deg=node.latitude_deg, longitude_deg=node.longitude_deg
        )
        found = satellite.find_passes(
            orbit,
            station,
            duration_s=seconds,
            step_s=link.step_s,
            min_elevation_deg=link.min_elevation_deg,
            max_sun_elevation_deg=link.max_sun_elevation_deg,
            link=optics,
        )
        total = 0.0
        for one in found:
            whole = float(satellite.key_per_pass(one, pulses=pulses).secret_bits)
            total += whole
            assert one.loss_db is not None  # find_passes keeps each pass's steps
            # The shape within the pass: the asymptotic decoy rate at each step's loss,
            # scaled to the pass's own (finite-key) key.
            steps = np.asarray(
                vacuum_weak_rate_etas(
                    pulses.detector_efficiency * 10.0 ** (-one.loss_db / 10.0), **decoy
                ),
                dtype=np.float64,
            )
            if steps.sum() > 0:
                steps *= whole / steps.sum()
            profiles.append((end, one.start_s, link.step_s, tuple(float(b) for b in steps)))
            windows.append((end, one.start_s, one.end_s))
        keys.append(total)
    order = sorted(range(len(windows)), key=lambda i: (windows[i][1], windows[i][0]))
    return (
        min(keys) / seconds,
        tuple(windows[i] for i in order),
        tuple(profiles[i] for i in order),
    )


# ----------------------------------------------------------------------------- graphs

Edge = tuple[str, str]


def _edge(a: str, b: str) -> Edge:
    return (a, b) if a <= b else (b, a)


def capacities(rates: Iterable[LinkRate]) -> dict[Edge, float]:
    """Edge capacities: the rates of the links between each pair of nodes, added up."""
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


@dataclass(frozen=True)
class _Flow:
    """One maximum flow: its value, the flow on each edge, and through each inner node."""

    value: float
    on_edge: dict[Edge, float]
    through: dict[str, float]


def _max_flow(caps: dict[Edge, float], allowed: set[str], s: str, t: str) -> _Flow:
    if s not in allowed or t not in allowed:
        return _Flow(0.0, {}, {})
    graph = _graph(caps, allowed, s, t)
    value, flow = _nx().maximum_flow(graph, s, t, capacity="capacity")
    on_edge: dict[Edge, float] = {}
    through: dict[str, float] = {}
    for u, v in graph.edges:
        net = float(flow[u][v] - flow[v][u])
        if net == 0.0:
            continue
        on_edge[_edge(u, v)] = abs(net)
        head = v if net > 0 else u
        if head not in (s, t):
            through[head] = through.get(head, 0.0) + abs(net)
    return _Flow(float(value), on_edge, through)


def max_flow(caps: dict[Edge, float], allowed: set[str], s: str, t: str) -> float:
    """Maximum s-t flow over undirected capacities, using only nodes in ``allowed``."""
    return _max_flow(caps, allowed, s, t).value


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
    rates = link_rates(network)
    caps = capacities(rates)
    nodes = [node.name for node in network.nodes]
    relays = {node.name for node in network.nodes if node.kind != "endpoint"}
    pairs = [(d.from_, d.to, d.rate_bps) for d in network.demands]

    demands = []
    flows = []
    for s, t, requested in pairs:
        allowed = relays | {s, t}
        flow = _max_flow(caps, allowed, s, t)
        flows.append(flow)
        rate = flow.value
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

    # No common scale exceeds the smallest max-flow / request of a demand alone.
    ceiling = min((d.max_rate_bps / d.requested_bps for d in demands), default=None)
    if 2 * len(caps) * len(pairs) <= _ARCS_UP_TO_VARIABLES:
        scale, saturated = _common_scale_arcs(caps, nodes, relays, pairs, ceiling)
    else:
        scale, saturated = _common_scale(
            caps, nodes, relays, pairs, ceiling, paths=[d.path for d in demands]
        )
    bottlenecks = tuple(r.id for r in rates if r.key_rate_bps > 0 and _edge(r.a, r.b) in saturated)
    single = (
        _single_failures(network, rates=rates, caps=caps, relays=relays, pairs=pairs, flows=flows)
        if failures
        else ()
    )
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
    *,
    rates: Sequence[LinkRate],
    caps: dict[Edge, float],
    relays: set[str],
    pairs: Sequence[tuple[str, str, float]],
    flows: Sequence[_Flow],
) -> tuple[Failure, ...]:
    """The demands that fail without each link and each relaying node.

    A flow is recomputed only when the flow found for the demand cannot vouch for it: if the
    failed element carries none of that flow, the same flow is still feasible; if it carries
    ``f``, removing ``f`` from the flow leaves a feasible flow of ``value - f`` (for a link,
    only the part of ``f`` above what the parallel links can still carry). A recomputation
    asks only whether the requested rate is reachable (augmenting paths with a cutoff), on the
    demand's own graph with the element taken out and put back.
    """
    graphs: dict[int, _Reach] = {}

    def graph_of(k: int) -> _Reach:
        if k not in graphs:
            s, t, _ = pairs[k]
            graphs[k] = _Reach(caps, relays | {s, t}, s, t)
        return graphs[k]

    failing_links: list[list[tuple[str, str]]] = [[] for _ in rates]
    failing_nodes: dict[str, list[tuple[str, str]]] = {
        node.name: [] for node in network.nodes if node.kind != "endpoint"
    }
    for k, ((s, t, requested), flow) in enumerate(zip(pairs, flows, strict=True)):
        if not _met(flow.value, requested):
            for entry in (*failing_links, *failing_nodes.values()):
                entry.append((s, t))
            continue
        for i, failed in enumerate(rates):
            edge = _edge(failed.a, failed.b)
            carried = flow.on_edge.get(edge, 0.0)
            if carried == 0.0:
                continue
            remaining = max(0.0, caps[edge] - failed.key_rate_bps)
            if _met(flow.value - max(0.0, carried - remaining), requested):
                continue
            if not graph_of(k).reaches(requested, edge=edge, capacity=remaining):
                failing_links[i].append((s, t))
        for name, entry in failing_nodes.items():
            if name in (s, t):
                entry.append((s, t))
                continue
            carried = flow.through.get(name, 0.0)
            if carried == 0.0 or _met(flow.value - carried, requested):
                continue
            if not graph_of(k).reaches(requested, node=name):
                entry.append((s, t))
    out = [Failure(failed.id, "link", tuple(failing_links[i])) for i, failed in enumerate(rates)]
    out += [Failure(name, "node", tuple(entry)) for name, entry in failing_nodes.items()]
    # An eavesdropping alarm takes its link out as a failure does (the QBER alarm stops the
    # key), so it fails the same demands; its entries let a report tell the two apart.
    out += [Failure(failed.id, "alarm", tuple(failing_links[i])) for i, failed in enumerate(rates)]
    return tuple(out)


def _graph(caps: dict[Edge, float], allowed: set[str], s: str, t: str) -> Any:
    nx = _nx()
    graph = nx.Graph()
    graph.add_nodes_from((s, t))
    graph.add_edges_from(
        (u, v, {"capacity": c}) for (u, v), c in caps.items() if u in allowed and v in allowed
    )
    return graph


# Integer units of the requested rate in the fast check below; small enough that a node of
# degree up to 127 cannot overflow scipy's 32-bit flow values.
_UNITS = 1 << 24


class _Reach:
    """Is a requested rate reachable from s to t, with one edge or node taken out?

    scipy's C max-flow takes integer capacities. Scaled so that the requested rate is
    ``_UNITS``, capacities rounded down give a flow no larger than the true one, and rounded
    up one no smaller; both are clipped at ``_UNITS``, which changes neither answer (a cut
    through a clipped arc already holds the requested rate). When the two disagree the rate is
    within rounding of the answer, and networkx decides in floating point.
    """

    def __init__(self, caps: dict[Edge, float], allowed: set[str], s: str, t: str) -> None:
        self.caps, self.allowed, self.s, self.t = caps, allowed, s, t
        names = sorted(allowed)
        self.index = {name: i for i, name in enumerate(names)}
        kept = [(e, c) for e, c in caps.items() if e[0] in allowed and e[1] in allowed]
        self.edges = {e: j for j, (e, _) in enumerate(kept)}
        self.u = np.array([self.index[e[0]] for e, _ in kept], dtype=np.int64)
        self.v = np.array([self.index[e[1]] for e, _ in kept], dtype=np.int64)
        self.cap = np.array([c for _, c in kept], dtype=np.float64)
        self.n = len(names)
        degree = np.bincount(np.concatenate([self.u, self.v]), minlength=self.n)
        self.units = min(_UNITS, (2**31 - 1) // (int(degree.max(initial=0)) + 1))

    def reaches(
        self,
        requested: float,
        *,
        edge: Edge | None = None,
        capacity: float = 0.0,
        node: str | None = None,
    ) -> bool:
        from scipy import sparse
        from scipy.sparse.csgraph import maximum_flow

        goal = requested * (1.0 - TOLERANCE)
        cap = self.cap.copy()
        if edge is not None:
            cap[self.edges[edge]] = capacity
        if node is not None:
            i = self.index[node]
            cap[(self.u == i) | (self.v == i)] = 0.0
        # A request so small that units / goal overflows still compares right at 1e300.
        scaled = cap * min(self.units / goal, 1e300)
        s, t = self.index[self.s], self.index[self.t]
        answers = []
        for rounded in (np.floor(scaled), np.ceil(scaled)):
            data = np.minimum(rounded, self.units).astype(np.int32)
            graph = sparse.csr_array(
                (np.concatenate([data, data]), (np.concatenate([self.u, self.v]),
                 np.concatenate([self.v, self.u]))),
                shape=(self.n, self.n),
            )  # fmt: skip
            graph.sum_duplicates()
            answers.append(int(maximum_flow(graph, s, t).flow_value) >= self.units)
        if answers[0] == answers[1]:
            return answers[0]
        exact = dict(self.caps)
        if edge is not None:
            exact[edge] = capacity
        allowed = self.allowed - ({node} if node is not None else set())
        return _met(max_flow(exact, allowed, self.s, self.t), requested)


def _lp_method(variables: int) -> Literal["highs", "highs-ipm"]:
    return "highs-ipm" if variables > _IPM_ABOVE_VARIABLES else "highs"


def _still_saturated(
    a_ub: Any,
    a_eq: Any,
    cap: np.ndarray,
    bounds: list[tuple[float, float | None]],
    edges: list[int],
) -> list[int]:
    """Of ``edges``, those left saturated by one optimum that unsaturates as many as it can.

    With lambda fixed at its optimum, each edge e gets a variable ``0 <= z_e <= delta_e`` below
    its slack, and the LP maximises ``sum z_e / delta_e``. Every edge that some optimum leaves
    unsaturated is unsaturated at a point of the optimal face's relative interior, so for small
    enough ``delta`` the maximiser unsaturates them all; an edge it leaves saturated is checked
    on its own by the caller, so a ``delta`` too large costs time, never a wrong answer.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    m = len(edges)
    n_vars = a_ub.shape[1]
    delta = cap[edges] * 1e-4
    # load_e + z_e <= cap_e for the chosen edges.
    extra = sparse.csr_array((np.ones(m), (np.arange(m), np.arange(m))), shape=(m, m))
    a_sub = sparse.hstack([a_ub[edges, :], extra])
    a_all = sparse.vstack(
        [sparse.hstack([a_ub, sparse.csr_array((a_ub.shape[0], m))]), a_sub]
    ).tocsr()
    b_all = np.concatenate([cap, cap[edges]])
    a_eq_all = sparse.hstack([a_eq, sparse.csr_array((a_eq.shape[0], m))]).tocsr()
    objective = np.concatenate([np.zeros(n_vars), -1.0 / delta])
    all_bounds = bounds + [(0.0, float(d)) for d in delta]
    result = linprog(
        objective,
        A_ub=a_all,
        b_ub=b_all,
        A_eq=a_eq_all,
        b_eq=np.zeros(a_eq.shape[0]),
        bounds=all_bounds,
        method=_lp_method(a_ub.shape[1]),
        options=_TIGHT,
    )
    if result.status != 0:
        return edges
    z = result.x[n_vars:]
    return [e for e, slack, d in zip(edges, z, delta, strict=True) if slack < 1e-3 * d]


def _common_scale_arcs(
    caps: dict[Edge, float],
    nodes: Sequence[str],
    relays: set[str],
    pairs: Sequence[tuple[str, str, float]],
    ceiling: float | None,
) -> tuple[float | None, set[Edge]]:
    """``lambda*`` of the multi-commodity LP in arc form, and the edges every optimum
    saturates: the reference that :func:`_common_scale` (path form) is tested against.

    ``ceiling`` is the smallest ratio max-flow / request of a demand alone, an upper bound on
    ``lambda*``. Every optimum has a cycle-free version in which an edge carries at most
    ``lambda* * sum(d_k)``, so capacities above ``ceiling * sum(d_k)`` can be lowered to it
    without changing ``lambda*``. That bounds the LP's numbers: in units of the lowered
    largest capacity HiGHS's absolute tolerances stay small against every figure that
    matters. An edge so lowered never binds.
    """
    if not pairs or ceiling is None:
        return None, set()
    if ceiling <= 0:
        return 0.0, set()
    try:
        from scipy import sparse
        from scipy.optimize import linprog
    except ImportError:
        raise PlannerUnavailable(
            "the network planner needs networkx and scipy: pip install 'qkd-agile[network]'"
        ) from None
    edges = list(caps)
    if not edges or not _resolvable(ceiling, pairs):
        return 0.0, set()
    index = {name: i for i, name in enumerate(nodes)}
    n_nodes, n_edges = len(nodes), len(edges)
    top = ceiling * sum(p[2] for p in pairs) * (1.0 + 1e-6)
    original = np.array([caps[e] for e in edges])
    lowered = original > top
    unit = float(np.minimum(original, top).max())
    cap = np.minimum(original, top) / unit
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
    # The LP's variable is mu = lambda / ceiling in [0, 1], so that its coefficients
    # d_k * ceiling / unit stay near 1 (HiGHS drops matrix entries below 1e-9).
    d = np.array([p[2] for p in pairs]) * (ceiling / unit)
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
        objective,
        A_ub=a_ub,
        b_ub=cap,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=[(0.0, None)] * column + [(0.0, 1.0)],
        method=_lp_method(a_ub.shape[1]),
    )
    if result.status != 0:
        raise QKDError(f"the multi-commodity LP did not solve: {result.message}")
    mu = min(float(result.x[lam]), 1.0)
    scale = mu * ceiling
    if scale <= 0:
        return 0.0, set()
    load = a_ub @ result.x
    saturated_now = np.flatnonzero((load >= cap * (1 - 1e-7)) & ~lowered & (cap >= _RESOLUTION))
    # An edge whose capacity has a nonzero dual price is tight in every optimal solution
    # (complementary slackness): it binds without further checks.
    dual = np.asarray(result.ineqlin.marginals)
    binding = {int(e) for e in saturated_now if dual[e] < -1e-9}
    unsure = [int(e) for e in saturated_now if int(e) not in binding]
    bounds: list[tuple[float, float | None]] = [(0.0, None)] * column
    bounds.append((mu * (1 - TOLERANCE), mu))
    if unsure:
        unsure = _still_saturated(a_ub, a_eq, cap, bounds, unsure)
    # What remains may be tight in every optimum without a dual price (edges in series):
    # with lambda fixed at its optimum, minimise each one's load; if it cannot drop, it binds.
    for e in unsure:
        row = a_ub[[e], :].toarray().ravel()
        second = linprog(
            row,
            A_ub=a_ub,
            b_ub=cap,
            A_eq=a_eq,
            b_eq=b_eq,
            bounds=bounds,
            method=_lp_method(a_ub.shape[1]),
            options=_TIGHT,
        )
        if second.status != 0 or second.fun >= cap[e] * (1 - 1e-7):
            binding.add(e)
    saturated = {edges[e] for e in binding}
    return scale, saturated


# ----------------------------------------------------------------------------- path LPs


@dataclass(frozen=True)
class _Column:
    """One s-t path of commodity ``k``: its nodes and its edges (indices into the LP's list)."""

    k: int
    nodes: tuple[int, ...]
    edges: tuple[int, ...]


@dataclass(frozen=True)
class _PathSolution:
    """An optimum of a path LP: lambda, the flow on each column, the load and price of each
    edge (``price`` = -dual of its capacity row, >= 0), and the objective."""

    lam: float
    columns: tuple[_Column, ...]
    flow: np.ndarray
    load: np.ndarray
    price: np.ndarray
    fun: float
    status: int
    message: str


class _PathLP:
    """Multi-commodity flow LPs in path form, solved by column generation.

    Variables: a flow ``x_p >= 0`` on each s-t path ``p`` of each commodity, the scale
    ``lam``, and optional slacks ``z_e``. Rows: ``sum_{p in k} x_p >= lam d_k`` for every
    commodity, ``sum_{p ∋ e} x_p + z_e <= c_e`` for every edge. The path form has the same
    optimum as the arc form of the module docstring: every arc flow decomposes into path
    flows and cycles (Ford and Fulkerson), and cycles only use up capacity.

    Only a few of the exponentially many paths are ever written down (Ford and Fulkerson
    1958; Gilmore and Gomory 1961; Ahuja, Magnanti and Orlin ch. 17.5): the restricted LP
    is solved over the paths found so far, and a path of commodity k improves it exactly when
    its reduced cost ``sum_{e in p} (w_e + y_e) - sigma_k`` is negative, with ``y_e >= 0``
    the edges' dual prices, ``sigma_k >= 0`` the commodity's and ``w_e`` the objective's
    cost per unit of flow on e. That is a shortest-path question with lengths
    ``w_e + y_e >= 0``: one Dijkstra per commodity (scipy's C implementation) either finds
    an improving path, which joins the LP, or proves that none exists. When no commodity
    has one, the restricted optimum is optimal for the whole LP, and its duals are optimal
    duals of the whole LP too (every path's dual constraint holds).
    """

    def __init__(
        self,
        edges: Sequence[Edge],
        cap: np.ndarray,
        nodes: Sequence[str],
        relays: set[str],
        pairs: Sequence[tuple[str, str, float]],
    ) -> None:
        self.index = {name: i for i, name in enumerate(nodes)}
        self.names = list(nodes)
        self.cap = cap
        self.n_edges = len(edges)
        eu = np.array([self.index[u] for u, _ in edges], dtype=np.int64)
        ev = np.array([self.index[v] for _, v in edges], dtype=np.int64)
        self.arc_from = np.concatenate([eu, ev])
        self.arc_to = np.concatenate([ev, eu])
        self.arc_edge = np.concatenate([np.arange(self.n_edges), np.arange(self.n_edges)])
        self.edge_of = {
            (int(a), int(b)): int(e)
            for a, b, e in zip(self.arc_from, self.arc_to, self.arc_edge, strict=True)
        }
        relay_mask = np.array([name in relays for name in nodes])
        self.ends: list[tuple[int, int]] = []
        self.arcs: list[np.ndarray] = []
        for s, t, _ in pairs:
            allowed = relay_mask.copy()
            allowed[[self.index[s], self.index[t]]] = True
            self.arcs.append(np.flatnonzero(allowed[self.arc_from] & allowed[self.arc_to]))
            self.ends.append((self.index[s], self.index[t]))

    def column(self, k: int, path: Sequence[str]) -> _Column:
        nodes = tuple(self.index[n] for n in path)
        edges = tuple(self.edge_of[(a, b)] for a, b in itertools.pairwise(nodes))
        return _Column(k, nodes, edges)

    def _shortest(self, k: int, length: np.ndarray) -> tuple[float, _Column | None]:
        from scipy import sparse
        from scipy.sparse.csgraph import dijkstra

        arcs = self.arcs[k]
        n = len(self.names)
        graph = sparse.csr_array(
            (length[self.arc_edge[arcs]], (self.arc_from[arcs], self.arc_to[arcs])), shape=(n, n)
        )
        s, t = self.ends[k]
        dist, pred = dijkstra(graph, indices=s, return_predecessors=True)
        if not math.isfinite(float(dist[t])):
            return math.inf, None
        nodes = [t]
        while nodes[-1] != s:
            nodes.append(int(pred[nodes[-1]]))
        nodes.reverse()
        edges = tuple(self.edge_of[(a, b)] for a, b in itertools.pairwise(nodes))
        return float(length[list(edges)].sum()), _Column(k, tuple(nodes), edges)

    def solve(
        self,
        demand: np.ndarray,
        columns: Sequence[_Column],
        *,
        lam_bounds: tuple[float, float],
        lam_cost: float = 0.0,
        edge_cost: np.ndarray | None = None,
        slack: dict[int, float] | None = None,
        max_rounds: int = 100_000,
    ) -> _PathSolution:
        """Minimise ``lam_cost * lam + sum_p (sum_{e in p} edge_cost_e) x_p
        - sum_{e in slack} z_e / delta_e`` with ``0 <= z_e <= delta_e`` (``slack`` maps
        edges to their ``delta_e``). Commodities with zero demand take no part."""
        from scipy import sparse
        from scipy.optimize import linprog

        cost = np.zeros(self.n_edges) if edge_cost is None else edge_cost
        slack = slack or {}
        known = {(c.k, c.edges) for c in columns}
        cols = list(columns)
        live = [k for k in range(len(self.ends)) if demand[k] > 0]
        for _ in range(max_rounds):
            used = sorted({e for c in cols for e in c.edges} | set(slack))
            row = {e: i for i, e in enumerate(used)}
            n_rows = len(used) + len(self.ends)
            rows: list[int] = []
            cidx: list[int] = []
            vals: list[float] = []
            for j, c in enumerate(cols):
                rows += [row[e] for e in c.edges] + [len(used) + c.k]
                cidx += [j] * (len(c.edges) + 1)
                vals += [1.0] * len(c.edges) + [-1.0]
            lam = len(cols)
            rows += [len(used) + k for k in range(len(self.ends))]
            cidx += [lam] * len(self.ends)
            vals += list(demand)
            z_edges = list(slack)
            for i, e in enumerate(z_edges):
                rows.append(row[e])
                cidx.append(lam + 1 + i)
                vals.append(1.0)
            n_vars = lam + 1 + len(z_edges)
            a_ub = sparse.csr_array((vals, (rows, cidx)), shape=(n_rows, n_vars))
            b_ub = np.concatenate([self.cap[used], np.zeros(len(self.ends))])
            objective = np.concatenate(
                [
                    [float(cost[list(c.edges)].sum()) for c in cols],
                    [lam_cost],
                    [-1.0 / slack[e] for e in z_edges],
                ]
            )
            bounds = [(0.0, None)] * lam + [lam_bounds] + [(0.0, slack[e]) for e in z_edges]
            result = linprog(
                objective,
                A_ub=a_ub,
                b_ub=b_ub,
                bounds=bounds,
                method="highs",
                options=_TIGHT if lam_bounds[0] > 0 else {},
            )
            if result.status != 0:
                return _PathSolution(
                    0.0, tuple(cols), np.zeros(len(cols)), np.zeros(self.n_edges),
                    np.zeros(self.n_edges), math.inf, int(result.status), str(result.message),
                )  # fmt: skip
            duals = -np.asarray(result.ineqlin.marginals)
            price = np.zeros(self.n_edges)
            price[used] = np.maximum(duals[: len(used)], 0.0)
            sigma = duals[len(used) :]
            added = False
            for k in live:
                length, found = self._shortest(k, cost + price)
                if found is None or (k, found.edges) in known:
                    continue
                if length < sigma[k] - 1e-9 * max(1.0, abs(float(sigma[k]))):
                    cols.append(found)
                    known.add((k, found.edges))
                    added = True
            if not added:
                flow = np.asarray(result.x[:lam])
                load = np.zeros(self.n_edges)
                for c, x in zip(cols, flow, strict=True):
                    load[list(c.edges)] += x
                return _PathSolution(
                    float(result.x[lam]), tuple(cols), flow, load, price, float(result.fun),
                    0, str(result.message),
                )  # fmt: skip
        raise QKDError("the path LP did not converge")  # pragma: no cover


def _resolvable(ceiling: float, pairs: Sequence[tuple[str, str, float]]) -> bool:
    """Whether the joint LP's unit, ``ceiling * sum(d_k)`` (the most load an edge can carry at
    the ceiling), is a normal float. Below ``sys.float_info.min`` (~2.2e-308) the units lose
    precision or underflow to 0; the common scale is then below ~2.2e-302, some demand is
    unmet alone, and the plan reports a common scale of 0 with no bottlenecks."""
    import sys

    top = ceiling * sum(p[2] for p in pairs)
    return math.isfinite(top) and top >= sys.float_info.min


def _lowered(
    caps: dict[Edge, float], pairs: Sequence[tuple[str, str, float]], ceiling: float
) -> tuple[list[Edge], np.ndarray, np.ndarray, float, np.ndarray]:
    """The edges, their capacities lowered to what no optimum can use and in units of the
    largest (see :func:`_common_scale_arcs`), which were lowered, the unit, and the demands
    in the LP's units (``mu = lambda / ceiling``)."""
    edges = list(caps)
    top = ceiling * sum(p[2] for p in pairs) * (1.0 + 1e-6)
    original = np.array([caps[e] for e in edges])
    lowered = original > top
    unit = float(np.minimum(original, top).max())
    cap = np.minimum(original, top) / unit
    demand = np.array([p[2] for p in pairs]) * (ceiling / unit)
    return edges, cap, lowered, unit, demand


def _common_scale(
    caps: dict[Edge, float],
    nodes: Sequence[str],
    relays: set[str],
    pairs: Sequence[tuple[str, str, float]],
    ceiling: float | None,
    *,
    paths: Sequence[Sequence[str]] = (),
) -> tuple[float | None, set[Edge]]:
    """``lambda*`` and the edges every optimum saturates, as :func:`_common_scale_arcs`
    defines them, from the path form solved by column generation (:class:`_PathLP`).

    ``paths`` (one s-t path per demand, or none) seed the columns. The bottleneck test is the
    arc form's, each LP in path form: an edge saturated at the optimum with a positive price
    binds in every optimum (complementary slackness, with the optimal duals that column
    generation ends with); of the rest, one LP with lambda fixed unsaturates every edge that
    some optimum leaves unsaturated; an edge it cannot is checked alone by minimising its
    load.
    """
    if not pairs or ceiling is None:
        return None, set()
    if ceiling <= 0:
        return 0.0, set()
    _scipy()
    if not caps or not _resolvable(ceiling, pairs):
        return 0.0, set()
    edges, cap, lowered, _, demand = _lowered(caps, pairs, ceiling)
    lp = _PathLP(edges, cap, nodes, relays, pairs)
    seed = [lp.column(k, path) for k, path in enumerate(paths) if len(path) > 1]
    main = lp.solve(demand, seed, lam_bounds=(0.0, 1.0), lam_cost=-1.0)
    if main.status != 0:
        raise QKDError(f"the multi-commodity LP did not solve: {main.message}")
    mu = min(main.lam, 1.0)
    if mu <= 0:
        return 0.0, set()
    resolved = cap >= _RESOLUTION
    saturated_now = np.flatnonzero((main.load >= cap * (1 - 1e-7)) & ~lowered & resolved)
    binding = {int(e) for e in saturated_now if main.price[e] > 1e-9}
    unsure = [int(e) for e in saturated_now if int(e) not in binding]
    fixed = (mu * (1 - TOLERANCE), mu)
    if unsure:
        delta = {e: float(cap[e]) * 1e-4 for e in unsure}
        loose = lp.solve(demand, main.columns, lam_bounds=fixed, slack=delta)
        if loose.status == 0:
            unsure = [e for e in unsure if loose.load[e] >= cap[e] - 1e-3 * delta[e]]
    for e in unsure:
        indicator = np.zeros(len(edges))
        indicator[e] = 1.0
        least = lp.solve(demand, main.columns, lam_bounds=fixed, edge_cost=indicator)
        if least.status != 0 or least.fun >= cap[e] * (1 - 1e-7):
            binding.add(e)
    return mu * ceiling, {edges[e] for e in binding}


def route_demands(
    caps: dict[Edge, float],
    nodes: Sequence[str],
    relays: set[str],
    pairs: Sequence[tuple[str, str, float]],
) -> list[list[tuple[tuple[str, ...], float]]]:
    """Split every demand over paths as the joint plan does: the share of each path.

    The multi-commodity LP's optimum at the largest common scale ``lambda*``, and among its
    optima one that uses the least key in all (the fewest hops per bit); each demand's flow,
    split over its paths, gives the fractions. Serving the requests in these fractions loads
    every link to at most its rate over ``lambda*``: when the network is feasible, every link
    keeps the same relative headroom as the plan's bottlenecks. A demand that cannot
    reach its other end gets no path; the others are planned without it. A demand the LP
    cannot resolve (its flow below 1e-9 of the largest load, or a common scale below
    ~1e-302) takes its widest path whole.

    Returns, per demand, ``[(path, share), ...]`` with the shares adding up to 1 (``[]`` for
    an unreachable demand).

    Example::

        >>> caps = {("A", "B"): 100.0, ("B", "C"): 100.0, ("A", "D"): 50.0, ("C", "D"): 50.0}
        >>> route_demands(caps, ["A", "B", "C", "D"], {"B", "D"}, [("A", "C", 120.0)])
        ... # doctest: +SKIP
        [[(('A', 'B', 'C'), 0.666...), (('A', 'D', 'C'), 0.333...)]]
    """
    _scipy()
    out: list[list[tuple[tuple[str, ...], float]]] = [[] for _ in pairs]
    live = []
    for k, (s, t, _) in enumerate(pairs):
        path = bottleneck_path(caps, relays | {s, t}, s, t)
        if path:
            live.append((k, path))
    if not live:
        return out
    sub = [pairs[k] for k, _ in live]
    ratios = [max_flow(caps, relays | {s, t}, s, t) / d for s, t, d in sub]
    ceiling = min(ratios)
    if not _resolvable(ceiling, sub):
        # The common scale is below what double precision can resolve (a link of ~1e-300
        # bit/s or less carries a demand): each demand keeps its widest path.
        for k, path in live:
            out[k] = [(tuple(path), 1.0)]
        return out
    edges, cap, _, _, demand = _lowered(caps, sub, ceiling)
    lp = _PathLP(edges, cap, nodes, relays, sub)
    seed = [lp.column(j, path) for j, (_, path) in enumerate(live)]
    main = lp.solve(demand, seed, lam_bounds=(0.0, 1.0), lam_cost=-1.0)
    if main.status != 0:
        raise QKDError(f"the routing LP did not solve: {main.message}")
    mu = main.lam
    cheapest = lp.solve(
        demand,
        main.columns,
        lam_bounds=(mu * (1 - TOLERANCE), mu),
        edge_cost=np.ones(len(edges)),
    )
    best = cheapest if cheapest.status == 0 else main
    for j, (k, widest) in enumerate(live):
        flows = [(c, x) for c, x in zip(best.columns, best.flow, strict=True) if c.k == j and x > 0]
        total = sum(x for _, x in flows)
        if total <= 0:
            # A demand so much smaller than the others that the LP's tolerances lose its
            # flow (below 1e-9 of the largest load) still has a path: it keeps its widest.
            out[k] = [(tuple(widest), 1.0)]
            continue
        merged: dict[tuple[str, ...], float] = {}
        for c, x in flows:
            names = tuple(lp.names[i] for i in c.nodes)
            merged[names] = merged.get(names, 0.0) + float(x / total)
        out[k] = sorted(merged.items(), key=lambda item: (-item[1], len(item[0]), item[0]))
    return out


def _scipy() -> None:
    try:
        import scipy  # noqa: F401
    except ImportError:
        raise PlannerUnavailable(
            "the network planner needs networkx and scipy: pip install 'qkd-agile[network]'"
        ) from None
